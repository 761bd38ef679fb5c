"""`emo-live calibrate` on an emotion_llama bundle (tiny random-weight models built here): int8
variants of EVA, MAE, VideoMAE and HuBERT bounded by token cosine and greedy answers on
held-out windows, the LLaMA decoder's weight forms (no q|k|v biases) with the lite LLM's
report, each variant with the CPU that measured it and its parity probe; the runtime's own
model loads the written variants and answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emolive.runtime.emotion_llama import spec
from emolive.runtime.names import LLM_DECODER
from tests.test_emotion_llama import build_folders, write_checkpoint
from tests.tiny_exports import export_tiny

FORMS = ("int8", "w8a8")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("emotion_llama_precision")
    folders = build_folders(root)
    ckpt = write_checkpoint(root / "checkpoint_best.pth")
    # With the face detector: MAE is calibrated and checked on face crops, as a session feeds it.
    export_tiny("emotion_llama", root / "fp32", ckpt, folders, ["model", "faces"])
    return root / "fp32"


def _config(**changes):
    from emolive.calibrate.affectgpt.bundle import LlmCalibrationConfig

    # Short answers: a random LLM's next-token logits are near ties (see the affectgpt test).
    base = dict(llm_forms=FORMS, samples=4, answer_prompts=2, answer_tokens=4,
                latency_repeats=2)  # fmt: skip
    return LlmCalibrationConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def calibrated(exported, tmp_path_factory) -> tuple[Path, dict]:
    from emolive.calibrate.affectgpt.bundle import calibrate_llm_bundle

    root = tmp_path_factory.mktemp("calibrated") / "bundle"
    shutil.copytree(exported, root)
    return root, calibrate_llm_bundle(root, _config(), log=lambda m: None)


def test_calibrate_checks_every_encoder_and_writes_only_what_passes(calibrated):
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.cpu import this_cpu

    root, report = calibrated
    bundle = Bundle.open(root)
    assert report["profile"] == spec.PROFILE
    assert set(report["encoders"]) == {spec.VISION, spec.FACE, spec.VIDEO, spec.AUDIO}
    assert report["measured_on"]["cpu_class"] == this_cpu().cpu_class
    for g, e in report["encoders"].items():
        a = e["agreement"]
        # The bound reads every token: EVA's 256 patches and its CLS token, one for the others.
        assert a["tokens_compared"] == a["check_windows"] * (257 if g == spec.VISION else 1)
        assert e["answers"]["prompts"] == 2
        # The stem and the projection into LLaMA's space stay fp32.
        assert e["quantization"]["fp32_nodes"] and e["quantization"]["quantize_nodes"] > 0
        passes = a["token_cosine_min"] >= 0.99 and e["answers"]["all_equal"]
        assert e["written"] == (passes and not e["failures"])
        if e["written"]:
            info = bundle.graph(g).variant("int8").info
            assert info["measured_on"]["cpu_class"] == this_cpu().cpu_class
            assert 0 <= info["probe_deviation"] < info["probe_tolerance"]
            assert bundle.probe(g).is_file()
        else:
            assert report["refused"][g] == e["failures"] and e["failures"]
            assert "int8" not in bundle.graph(g).variants
    assert any(e["written"] for e in report["encoders"].values())
    # LLaMA's forms: no q|k|v biases, external data, the lite LLM's report, a parity record.
    entry = bundle.graph(LLM_DECODER)
    for p in FORMS:
        v = entry.variant(p)
        assert v.info["probe_tolerance"] > v.info["probe_deviation"] > 0
        assert (root / v.info["external_data"][0]["file"]).is_file()
        form = report["llm"]["forms"][p]
        assert abs(form["perplexity_vs_fp32"]) < 0.05 and form["top1_agreement_vs_fp32"] > 0.9
        assert form["answers"]["prompts"] == 2
    assert entry.prefer["cpu"] == report["llm"]["prefer"]
    saved = json.loads(bundle.file("calibration_report").read_text())
    assert saved["profile"] == spec.PROFILE and saved["refused"] == report["refused"]
    md = bundle.file("calibration_report_md").read_text()
    assert "(emotion_llama)" in md and "| w8a8 |" in md and spec.FACE in md
    face = next(n for n in report["notes"] if n.startswith(spec.FACE))
    assert "face crops of the bundle's detector" in face and " of 4 calibration" in face


def test_the_model_loads_the_written_variants_and_answers(calibrated):
    from emolive.calibrate.affectgpt.profiles import EMOTION_LLAMA
    from emolive.calibrate.affectgpt.windows import windows
    from emolive.calibrate.media import EVALUATION_MEDIA
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.emotion_llama.reasoner import EmotionLlamaModel

    root, report = calibrated
    written = [g for g, e in report["encoders"].items() if e["written"]]
    runtime = RuntimeConfig(precision={**{g: "int8" for g in written}, LLM_DECODER: "w8a8"})
    model = EmotionLlamaModel.from_bundle(Bundle.open(root), runtime)
    for g in written:
        assert model.backend_info[g]["precision"] == "int8"
    assert model.backend_info[LLM_DECODER]["precision"] == "w8a8"
    w = windows(EVALUATION_MEDIA, size=EMOTION_LLAMA.frame_size)[0]
    visual = model.encode(list(w.frames), w.samples)
    assert visual.shape[0] == 260 and np.isfinite(visual).all()
    got = model.answer(visual, "", model.generation_config(max_new_tokens=4))
    assert 0 < len(got.ids) <= 4


def test_a_bound_no_encoder_meets_leaves_the_bundle_as_it_was(exported, tmp_path):
    from click.testing import CliRunner

    from emolive.calibrate.affectgpt.bundle import calibrate_llm_bundle
    from emolive.calibrate.vision import CalibrationRefused
    from emolive.cli.main import main

    root = tmp_path / "bundle"
    shutil.copytree(exported, root)
    before = (root / "manifest.json").read_text()

    config = _config(encoders=(spec.FACE,), llm_forms=(), min_token_cosine=1.0, samples=2,
                     answer_prompts=1, answer_tokens=2)  # fmt: skip
    with pytest.raises(CalibrationRefused, match=r"emollama_face: token cosine .* needs >= 1"):
        calibrate_llm_bundle(root, config, log=lambda m: None)
    assert (root / "manifest.json").read_text() == before
    # An affectgpt encoder is not one of this bundle's; the CLI names a bad form.
    with pytest.raises(ValueError, match="affectgpt_vision: not an encoder of this emotion_llama"):
        calibrate_llm_bundle(root, _config(encoders=("affectgpt_vision",)), log=lambda m: None)
    got = CliRunner().invoke(main, ["calibrate", str(root), "--llm-forms", "int3"])
    assert got.exit_code == 2 and "--llm-forms" in got.output
