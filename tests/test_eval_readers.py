"""Eval's readers: slices of the shared MELD and GoEmotions dev data, and manifest errors."""

import shutil
from pathlib import Path

import pytest

from emolive.calibrate.eval import readers

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"no shared dev data at {DATA}")


def _head(src: Path, dst: Path, lines: int) -> Path:
    with src.open(encoding="utf-8", newline="") as f:
        dst.write_text("".join(next(f) for _ in range(lines)), encoding="utf-8", newline="")
    return dst


@needs_data
def test_meld_slice_maps_its_emotions_onto_fer(tmp_path):
    # MELD's dev rows 1-12 (header + 12 utterances); the first reads sadness, the second surprise.
    path = _head(DATA / "meld" / "dev_sent_emo.csv", tmp_path / "dev_sent_emo.csv", 13)
    assert readers.infer_reader(path) == "meld"
    d = readers.read(path)
    assert len(d.items) == 12 and d.name == "meld"
    assert d.items[0].label == "sad" and d.items[0].text.startswith("Oh my God, he’s lost it.")
    assert d.items[1].label == "surprise" and d.items[1].id == "dia0_utt1"
    assert {i.label for i in d.items} <= set(d.labels)
    assert readers.normalize_label("joy", d.labels) == "happy"
    assert readers.normalize_label("anger", d.labels) == "angry"


@needs_data
def test_meld_dev_counts():
    d = readers.read(DATA / "meld" / "dev_sent_emo.csv")
    counts = {lab: sum(i.label == lab for i in d.items) for lab in d.labels}
    assert counts == {"angry": 153, "disgust": 22, "fear": 40, "happy": 163, "sad": 111,
                      "surprise": 150, "neutral": 470}  # fmt: skip


@needs_data
def test_goemotions_keeps_single_group_examples_and_counts_the_dropped(tmp_path):
    src = DATA / "goemotions"
    for name in ("emotions.txt", "ekman_mapping.json"):
        shutil.copy(src / name, tmp_path / name)
    path = _head(src / "dev.tsv", tmp_path / "dev.tsv", 40)
    lines = path.read_text(encoding="utf-8").splitlines()
    d = readers.read(path)
    assert d.name == "goemotions"
    # Line 2 has ids 4,27 (approval = joy group, neutral): two groups, dropped.
    assert lines[1].split("\t")[1] == "4,27"
    assert "ee84bjg" not in {i.id for i in d.items}
    # Line 3 (id 25, sadness) is kept as sad; line 1 (27, neutral) as neutral.
    by_id = {i.id: i for i in d.items}
    assert by_id["edcu99z"].label == "sad" and by_id["edgurhb"].label == "neutral"
    dropped = 40 - len(d.items)
    assert f"{len(d.items)} single-group examples kept, {dropped} dropped" in d.notes[0]
    assert dropped >= 1


@needs_data
def test_goemotions_dev_single_group_counts():
    d = readers.read(DATA / "goemotions" / "dev.tsv")
    counts = {lab: sum(i.label == lab for i in d.items) for lab in d.labels}
    assert counts == {"happy": 1941, "neutral": 1592, "angry": 555, "surprise": 459, "sad": 266,
                      "fear": 72, "disgust": 61}  # fmt: skip
    assert "480 dropped" in d.notes[0]


def _manifest(tmp_path, rows: str) -> Path:
    path = tmp_path / "m.csv"
    path.write_text("path,label,text,clues\n" + rows, encoding="utf-8")
    return path


def test_manifest_reads_files_and_text(tmp_path, astronaut):
    shutil.copy(astronaut, tmp_path / "face.png")
    d = readers.read(_manifest(tmp_path, 'face.png,Happy,,smiles\n,joy,"Great, thanks!",\n'))
    assert [(i.kind, i.label) for i in d.items] == [("image", "happy"), ("text", "happy")]
    assert d.items[0].path == tmp_path / "face.png" and d.items[0].clues == "smiles"
    assert d.items[1].text == "Great, thanks!" and d.items[1].clues is None


def test_manifest_errors_name_the_line_and_field(tmp_path):
    with pytest.raises(readers.DatasetError, match=r"m\.csv:2: field 'label' 'elated'"):
        readers.read(_manifest(tmp_path, ",elated,Yay,\n"))
    with pytest.raises(
        readers.DatasetError, match=r"m\.csv:3: field 'path': no such file .*nope\.jpg"
    ):
        readers.read(_manifest(tmp_path, ",happy,Yay,\nnope.jpg,sad,,\n"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(readers.DatasetError, match="notes.txt is not an image, audio or video"):
        readers.read(_manifest(tmp_path, "notes.txt,sad,,\n"))
    with pytest.raises(readers.DatasetError, match="neither 'path' nor 'text'"):
        readers.read(_manifest(tmp_path, ",sad,,\n"))
    with pytest.raises(readers.DatasetError, match=r"m\.csv:2: more fields than the header"):
        readers.read(_manifest(tmp_path, ",sad,Yay,,extra\n"))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\nx.jpg,sad\n")
    with pytest.raises(readers.DatasetError, match="missing path, label"):
        readers.read(bad)
    # Another label set makes the label valid.
    d = readers.read(_manifest(tmp_path, ",elated,Yay,\n"), labels=("elated", "calm"))
    assert d.items[0].label == "elated"
