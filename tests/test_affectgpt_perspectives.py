"""Multi-perspective visual projection on tiny random-weight models: a frame-model checkpoint
with two extra perspectives (face crops and temporal change, by the documented key naming
``<perspective>_attention_mlp`` / ``<perspective>_proj``) exports, each graph matches torch,
greedy generation is identical, and a live session runs the bundle and a subset of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emolive.runtime.affectgpt import spec
from emolive.runtime.names import FACE_DETECTOR_FULL
from tests.test_affectgpt_tiny import (
    CLIP_DIM,
    HIDDEN,
    build_folders,
    checkpoint_state,
    write_checkpoint,
)
from tests.tiny_exports import export_tiny
from tests.tiny_media import face_clip, read_file

pytestmark = pytest.mark.slow
EXTRAS = ("face", "temporal")


def perspective_state(extras=EXTRAS, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = checkpoint_state()
    for p in extras:
        for key, rows in ((f"{p}_attention_mlp", 1), (f"{p}_proj", HIDDEN)):
            state[f"{key}.weight"] = torch.randn(rows, CLIP_DIM, generator=g) / CLIP_DIM**0.5
            state[f"{key}.bias"] = torch.randn(rows, generator=g) * 0.1
    return state


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectgpt_views")
    return root, build_folders(root), write_checkpoint(root / "views.pth", perspective_state())


@pytest.fixture(scope="module")
def bundle(tiny) -> Path:
    root, f, ckpt = tiny
    export_tiny("affectgpt", root / "bundle", ckpt, f, ["model", "faces"])
    return root / "bundle"


def _subset(bundle: Path, to: Path, drop: tuple[str, ...]) -> Path:
    shutil.copytree(bundle, to)
    manifest = json.loads((to / "manifest.json").read_text())
    for p in drop:
        del manifest["graphs"][spec.view_graph(p)]
    (to / "manifest.json").write_text(json.dumps(manifest))
    return to


def test_the_bundle_carries_each_perspective_with_its_placeholder(bundle):
    from emolive.runtime.bundle import Bundle

    b = Bundle.open(bundle)
    assert {spec.view_graph(p) for p in EXTRAS} <= set(b.graphs)
    assert FACE_DETECTOR_FULL in b.graphs  # the face perspective needs the detector
    config = json.loads(b.file(spec.CONFIG).read_text())
    ids = config["placeholders"]
    assert list(ids) == [*spec.PLACEHOLDERS, "<TemporalHere>"]
    assert ids["<TemporalHere>"] == ids["<MultiHere>"] + 1  # appended, inside the table
    for name in ("<FrameHere>", "<FaceHere>", "<TemporalHere>", "from 3 perspectives"):
        assert name in config["template"]
    checks = b.manifest["checks"]["model"]
    for p in EXTRAS:
        assert checks[spec.view_graph(p)]["token_max_abs_diff"] < 1e-4


def test_each_perspective_matches_torch_and_greedy_generation_is_identical(bundle, tiny):
    from emolive.export.affectgpt import model as agm
    from emolive.export.affectgpt.checkpoint import read_checkpoint
    from emolive.runtime.affectgpt.media import clips_of
    from emolive.runtime.affectgpt.reasoner import AffectGptModel
    from emolive.runtime.bundle import Bundle

    _, f, ckpt_path = tiny
    ckpt = read_checkpoint(ckpt_path)
    ref = agm.build(ckpt, f["vision"], f["audio"], f["llm"], "frame")
    model = AffectGptModel.from_bundle(Bundle.open(bundle))
    rng = np.random.default_rng(3)
    frames = rng.uniform(0, 255, (8, 3, 224, 224)).astype(np.float32)
    crops = rng.uniform(0, 255, (8, 3, 224, 224)).astype(np.float32)
    clips = clips_of(rng.normal(0, 0.2, 16000 * 4).astype(np.float32))
    tokens = model.encode(frames, clips, {"faces": crops})
    with torch.no_grad():
        _, _, frame_feats = ref.vision(torch.from_numpy(frames))
        bgr = agm.VisionTower(ref.vision.clip, ckpt, rgb=False, with_features=True).eval()
        face_feats = bgr(torch.from_numpy(crops))[2]  # CLIP sees the crops in BGR
        want = {"<FaceHere>": ref.views["face"](face_feats),
                "<TemporalHere>": ref.views["temporal"](frame_feats)}  # fmt: skip
    for name, w in want.items():
        np.testing.assert_allclose(tokens[name], w.numpy(), atol=1e-4, rtol=1e-3, err_msg=name)
    config = model.generation_config(greedy=True, max_new_tokens=30)
    gen = model.answer(tokens, "I am fine.", config)
    ids = model.prompt_ids("I am fine.")
    assert all(model.placeholder(n) in ids for n in ("<FrameHere>", "<FaceHere>", "<TemporalHere>"))
    embeds = agm.splice(ref.llm, ids, {model.placeholder(k): v for k, v in tokens.items()})
    assert len(gen.ids) >= 10
    assert (
        list(gen.ids)
        == agm.greedy(ref.llm, embeds, len(gen.ids) + 1, model.tokenizer.stop_ids)[: len(gen.ids)]
    )


def test_a_live_session_runs_the_bundle_and_a_subset_of_it(bundle, media_bgr, tmp_path):
    from emolive.runtime.affectgpt.reasoner import AffectGptModel
    from emolive.runtime.bundle import Bundle

    clip = face_clip(tmp_path / "face.mp4", media_bgr("single_face.jpg"), seconds=2.0)
    subset = _subset(bundle, tmp_path / "subset", ("face",))
    plain = _subset(bundle, tmp_path / "plain", EXTRAS)
    sub = AffectGptModel.from_bundle(Bundle.open(subset))
    assert tuple(sub.views) == ("temporal",)
    ids = sub.prompt_ids("")
    assert sub.placeholder("<TemporalHere>") in ids and sub.placeholder("<FaceHere>") not in ids
    assert "from 2 perspectives" in sub.tokenizer.decode(ids)
    bare = AffectGptModel.from_bundle(Bundle.open(plain))
    own = spec.template("frame").format(subtitle="", question=spec.QUESTIONS["reason"])
    assert bare.prompt_ids("") == bare.tokenizer.encode(own)  # AffectGPT's own prompt
    for root, graphs in ((bundle, EXTRAS), (subset, ("temporal",))):
        events, _, _ = read_file(root, clip, 1.0)
        read = [e for e in events if e["type"] == "reading" and "llm_answer" in e["latency_ms"]]
        assert read, [e.get("abstained") for e in events if e["type"] == "reading"]
        for r in read:
            assert {spec.view_graph(p) for p in graphs} <= set(r["backend"]["graphs"])
        # Where the face has left, the face perspective is left out and says so.
        if "face" in graphs:
            late = [e for e in events if e["type"] == "reading" and e["t_start"] >= 0.99]
            assert late and all(any("face perspective left out" in n for n in r["notes"])
                                for r in late)  # fmt: skip


def test_perspective_keys_that_are_partial_or_the_models_own_are_named(tiny, tmp_path):
    from emolive.export.affectgpt import model as agm
    from emolive.export.affectgpt.checkpoint import CheckpointError, read_checkpoint

    _, f, _ = tiny
    state = perspective_state()
    del state["temporal_proj.bias"]
    with pytest.raises(CheckpointError, match=r"perspective 'temporal': missing key\(s\) "
                       r"\['temporal_proj.bias'\]"):  # fmt: skip
        read_checkpoint(write_checkpoint(tmp_path / "a.pth", state))
    state = perspective_state(("frame",))
    state["frame_proj.weight"] = torch.zeros(HIDDEN, CLIP_DIM + 1)
    with pytest.raises(CheckpointError, match=r"key 'frame_proj.weight' has shape \(64, 25\)"):
        read_checkpoint(write_checkpoint(tmp_path / "b.pth", state))
    own = read_checkpoint(write_checkpoint(tmp_path / "c.pth", perspective_state(("frame",))))
    with pytest.raises(CheckpointError, match="'frame_attention_mlp' / 'frame_proj' name the "
                       "frame perspective, which is this model's own"):  # fmt: skip
        agm.build(own, f["vision"], f["audio"], f["llm"], "frame")
