"""Clues: what the face, voice and words stages say, as short human-readable strings.

The reasoning stage reads one ``Clues`` per window. Each modality carries a tuple of short
clues ("expression: happy 0.72", "pitch: high, rising"); ``transcript`` is what was said,
kept apart from the clues because it is user speech, quoted as data in the prompt.

Input comes from the live pipeline (Python objects) or from a JSON file (``emo-live reason
--clues``). Keys follow the reading's ``clues`` (visual / audio / text); the issue's names
(acoustic, lexical, subtitle) and plain-language ones (face, voice, words) are accepted too.
Bad input raises ``ClueError`` naming the file or field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MODALITIES = ("visual", "audio", "text")
ALIASES = {
    "visual": "visual", "face": "visual", "vision": "visual",
    "audio": "audio", "acoustic": "audio", "voice": "audio", "prosody": "audio",
    "text": "text", "lexical": "text", "subtitle": "text", "words": "text",
    "transcript": "transcript",
}  # fmt: skip
MAX_CLUE_CHARS = 300  # one clue; longer is not a clue but a document


class ClueError(ValueError):
    pass


class EmptyClues(ClueError):
    pass


def _text(value, where: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ClueError(f"{where}: not UTF-8 text (bad byte at offset {e.start})") from e
    if not isinstance(value, str):
        raise ClueError(f"{where}: expected text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates, e.g. from undecodable file names
        raise ClueError(f"{where}: not valid Unicode text (at character {e.start})") from e
    return " ".join(value.split())  # one line: clues never carry newlines into the prompt


@dataclass(frozen=True)
class Clues:
    visual: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    transcript: str = ""

    def __post_init__(self):
        for m in MODALITIES:
            for i, clue in enumerate(getattr(self, m)):
                if not isinstance(clue, str):
                    raise ClueError(f"clues.{m}[{i}]: expected text, got {type(clue).__name__}")
                if len(clue) > MAX_CLUE_CHARS:
                    raise ClueError(
                        f"clues.{m}[{i}]: {len(clue)} characters; a clue is at most "
                        f"{MAX_CLUE_CHARS} (put speech in 'transcript')"
                    )

    @property
    def empty(self) -> bool:
        return not (self.visual or self.audio or self.text or self.transcript)

    def of(self, modality: str) -> tuple[str, ...]:
        return getattr(self, modality)

    def modalities(self) -> list[str]:
        """Modalities with something to say (the transcript counts for text)."""
        return [m for m in MODALITIES if self.of(m) or (m == "text" and self.transcript)]

    def as_reading(self) -> dict:
        """The reading's ``clues`` field: per modality, the transcript as a quoted text clue."""
        text = list(self.text)
        if self.transcript:
            text.append("said: " + json.dumps(self.transcript, ensure_ascii=False))
        return {"visual": list(self.visual), "audio": list(self.audio), "text": text}

    @classmethod
    def from_mapping(cls, data: Mapping, where: str = "clues") -> Clues:
        if not isinstance(data, Mapping):
            raise ClueError(f"{where}: expected an object with visual/audio/text/transcript")
        fields: dict[str, list[str]] = {m: [] for m in MODALITIES}
        transcript = ""
        for key, value in data.items():
            name = ALIASES.get(str(key).lower())
            if name is None:
                raise ClueError(
                    f"{where}: unknown field {key!r}; use {', '.join(MODALITIES)} or transcript"
                )
            if name == "transcript":
                transcript = _text(value if value is not None else "", f"{where}.{key}")
                continue
            items = [value] if isinstance(value, (str, bytes)) else value
            if items is None:
                continue
            if not isinstance(items, (list, tuple)):
                raise ClueError(f"{where}.{key}: expected text or a list of texts")
            for i, item in enumerate(items):
                clue = _text(item, f"{where}.{key}[{i}]")
                if clue:
                    fields[name].append(clue)
        return cls(
            visual=tuple(fields["visual"]),
            audio=tuple(fields["audio"]),
            text=tuple(fields["text"]),
            transcript=transcript,
        )

    @classmethod
    def from_json_file(cls, path: Path | str) -> Clues:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ClueError(f"{path}: cannot read the clue file: {e.strerror}") from e
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ClueError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ClueError(f"{path}: not valid JSON: {e}") from e
        return cls.from_mapping(data, where=str(path))
