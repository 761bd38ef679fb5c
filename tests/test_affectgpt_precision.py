"""`emo-live calibrate` on an affectgpt bundle (tiny random-weight models built here): int8
encoders bounded by token cosine and greedy answers on held-out windows, the LLM's weight
forms with the lite LLM's report, each variant with the CPU that measured it and its parity
probe; a session reads with the int8 variants, and a corrupted variant is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from emolive.runtime.affectgpt import spec
from emolive.runtime.names import FER_LABELS, LLM_DECODER
from tests.test_affectgpt_tiny import FACE_CONFIG, build_folders, checkpoint_state, write_checkpoint
from tests.tiny_exports import export_tiny

FORMS = ("int8", "w8a8")


def _tiny_model(root: Path, **extra) -> tuple[dict, Path]:
    """The tiny parts, with positive attention-pooling scores: random ones change sign, so
    the pooled token is a near-cancelling sum of frame features that turns a 0.5% feature
    error into a token pointing elsewhere (cosine -0.9 measured), whatever the precision."""
    folders = build_folders(root)
    state = checkpoint_state()
    for name in ("video_attention_mlp", "audio_attention_mlp"):
        state[f"{name}.weight"] = state[f"{name}.weight"] * 0.1
        state[f"{name}.bias"] = torch.ones_like(state[f"{name}.bias"])
    return folders, write_checkpoint(root / "checkpoint_000003_loss_0.500.pth", state, **extra)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("affectgpt_precision")
    folders, checkpoint = _tiny_model(root)
    export_tiny("affectgpt", root / "fp32", checkpoint, folders)
    return root / "fp32"


def _config(**changes):
    from emolive.calibrate.affectgpt.bundle import LlmCalibrationConfig

    # Short answers: a random LLM's next-token logits are near ties, so the first
    # differing token of a long answer says little (24 tokens: the 10th of 1 in 4 differs).
    base = dict(encoders=(spec.VISION,), llm_forms=FORMS, answer_prompts=3, answer_tokens=6,
                latency_repeats=3)  # fmt: skip
    return LlmCalibrationConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def check_windows():
    from emolive.calibrate.affectgpt.windows import windows
    from emolive.calibrate.media import EVALUATION_MEDIA

    return windows(EVALUATION_MEDIA)


@pytest.fixture(scope="module")
def calibrated(exported, tmp_path_factory) -> tuple[Path, dict]:
    from emolive.calibrate.affectgpt.bundle import calibrate_llm_bundle

    root = tmp_path_factory.mktemp("calibrated") / "bundle"
    shutil.copytree(exported, root)
    return root, calibrate_llm_bundle(root, _config(), log=lambda m: None)


@pytest.mark.slow
def test_calibrate_writes_checked_variants_with_report_and_cpu(calibrated, check_windows):
    from emolive.calibrate.affectgpt.encoders import cosines
    from emolive.runtime.backends.ort import OrtGraph
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.cpu import this_cpu

    root, report = calibrated
    bundle = Bundle.open(root)
    vision = report["encoders"][spec.VISION]
    assert vision["written"] and vision["failures"] == []
    assert vision["agreement"]["token_cosine_min"] >= 0.99
    assert vision["answers"]["all_equal"] and vision["answers"]["prompts"] == 3
    assert report["written"] == [spec.VISION] + [f"llm_decoder {p}" for p in FORMS]
    assert report["measured_on"]["cpu_class"] == this_cpu().cpu_class
    # The variant records the CPU that measured it and how far it strays on its probe.
    info = bundle.graph(spec.VISION).variant("int8").info
    assert info["measured_on"]["cpu_class"] == this_cpu().cpu_class
    assert 0 <= info["probe_deviation"] < info["probe_tolerance"]
    assert bundle.probe(spec.VISION).is_file() and bundle.probe(LLM_DECODER).is_file()
    # The cosine holds when measured again here, on held-out windows, from the bundle's files.
    check = check_windows
    fp32 = OrtGraph(bundle.graph(spec.VISION).variant("fp32").path, "fp32")
    int8 = OrtGraph(bundle.graph(spec.VISION).variant("int8").path, "int8")
    ref = np.concatenate([fp32.run({spec.PIXELS: w.pixels})[spec.TOKEN] for w in check])
    got = np.concatenate([int8.run({spec.PIXELS: w.pixels})[spec.TOKEN] for w in check])
    assert cosines(ref, got).min() == pytest.approx(vision["agreement"]["token_cosine_min"])
    # The LLM forms: written with external data, the lite LLM's report and a parity record.
    entry = bundle.graph(LLM_DECODER)
    for p in FORMS:
        v = entry.variant(p)
        assert v.info["measured_on"]["cpu_class"] == this_cpu().cpu_class
        assert v.info["probe_tolerance"] > v.info["probe_deviation"] > 0
        assert (root / v.info["external_data"][0]["file"]).is_file()
        form = report["llm"]["forms"][p]
        assert entry.attrs["reports"][p]["perplexity_vs_fp32"] == form["perplexity_vs_fp32"]
        assert abs(form["perplexity_vs_fp32"]) < 0.05 and form["top1_agreement_vs_fp32"] > 0.9
        assert form["answers"]["prompts"] == 3 and form["bytes"] > 0
    assert entry.prefer["cpu"] == report["llm"]["prefer"]
    saved = json.loads(bundle.file("calibration_report").read_text())
    assert saved["encoders"][spec.VISION]["agreement"] == vision["agreement"]
    md = bundle.file("calibration_report_md").read_text()
    assert "token cosine" in md and "| w8a8 |" in md
    assert bundle.manifest["calibration"]["token_cosine_min"][spec.VISION] >= 0.99


@pytest.mark.slow
def test_run_precision_forces_the_encoders_that_have_the_variant(calibrated, monkeypatch):
    from click.testing import CliRunner

    from emolive.cli import run as run_cli
    from emolive.cli.main import main
    from emolive.runtime.bundle import Bundle

    seen = {}

    def stop(config, cleanup=None):
        seen["config"] = config
        raise SystemExit(3)

    monkeypatch.setattr(run_cli, "open_session", stop)
    got = CliRunner().invoke(main, ["run", "--source", "synthetic", "--precision", "int8",
                                    "--bundle", str(calibrated[0])])  # fmt: skip
    assert got.exit_code == 3, got.output
    forced = dict(seen["config"].runtime.precision)
    graphs = Bundle.open(calibrated[0]).graphs
    assert forced.get(spec.VISION) == "int8" and LLM_DECODER not in forced
    assert all("int8" in graphs[g].variants for g in forced)


def test_a_session_reads_with_the_int8_variants(calibrated, tmp_path):
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.cpu import this_cpu
    from emolive.runtime.readings import validate
    from emolive.runtime.session import Session, SessionConfig
    from tests.tiny_media import clip_with_audio

    clip = clip_with_audio(tmp_path / "clip.mp4", seconds=2.0)
    runtime = RuntimeConfig(precision={spec.VISION: "int8", LLM_DECODER: "w8a8"})
    config = SessionConfig(bundle=calibrated[0], source=str(clip), every_s=1.0,
                           labels=FER_LABELS, realtime=False, runtime=runtime)  # fmt: skip
    with Session(config) as session:
        readings = [e for e in session if e["type"] == "reading"]
    assert readings
    for r in readings:
        validate(r)
        graphs = r["backend"]["graphs"]
        assert graphs[spec.VISION]["precision"] == "int8"
        assert graphs[spec.AUDIO]["precision"] == "fp32"
        assert graphs[LLM_DECODER]["precision"] == "w8a8"
        # Where u8·s8 pair sums saturate (AVX2 without VNNI), w8a8 loads in its exact u8×u8 form.
        if this_cpu().u8s8_saturates:
            assert "u8×u8" in graphs[LLM_DECODER]["note"]
        assert r["latency_ms"]["llm_answer"] > 0


def _corrupt(path: Path, out: Path) -> Path:
    """The int8 graph with every weight scale 1.6x: still a valid graph, wrong numbers."""
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            scale = inits[node.input[1]]
            scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 1.6, scale.name))
    onnx.save(model, str(out))
    return out


@pytest.mark.slow
def test_a_corrupted_variant_is_refused_by_the_bound_and_at_load(
    calibrated, check_windows, tmp_path
):
    from emolive.calibrate.affectgpt.encoders import agreement, bound_failures, feeds
    from emolive.runtime.backends.ort import OrtGraph
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.cpu import CpuInfo
    from emolive.runtime.parity import check_variant

    bundle = Bundle.open(calibrated[0])
    variant = bundle.graph(spec.VISION).variant("int8")
    bad = OrtGraph(_corrupt(variant.path, tmp_path / "bad.onnx"), "int8")
    fp32 = OrtGraph(bundle.graph(spec.VISION).variant("fp32").path, "fp32")
    got = agreement(fp32, bad, feeds(spec.VISION, check_windows))
    assert bound_failures(got) and "token cosine" in bound_failures(got)[0]
    # Loaded on another CPU class, the probe catches it; the variant as written passes.
    arm = CpuInfo(model="test", arch="aarch64", cpu_class="arm64", flags=())
    gate = check_variant(variant.info, bundle.probe(spec.VISION), bad.run, arm, "vision int8")
    assert not gate.passed and "fell back to fp32" in gate.note
    good = OrtGraph(variant.path, "int8")
    assert check_variant(variant.info, bundle.probe(spec.VISION), good.run, arm, "v").passed


@pytest.mark.slow
def test_the_runtime_falls_back_from_a_corrupted_variant_on_another_cpu(
    calibrated, tmp_path, monkeypatch
):
    """The session's own load (``AffectGptModel.from_bundle``) gates the variant: on a CPU
    class other than the one that measured it, a corrupted int8 encoder falls back to fp32."""
    from emolive.runtime import parity
    from emolive.runtime.affectgpt.reasoner import AffectGptModel
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.bundle import Bundle, sha256_of
    from emolive.runtime.cpu import CpuInfo

    root = tmp_path / "bundle"
    shutil.copytree(calibrated[0], root)
    monkeypatch.setattr(parity, "this_cpu", lambda: CpuInfo("test", "aarch64", "arm64", ()))
    runtime = RuntimeConfig(precision={spec.VISION: "int8"})
    kept = AffectGptModel.from_bundle(Bundle.open(root), runtime).backend_info[spec.VISION]
    assert kept["precision"] == "int8" and "fallback" not in kept
    int8 = Bundle.open(root).graph(spec.VISION).variant("int8").path
    _corrupt(int8, int8)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["graphs"][spec.VISION]["variants"]["int8"]["sha256"] = sha256_of(int8)
    (root / "manifest.json").write_text(json.dumps(manifest))
    model = AffectGptModel.from_bundle(Bundle.open(root), runtime)
    got = model.backend_info[spec.VISION]
    assert got["precision"] == "fp32" and "fell back to fp32" in got["fallback"]
    assert any("arm64" in n for n in model.notes)


@pytest.mark.slow
def test_a_variant_that_misses_its_bound_is_not_written(exported, tmp_path):
    from emolive.calibrate.affectgpt.bundle import calibrate_llm_bundle
    from emolive.calibrate.vision import CalibrationRefused

    root = tmp_path / "bundle"
    shutil.copytree(exported, root)
    before = (root / "manifest.json").read_text()
    with pytest.raises(CalibrationRefused, match=r"affectgpt_vision: token cosine .* needs >= 1"):
        calibrate_llm_bundle(
            root,
            _config(llm_forms=(), min_token_cosine=1.0, samples=2, answer_prompts=1),
            log=lambda m: None,
        )
    assert (root / "manifest.json").read_text() == before
    assert not (root / "affectgpt_vision.int8.onnx").exists()


def test_the_cli_names_a_bad_llm_form(exported, tmp_path):
    from click.testing import CliRunner

    from emolive.cli.main import main

    got = CliRunner().invoke(main, ["calibrate", str(exported), "--llm-forms", "int8,int3"])
    assert got.exit_code == 2 and "--llm-forms" in got.output and "int3" in got.output
    # A lite bundle's calibration is the vision one: the option is refused, not ignored.
    lite = tmp_path / "lite"
    lite.mkdir()
    (lite / "manifest.json").write_text(json.dumps({"profile": "lite"}))
    got = CliRunner().invoke(main, ["calibrate", str(lite), "--llm-forms", "int8"])
    assert got.exit_code == 2 and "affectgpt bundles only" in got.output


@pytest.fixture(scope="module")
def face_calibrated(tmp_path_factory) -> tuple[Path, dict]:
    """A face-crop checkpoint exported with its detector (the 'faces' stage), calibrated on
    the built-in media: the evaluation side has clips with and without a face."""
    from emolive.calibrate.affectgpt.bundle import calibrate_llm_bundle

    root = tmp_path_factory.mktemp("affectgpt_face_precision")
    folders, checkpoint = _tiny_model(root, config=FACE_CONFIG)
    export_tiny("affectgpt", root / "bundle", checkpoint, folders, stages=("model", "faces"))
    config = _config(llm_forms=(), samples=4, answer_prompts=2)
    return root / "bundle", calibrate_llm_bundle(root / "bundle", config, log=lambda m: None)


def test_a_face_model_is_calibrated_and_checked_on_the_face_crops(face_calibrated):
    """Its vision graph reads 8 face crops per window, as a session's FrameStore samples
    them; faceless windows (a session abstains there) are left out of the checks."""
    import cv2

    from emolive.calibrate.media import EVALUATION, EVALUATION_MEDIA
    from emolive.runtime.affectgpt.faces import FaceCropper
    from emolive.runtime.affectgpt.media import frame_indices
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.parity import Probe
    from emolive.runtime.sources.video import VideoFile

    root, report = face_calibrated
    bundle = Bundle.open(root)
    assert bundle.graph(spec.VISION).attrs["mode"] == "face"
    w = report["windows"]
    assert w["vision_input"] == "face crops"
    for side in ("calibration", EVALUATION):
        assert 0 < w["with_face"][side]["with_face"] <= w["with_face"][side]["windows"]
    # no_face.mp4 (a cartoon) is on the evaluation side: some of its windows have no face.
    ev = w["with_face"][EVALUATION]
    assert ev["with_face"] < ev["windows"] and w["check"] == ev["with_face"]
    vision = report["encoders"][spec.VISION]
    assert vision["agreement"]["check_windows"] == ev["with_face"]
    assert vision["answers"]["prompts"] == 2
    assert any("face model" in n and f"{ev['with_face']} of {ev['windows']} check" in n
               for n in report["notes"])  # fmt: skip
    # The vision graph's probe is the first check window's feed: recut here from the clip
    # with the bundle's detector, the crops (BGR, 112 px) resized to 224 and 8 picked.
    first = w["prompt_windows"][0]
    media = next(m for m in EVALUATION_MEDIA if m.name == first["media"])
    crop = FaceCropper.from_bundle(bundle).crop
    frames = [f.image for f in VideoFile(media.path()).frames()
              if f.index % media.every == 0 and first["t_start"] <= f.t < first["t_end"]]  # fmt: skip
    crops = [c for c in map(crop, frames) if c is not None]
    assert crops and crops[0].shape == (spec.FACE_CROP, spec.FACE_CROP, 3)
    big = [cv2.resize(c, (spec.IMAGE_SIZE, spec.IMAGE_SIZE)) for c in crops]
    want = np.stack([big[i] for i in frame_indices(len(big))]).transpose(0, 3, 1, 2)
    fed = Probe.load(bundle.probe(spec.VISION)).inputs[spec.PIXELS]
    assert fed.shape == (8, 3, spec.IMAGE_SIZE, spec.IMAGE_SIZE)
    np.testing.assert_array_equal(fed, want.astype(np.float32))
    # ...not the whole frames a frame model reads (nor the crops in RGB).
    whole = np.stack([cv2.resize(frames[i], (spec.IMAGE_SIZE,) * 2)
                      for i in frame_indices(len(frames))]).transpose(0, 3, 1, 2)  # fmt: skip
    assert not np.array_equal(fed, whole) and not np.array_equal(fed, fed[:, ::-1])
    assert bundle.graph(spec.VISION).variant("int8").info["token_cosine_min"] >= 0.99


def test_a_face_model_without_its_detector_is_refused_by_name(face_calibrated, tmp_path):
    from emolive.calibrate.affectgpt.bundle import calibrate_llm_bundle
    from emolive.runtime.bundle import BundleError
    from emolive.runtime.names import FACE_DETECTOR_FULL

    root = tmp_path / "bundle"
    shutil.copytree(face_calibrated[0], root)
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["graphs"][FACE_DETECTOR_FULL]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=rf"needs graph '{FACE_DETECTOR_FULL}'.*'faces' stage"):
        calibrate_llm_bundle(root, _config(llm_forms=()), log=lambda m: None)
