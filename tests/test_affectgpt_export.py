"""AffectGPT layout end to end on tiny random-weight models: export -> bundle -> live session.

The models are built here (CLIPModel, HubertModel, Qwen2ForCausalLM with a few small layers,
saved in Hugging Face layout) with a checkpoint of the real key names; every graph is
checked against torch, a whole greedy generation must give identical tokens, and a session
runs the bundle from a video file with audio."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from emolive.runtime.affectgpt import spec
from emolive.runtime.affectgpt.answers import cut_answer, parse_answer
from emolive.runtime.affectgpt.media import clips_of, frame_indices
from emolive.runtime.llm.generate import GenerationConfig, pick_token
from emolive.runtime.names import FER_LABELS, LLM_DECODER
from tests.test_affectgpt_tiny import build_folders, checkpoint_state, write_checkpoint
from tests.tiny_exports import export_tiny
from tests.tiny_media import clip_with_audio, read_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectgpt")
    folders = build_folders(root)
    ckpt = write_checkpoint(root / "checkpoint_000003_loss_0.500.pth")
    return root, folders, ckpt


@pytest.fixture(scope="module")
def bundle(tiny):
    root, f, ckpt = tiny
    # the model alone: the frame model, no ASR (test_affectgpt_live)
    return root / "bundle", export_tiny("affectgpt", root / "bundle", ckpt, f, ["model"])


@pytest.fixture(scope="module")
def reference(tiny):
    from emolive.export.affectgpt import model as agm
    from emolive.export.affectgpt.checkpoint import read_checkpoint

    _, f, ckpt = tiny
    return agm.build(read_checkpoint(ckpt), f["vision"], f["audio"], f["llm"], "frame")


# -- pure pieces ------------------------------------------------------------------------------
def test_frames_and_clips_are_sampled_as_affectgpt_samples_them():
    assert frame_indices(20).tolist() == [0, 2, 5, 7, 10, 12, 15, 17]
    assert frame_indices(3).tolist() == [0, 1, 2, 2, 2, 2, 2, 2]  # the last repeated up to 8
    x = np.arange(16000 * 6, dtype=np.float32)  # 6 s: clips start every (6 - 2) / 8 = 0.5 s
    clips = clips_of(x)
    assert clips.shape == (8, 32000) and clips[3, 0] == 1.5 * 16000
    short = clips_of(np.ones(8000, np.float32))  # 0.5 s: zero-padded to 2 s, 8 equal clips
    assert short[:, :8000].min() == 1 and short[:, 8000:].max() == 0


def test_answers_map_onto_the_session_labels_and_keep_open_labels():
    from emolive.export.affectgpt.wheel import wheel_data

    wheel = wheel_data()["words"]
    text = cut_answer("Assistant: happy, excited, nervous, wistful###Human: ignored sad")
    assert text == "happy, excited, nervous, wistful"
    parsed = parse_answer(text, FER_LABELS, wheel)
    assert parsed.mentions == {"happy": 2, "fear": 1}  # nervous -> worried -> fear here
    assert parsed.open_labels == ("wistful",)
    assert parsed.probs.sum() == pytest.approx(1.0)
    assert FER_LABELS[int(np.argmax(parsed.probs))] == "happy"
    mer = parse_answer(text, ("neutral", "angry", "happy", "sad", "worried", "surprise"), wheel)
    assert mer.mentions == {"happy": 2, "worried": 1}
    assert parse_answer("The weather.", FER_LABELS, wheel).probs is None


def test_top_k_keeps_sampling_among_the_k_likeliest():
    logits = np.array([3.0, 2.9, 2.8, 0.0, -1.0])
    rng = np.random.default_rng(0)
    got = {pick_token(logits, GenerationConfig(top_k=2, top_p=0.9), rng) for _ in range(200)}
    assert got == {0, 1}
    assert pick_token(logits, GenerationConfig(top_k=1), rng) == 0
    with pytest.raises(ValueError, match="top_k"):
        GenerationConfig(top_k=0)


# -- export, graphs and generation ----------------------------------------------------------
@pytest.mark.slow
def test_the_export_writes_a_checked_affectgpt_bundle(bundle):
    from emolive.runtime.bundle import Bundle

    root, checks = bundle
    b = Bundle.open(root)
    assert b.profile == "affectgpt"
    assert {spec.VISION, spec.AUDIO, spec.FUSION, LLM_DECODER} <= set(b.graphs)
    c = checks["model"]
    assert c[LLM_DECODER]["greedy_tokens_identical"] > 0
    assert c["checkpoint"]["lora_scale"] == 8.0  # alpha 32 / r 4
    import json

    config = json.loads(b.file(spec.CONFIG).read_text())
    ids = list(config["placeholders"].values())
    assert list(config["placeholders"]) == list(spec.PLACEHOLDERS)
    assert ids == list(range(ids[0], ids[0] + 5))
    assert config["decoding"]["top_k"] == 20 and config["decoding"]["top_p"] == 0.9
    # The decoder's weights sit beside it (a 7B decoder passes protobuf's 2 GB limit).
    fp32 = b.graph(LLM_DECODER).variant("fp32")
    (data,) = fp32.info["external_data"]
    assert (root / data["file"]).stat().st_size > fp32.path.stat().st_size


@pytest.mark.slow
def test_every_graph_matches_torch_and_greedy_generation_is_identical(bundle, reference):
    from emolive.export.affectgpt import model as agm
    from emolive.runtime.affectgpt.reasoner import AffectGptModel
    from emolive.runtime.bundle import Bundle

    model = AffectGptModel.from_bundle(Bundle.open(bundle[0]))
    rng = np.random.default_rng(7)
    pixels = rng.uniform(0, 255, (8, 3, 224, 224)).astype(np.float32)
    clips = clips_of(rng.normal(0, 0.2, 16000 * 5).astype(np.float32))
    tokens = model.encode(pixels, clips)
    with torch.no_grad():
        vt, vm = reference.vision(torch.from_numpy(pixels))
        at, am = reference.audio(torch.from_numpy(clips))
        mt = reference.fusion(vm, am)
    for name, want in (("<FrameHere>", vt), ("<AudioHere>", at), ("<MultiHere>", mt)):
        np.testing.assert_allclose(tokens[name], want.numpy(), atol=1e-4, rtol=1e-3, err_msg=name)
    gen = model.answer(
        tokens, "I am fine.", model.generation_config(greedy=True, max_new_tokens=40)
    )
    ids = model.prompt_ids("I am fine.")
    embeds = agm.splice(reference.llm, ids, {model.placeholder(k): v for k, v in tokens.items()})
    want = agm.greedy(reference.llm, embeds, len(gen.ids) + 1, model.tokenizer.stop_ids)
    assert len(gen.ids) >= 20
    assert list(gen.ids) == want[: len(gen.ids)]


# -- the live session -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_live_session_runs_the_bundle_from_a_video_with_audio(bundle, tmp_path):
    events, readings, stats = read_file(bundle[0], clip_with_audio(tmp_path / "clip.mp4"), 1.0)
    # Read as a file, no window is merged however slow generation is: one a second.
    assert len(readings) >= 2, [e["type"] for e in events]
    assert stats["readings_merged"] == 0
    for r in readings:
        assert set(r["backend"]["graphs"]) == {spec.VISION, spec.AUDIO, spec.FUSION, LLM_DECODER}
        assert r["latency_ms"]["llm_answer"] > 0 and r["latency_ms"]["encoders"] > 0
        assert "affectgpt: no ASR in this bundle, the subtitle is empty" in r["notes"]
    # Each window was read from both its frames and its audio, and named labels came from
    # the answer's words, or the reading says the answer named none.
    for r in readings:
        named = r["emotion"] is not None
        assert named or any("names no emotion" in n for n in r["notes"]), r
    assert stats["frames_analysed"] == 45


# -- bad inputs ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("folder", ["vision", "audio", "llm"])
def test_an_encoder_folder_without_weights_is_named(tiny, tmp_path, folder):
    from emolive.export.affectgpt.model import EncoderFolderError

    root, f, ckpt = tiny
    empty = tmp_path / folder
    shutil.copytree(f[folder], empty)
    (empty / "model.safetensors").unlink()
    with pytest.raises(EncoderFolderError, match=rf"{empty}: {folder} folder has no weights"):
        export_tiny("affectgpt", tmp_path / "b", ckpt, {**f, folder: empty}, ["model"])
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_projector_and_llm_hidden_sizes_that_disagree_are_named(tiny, tmp_path):
    from emolive.export.affectgpt.checkpoint import CheckpointError

    root, f, _ = tiny
    ckpt = write_checkpoint(tmp_path / "wide.pth", checkpoint_state(hidden=48))
    with pytest.raises(CheckpointError, match=r"key 'affectgpt_proj.weight' \[H, Dv\] is \[48, 24\]; "
                       r"the LLM's hidden size .* give \[64, 24\]"):  # fmt: skip
        export_tiny("affectgpt", tmp_path / "b", ckpt, f)


def test_the_cli_names_a_missing_or_foreign_option(tmp_path):
    from click.testing import CliRunner

    from emolive.cli.export import export

    res = CliRunner().invoke(export, ["--profile", "affectgpt", "--out", str(tmp_path / "b"),
                                      "--checkpoint", "c.pth", "--vision", "v", "--audio", "a"])  # fmt: skip
    assert res.exit_code == 2 and "--llm" in res.output and "needs it" in res.output
    res = CliRunner().invoke(export, ["--out", str(tmp_path / "b"), "--checkpoint", "c.pth"])
    assert res.exit_code == 2 and "--checkpoint" in res.output and "not lite" in res.output


def test_mode_is_an_optional_option_of_affectgpt_only(tiny, tmp_path):
    from click.testing import CliRunner

    from emolive.cli.export import export
    from emolive.export.profiles import export_profile, resolve_options

    root, f, ckpt = tiny
    given = {"checkpoint": ckpt, **f}
    assert resolve_options("affectgpt", given)["mode"] is None  # the checkpoint decides
    assert resolve_options("affectgpt", {**given, "mode": "face"})["mode"] == "face"
    assert resolve_options("lite", None) == {}  # lite takes none, as before
    with pytest.raises(ValueError, match=r"'lite' takes no option\(s\) \['mode'\]"):
        export_profile("lite", tmp_path / "b", log=lambda m: None, options={"mode": "face"})
    with pytest.raises(ValueError, match=r"'affectgpt' needs option\(s\) \['llm'\]"):
        resolve_options("affectgpt", {"checkpoint": ckpt, "vision": 1, "audio": 1, "mode": "face"})
    args = ["--out", str(tmp_path / "b"), "--checkpoint", str(ckpt), "--vision", str(f["vision"]),
            "--audio", str(f["audio"]), "--llm", str(f["llm"])]  # fmt: skip
    res = CliRunner().invoke(export, ["--profile", "emotion_llama", *args, "--mode", "face"])
    assert res.exit_code == 2 and "--mode" in res.output and "not emotion_llama" in res.output
    res = CliRunner().invoke(export, ["--profile", "affectgpt", *args, "--mode", "faces"])
    assert res.exit_code == 2 and "'faces' is not one of 'face', 'frame'" in res.output
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_mode_against_the_saved_config_is_followed_with_a_warning(tiny, tmp_path):
    """`--mode frame` on a face-model checkpoint: the frame model is exported (whole frames,
    RGB), the log warns, and the bundle's checks keep the warning."""
    import json

    from click.testing import CliRunner

    from emolive.cli.export import export
    from emolive.runtime.bundle import Bundle
    from tests.test_affectgpt_tiny import FACE_CONFIG

    root, f, _ = tiny
    ckpt = write_checkpoint(tmp_path / "face.pth", config=FACE_CONFIG)
    res = CliRunner().invoke(export, [
        "--profile", "affectgpt", "--out", str(tmp_path / "b"), "--stage", "model",
        "--checkpoint", str(ckpt), "--vision", str(f["vision"]), "--audio", str(f["audio"]),
        "--llm", str(f["llm"]), "--mode", "frame"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "warning: " in res.output and "--mode frame contradicts its saved config" in res.output
    b = Bundle.open(tmp_path / "b")
    assert b.graph(spec.VISION).attrs["mode"] == "frame"
    assert json.loads(b.file(spec.CONFIG).read_text())["mode"] == "frame"
    record = b.manifest["checks"]["model"]["checkpoint"]
    assert record["mode"] == "frame" and "face crops" in record["mode_warning"]
    assert "datasets.mercaptionplus.face_or_frame" in record["mode_from"]


@pytest.mark.slow
def test_eval_runs_on_the_bundle(bundle, tmp_path):
    """`emo-live eval` measures an affectgpt bundle's readings like a lite one's: the clip
    goes through the profile's own stages and reasoner."""
    import json

    from click.testing import CliRunner

    from emolive.cli.main import main

    clip = clip_with_audio(tmp_path / "clip.mp4")
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"path,label\n{clip},happy\n", encoding="utf-8")
    out = tmp_path / "report"
    got = CliRunner().invoke(
        main, ["eval", "--data", str(manifest), "--modality", "all", "--bundle", str(bundle[0]),
               "--out", str(out)],
    )  # fmt: skip
    assert got.exit_code == 0, got.output
    report = json.loads((out / "report.json").read_text())
    run = report["runs"]["bundle"]
    assert run["metrics"]["n"] == 1 and run["skipped"] == 0
    item = run["items"][0]
    assert item["label"] == "happy" and item["kind"] == "video"
    # Random weights name no emotion: the reading abstains and says why, or names a label.
    assert item["emotion"] in FER_LABELS or (item["emotion"] is None and item["abstained"]), item
    # The profile's own reasoner read the clip: its encoders and the LLM's answer ran.
    from emolive.calibrate.eval.items import ItemRunner
    from emolive.calibrate.eval.readers import read_manifest

    runner = ItemRunner(bundle[0], FER_LABELS, modality="all", explain="all")
    result = runner.run(read_manifest(manifest).items[0])
    latency = result.reading["latency_ms"]
    assert latency["encoders"] > 0 and latency["llm_answer"] > 0, latency
