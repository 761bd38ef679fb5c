"""Labelled data for evaluation: a manifest CSV of the user's own files, MELD's CSV, and
GoEmotions' TSV under its Ekman mapping.

Every reader returns a ``Dataset``: items with a label from the dataset's label set, the
dataset's default labels, its file's sha256 (the report's "manifest version") and notes on
what was kept or dropped. Bad input raises ``DatasetError`` naming the file, the line and the
field.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from emolive.runtime.names import FER_LABELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
KINDS = ("image", "audio", "video", "text")

# Dataset spellings of FER's seven labels (MELD and GoEmotions' Ekman groups use the nouns).
ALIASES = {
    "joy": "happy",
    "happiness": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fearful": "fear",
    "disgusted": "disgust",
    "surprised": "surprise",
}
READERS = ("manifest", "meld", "goemotions")


class DatasetError(ValueError):
    """Bad evaluation data; the message names the file, line and field."""


@dataclass(frozen=True)
class EvalItem:
    """One labelled item: a file (image, audio or video clip) and/or a line of text, with
    optional reference clues (EMER's ground-truth clue description)."""

    id: str
    label: str
    kind: str  # image | audio | video | text
    path: Path | None = None
    text: str | None = None
    clues: str | None = None


@dataclass
class Dataset:
    name: str
    source: Path
    items: list[EvalItem]
    labels: tuple[str, ...]
    sha256: str
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {
            "name": self.name,
            "source": str(self.source),
            "sha256": self.sha256,
            "items": len(self.items),
            "labels": list(self.labels),
            "notes": list(self.notes),
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _csv_rows(f) -> tuple[csv.DictReader, list[str]]:
    """A CSV reader over ``f`` whose column names are stripped (and free of a BOM)."""
    rows = csv.DictReader(f)
    header = [h.strip().lstrip("\ufeff") for h in (rows.fieldnames or [])]
    rows.fieldnames = header
    return rows, header


def _open_text(path: Path):
    try:
        return path.open(encoding="utf-8", newline="")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


def normalize_label(raw: str, labels: tuple[str, ...]) -> str | None:
    """``raw`` as one of ``labels`` (case, surrounding space and dataset spellings such as
    joy→happy forgiven), or None."""
    name = raw.strip().lower()
    if name in labels:
        return name
    alias = ALIASES.get(name)
    return alias if alias in labels else None


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    for kind, suffixes in (
        ("image", IMAGE_SUFFIXES),
        ("audio", AUDIO_SUFFIXES),
        ("video", VIDEO_SUFFIXES),
    ):
        if suffix in suffixes:
            return kind
    return None


def infer_reader(path: Path) -> str:
    """Which reader a data file needs: GoEmotions for .tsv, MELD for a CSV with MELD's
    ``Utterance`` and ``Emotion`` columns, else the manifest."""
    if path.suffix.lower() == ".tsv":
        return "goemotions"
    with _open_text(path) as f:
        header = next(csv.reader(f), [])
    header = [h.strip().lstrip("\ufeff") for h in header]
    if "Utterance" in header and "Emotion" in header:
        return "meld"
    return "manifest"


def read(path: Path, reader: str | None = None, labels: tuple[str, ...] | None = None) -> Dataset:
    """The dataset at ``path`` through ``reader`` (None: inferred from the file)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such data file")
    reader = reader or infer_reader(path)
    if reader == "manifest":
        return read_manifest(path, labels or FER_LABELS)
    if reader == "meld":
        return read_meld(path)
    if reader == "goemotions":
        return read_goemotions(path)
    raise DatasetError(f"unknown reader {reader!r}; choose one of {', '.join(READERS)}")


# -- the manifest ------------------------------------------------------------------------------
def read_manifest(path: Path, labels: tuple[str, ...] = FER_LABELS) -> Dataset:
    """``path,label[,text][,clues]`` with a header row. ``path`` (relative to the manifest's
    folder) may be empty when ``text`` is given: a text-only item. ``clues``: reference clues
    for the EMER metrics."""
    path = Path(path)
    items: list[EvalItem] = []
    with _open_text(path) as f:
        rows, header = _csv_rows(f)
        missing = [c for c in ("path", "label") if c not in header]
        if missing:
            raise DatasetError(
                f"{path}: the header must name columns path,label[,text][,clues]; "
                f"missing {', '.join(missing)} (got {','.join(header) or 'no header'})"
            )
        unknown = [c for c in header if c not in ("path", "label", "text", "clues")]
        if unknown:
            raise DatasetError(f"{path}: unknown column(s) {', '.join(unknown)}")
        for row in rows:
            line = rows.line_num
            if None in row:
                raise DatasetError(f"{path}:{line}: more fields than the header names")
            items.append(_manifest_item(path, line, row, labels))
    if not items:
        raise DatasetError(f"{path}: no items")
    return Dataset("manifest", path, items, tuple(labels), _sha256(path))


def _manifest_item(path: Path, line: int, row: dict, labels: tuple[str, ...]) -> EvalItem:
    where = f"{path}:{line}"
    raw_label = (row.get("label") or "").strip()
    label = normalize_label(raw_label, labels)
    if label is None:
        raise DatasetError(
            f"{where}: field 'label' {raw_label!r} is not one of the labels "
            f"({', '.join(labels)}); pass --labels to evaluate another set"
        )
    text = (row.get("text") or "").strip() or None
    clues = (row.get("clues") or "").strip() or None
    rel = (row.get("path") or "").strip()
    if not rel:
        if text is None:
            raise DatasetError(f"{where}: neither 'path' nor 'text' is given")
        return EvalItem(f"line{line}", label, "text", None, text, clues)
    file = Path(rel) if Path(rel).is_absolute() else path.parent / rel
    if not file.is_file():
        raise DatasetError(f"{where}: field 'path': no such file {file}")
    kind = kind_of(file)
    if kind is None:
        known = IMAGE_SUFFIXES + AUDIO_SUFFIXES + VIDEO_SUFFIXES
        raise DatasetError(
            f"{where}: field 'path': {file.name} is not an image, audio or video file "
            f"(known suffixes: {' '.join(known)})"
        )
    return EvalItem(rel, label, kind, file, text, clues)


# -- MELD -------------------------------------------------------------------------------------
MELD_COLUMNS = ("Utterance", "Emotion", "Dialogue_ID", "Utterance_ID")


def read_meld(path: Path) -> Dataset:
    """MELD's ``*_sent_emo.csv``: one text item per utterance; its seven emotions map one to
    one onto FER's (joy→happy, sadness→sad, anger→angry)."""
    path = Path(path)
    items: list[EvalItem] = []
    with _open_text(path) as f:
        rows, header = _csv_rows(f)
        missing = [c for c in MELD_COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{path}: not MELD's CSV: missing column(s) {', '.join(missing)}")
        for row in rows:
            label = normalize_label(row["Emotion"], FER_LABELS)
            if label is None:
                raise DatasetError(
                    f"{path}:{rows.line_num}: field 'Emotion' {row['Emotion']!r} is not one of "
                    "MELD's seven emotions"
                )
            item_id = f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}"
            items.append(EvalItem(item_id, label, "text", None, row["Utterance"].strip()))
    return Dataset("meld", path, items, FER_LABELS, _sha256(path))


# -- GoEmotions ---------------------------------------------------------------------------------
EKMAN_TO_FER = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}


def read_goemotions(path: Path) -> Dataset:
    """GoEmotions' TSV (``text<TAB>label ids<TAB>comment id``, no header) under its Ekman
    mapping (``ekman_mapping.json`` and ``emotions.txt`` beside it): an example is kept when
    its labels fall in exactly one Ekman group (neutral is a group of its own); the others
    are dropped and counted in the notes."""
    path = Path(path)
    names_file = path.parent / "emotions.txt"
    mapping_file = path.parent / "ekman_mapping.json"
    for needed in (names_file, mapping_file):
        if not needed.is_file():
            raise DatasetError(f"{path}: GoEmotions needs {needed.name} beside it ({needed})")
    names = [n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip()]
    try:
        mapping = json.loads(mapping_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{mapping_file}: not JSON: {e}") from e
    group_of = {"neutral": "neutral"}
    for group, members in mapping.items():
        if group not in EKMAN_TO_FER:
            raise DatasetError(f"{mapping_file}: unknown Ekman group {group!r}")
        group_of.update({m: group for m in members})
    items: list[EvalItem] = []
    dropped = 0
    with _open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise DatasetError(
                    f"{path}:{line_no}: expected text<TAB>label ids<TAB>comment id, "
                    f"got {len(parts)} field(s)"
                )
            text, ids, comment = parts
            try:
                emotions = [names[int(i)] for i in ids.split(",")]
            except (ValueError, IndexError) as e:
                raise DatasetError(
                    f"{path}:{line_no}: field 'label ids' {ids!r} is not a list of ids "
                    f"0..{len(names) - 1}"
                ) from e
            groups = {group_of.get(e) for e in emotions}
            if None in groups:
                unmapped = [e for e in emotions if e not in group_of]
                raise DatasetError(f"{mapping_file}: no Ekman group for {', '.join(unmapped)}")
            if len(groups) != 1:
                dropped += 1
                continue
            label = EKMAN_TO_FER[groups.pop()]
            items.append(EvalItem(comment, label, "text", None, text.strip()))
    note = (
        f"GoEmotions under the Ekman mapping: {len(items)} single-group examples kept, "
        f"{dropped} dropped (labels in more than one group)"
    )
    return Dataset("goemotions", path, items, FER_LABELS, _sha256(path), [note])
