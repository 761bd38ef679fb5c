"""Emotion-LLaMA layout end to end on tiny random-weight models: export -> bundle -> live
session, and the checkpoint's errors, each naming its key or file.

Built here: an EVA ViT-g-shaped state dict (``eva_vit_g.pth`` key names, a 224-px position
grid the export resizes to 448 px), ``ViTMAEModel``, ``VideoMAEModel``, ``HubertModel`` and
``LlamaForCausalLM`` with a few small layers in Hugging Face layout, and a checkpoint with the
release's key names (projectors, LoRA of q/v in PEFT's naming, fp32)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emolive.export.checkpoint import CheckpointError
from emolive.export.emotion_llama.checkpoint import LORA_TARGETS, lora_key, read_checkpoint
from emolive.runtime.emotion_llama import spec
from emolive.runtime.names import FER_LABELS, LLM_DECODER
from tests.tiny_exports import export_tiny, save_tiny_hubert, write_training_checkpoint
from tests.tiny_media import clip_with_audio, face_clip, read_file

LLM_LAYERS = 2
HIDDEN = 64
EVA_WIDTH = 176  # two heads of 88
EVA_BLOCKS = 2
FEAT = 32  # MAE, VideoMAE and HuBERT widths (1024 each in the release)
RANK = 4
LLAMA_SPECIALS = ("<s>", "</s>")
BOS, EOS = 300, 301
VOCAB = 320


def tiny_tokenizer(folder: Path) -> None:
    """AffectGPT's tiny byte-level BPE with LLaMA's specials added (<s> 300, </s> 301)."""
    from tokenizers import AddedToken, Tokenizer

    from tests.test_affectgpt_tiny import tiny_tokenizer as bpe

    bpe(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA_SPECIALS])
    tok.save(str(folder / "tokenizer.json"))


def eva_state(g: torch.Generator, blocks: int = EVA_BLOCKS, width: int = EVA_WIDTH) -> dict:
    """LAVIS's eva_vit_g.pth naming, a 16x16 (224 px) position grid, patch 14."""
    mlp = 256

    def rnd(*shape, scale=0.02):
        return torch.randn(*shape, generator=g) * scale

    sd = {"cls_token": rnd(1, 1, width, scale=0.5), "pos_embed": rnd(1, 257, width, scale=0.5),
          "patch_embed.proj.weight": rnd(width, 3, 14, 14, scale=0.05),
          "patch_embed.proj.bias": rnd(width)}  # fmt: skip
    for i in range(blocks):
        p = f"blocks.{i}."
        sd.update({
            p + "norm1.weight": 1 + rnd(width, scale=0.1), p + "norm1.bias": rnd(width),
            p + "attn.qkv.weight": rnd(3 * width, width, scale=0.08),
            p + "attn.q_bias": rnd(width, scale=0.1), p + "attn.v_bias": rnd(width, scale=0.1),
            p + "attn.proj.weight": rnd(width, width, scale=0.08), p + "attn.proj.bias": rnd(width),
            p + "norm2.weight": 1 + rnd(width, scale=0.1), p + "norm2.bias": rnd(width),
            p + "mlp.fc1.weight": rnd(mlp, width, scale=0.08), p + "mlp.fc1.bias": rnd(mlp),
            p + "mlp.fc2.weight": rnd(width, mlp, scale=0.08), p + "mlp.fc2.bias": rnd(width),
        })  # fmt: skip
    return sd


def build_folders(root: Path, seed: int = 0) -> dict[str, Path]:
    import transformers as tr

    torch.manual_seed(seed)
    out = {k: root / k for k in ("vision", "audio", "llm")}
    out["vision"].mkdir(parents=True)
    torch.save(eva_state(torch.Generator().manual_seed(seed)), out["vision"] / "eva_vit_g.pth")
    small = dict(hidden_size=FEAT, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=48, image_size=224, patch_size=32)  # fmt: skip
    tr.ViTMAEModel(tr.ViTMAEConfig(**small, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                                   decoder_intermediate_size=16)).save_pretrained(
        out["vision"] / "mae")  # fmt: skip
    tr.VideoMAEModel(tr.VideoMAEConfig(**small, num_frames=16, tubelet_size=2)).save_pretrained(
        out["vision"] / "videomae"
    )
    save_tiny_hubert(out["audio"], FEAT, layers=2)
    llama = tr.LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LLM_LAYERS,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
        tie_word_embeddings=False, bos_token_id=BOS, eos_token_id=EOS,
    )  # fmt: skip
    tr.LlamaForCausalLM(llama).save_pretrained(out["llm"])
    tiny_tokenizer(out["llm"])
    (out["llm"] / "generation_config.json").write_text(
        json.dumps({"bos_token_id": BOS, "eos_token_id": EOS})
    )
    return out


def checkpoint_state(seed: int = 0, layers: int = LLM_LAYERS, hidden: int = HIDDEN,
                     adapter: str = "") -> dict:  # fmt: skip
    """The trainable weights as MiniGPT-v2 saves them; ``adapter``: "" (peft 0.2) or
    ".default" (peft >= 0.3) in the LoRA keys."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "llama_proj": (hidden, 4 * EVA_WIDTH),
        "cls_tk_llama_proj": (hidden, EVA_WIDTH),
        "feats_llama_proj1": (hidden, FEAT),
        "feats_llama_proj2": (hidden, FEAT),
        "feats_llama_proj3": (hidden, FEAT),
        "attention.fc_att": (7, 128),
    }  # fmt: skip  (the auxiliary classifier: unused)
    state = {}
    for name, (o, i) in shapes.items():
        state[f"{name}.weight"] = torch.randn(o, i, generator=g) / i**0.5
        state[f"{name}.bias"] = torch.randn(o, generator=g) * 0.1
    for i in range(layers):
        for t in LORA_TARGETS:
            a, b = lora_key(i, t, "A"), lora_key(i, t, "B")
            state[a.replace(".weight", adapter + ".weight")] = (
                torch.randn(RANK, hidden, generator=g) * 0.1
            )
            state[b.replace(".weight", adapter + ".weight")] = (
                torch.randn(hidden, RANK, generator=g) * 0.1
            )
    return state


def write_checkpoint(path: Path, state: dict | None = None, **extra) -> Path:
    """MiniGPT-v2's runner's checkpoint dict, storages tagged cuda:0."""
    state = checkpoint_state() if state is None else state
    config = {"model": {"arch": "minigpt_v2", "lora_r": RANK, "lora_alpha": 16}}
    return write_training_checkpoint(path, state, **{"config": config, "epoch": 5, **extra})


# -- the checkpoint ---------------------------------------------------------------------------
def test_a_good_checkpoint_reads_with_sizes_from_the_weights(tmp_path):
    ck = read_checkpoint(write_checkpoint(tmp_path / "c.pth"), llm_layers=LLM_LAYERS)
    s = ck.sizes
    assert (s.vit, s.face, s.video, s.audio, s.hidden, s.lora_rank) == (176, 32, 32, 32, 64, 4)
    assert ck.unexpected == [] and ck.unused == ["attention.fc_att.bias", "attention.fc_att.weight"]
    a = ck.lora[lora_key(1, "self_attn.v_proj", "A")]
    b = ck.lora[lora_key(1, "self_attn.v_proj", "B")]
    np.testing.assert_allclose(ck.lora_delta(1, "self_attn.v_proj"), (16 / RANK) * b @ a,
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    # PEFT >= 0.3 names the adapter: the same weights read
    other = read_checkpoint(write_checkpoint(tmp_path / "d.pth", checkpoint_state(
        adapter=".default")))  # fmt: skip
    assert set(other.lora) == set(ck.lora)


@pytest.mark.parametrize("drop", ["llama_proj.weight", "cls_tk_llama_proj.bias",
                                  "feats_llama_proj3.weight"])  # fmt: skip
def test_a_missing_projector_key_is_named(tmp_path, drop):
    state = checkpoint_state()
    del state[drop]
    with pytest.raises(CheckpointError, match=rf"c\.pth: missing projector key\(s\) \['{drop}'\]"):
        read_checkpoint(write_checkpoint(tmp_path / "c.pth", state))


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    from tests.test_affectgpt_tiny import checkpoint_state as affectgpt_state

    with pytest.raises(CheckpointError, match="not an Emotion-LLaMA checkpoint"):
        read_checkpoint(write_checkpoint(tmp_path / "affectgpt.pth", {
            k: v for k, v in affectgpt_state().items() if "lora" not in k}))  # fmt: skip
    # AffectGPT's LoRA shares the prefix: then the missing projectors are named
    with pytest.raises(CheckpointError, match=r"missing projector key\(s\) \['llama_proj.weight'"):
        read_checkpoint(write_checkpoint(tmp_path / "affectgpt2.pth", affectgpt_state()))


def test_projector_sizes_that_disagree_are_named(tmp_path):
    state = checkpoint_state()
    state["feats_llama_proj2.weight"] = torch.zeros(48, FEAT)
    state["feats_llama_proj2.bias"] = torch.zeros(48)
    with pytest.raises(CheckpointError, match=r"key 'feats_llama_proj2.weight' has shape "
                                              r"\(48, 32\), the LLM width H"):  # fmt: skip
        read_checkpoint(write_checkpoint(tmp_path / "c.pth", state))


def test_eva_is_built_from_its_file_as_minigpt_builds_it(tmp_path):
    from emolive.export.emotion_llama.eva import EvaFileError, load_eva

    # EVA-CLIP's 40 blocks: MiniGPT-v2 builds 39, the last block's keys are left out
    torch.save(eva_state(torch.Generator().manual_seed(1), blocks=40, width=88), tmp_path / "g.pth")
    eva, left_out = load_eva(tmp_path / "g.pth", 448)
    assert (len(eva.blocks), eva.shape.heads, eva.shape.grid) == (39, 1, 32)
    assert len(left_out) == 13 and all(k.startswith("blocks.39.") for k in left_out)
    assert eva.pos_embed.shape == (1, 1025, 88)  # the 16x16 grid resized to 32x32
    sd = eva_state(torch.Generator().manual_seed(1))
    del sd["blocks.1.attn.v_bias"]
    torch.save(sd, tmp_path / "h.pth")
    with pytest.raises(EvaFileError, match=r"h\.pth: missing key 'blocks\.1\.attn\.v_bias'"):
        load_eva(tmp_path / "h.pth", 448)


# -- export, graphs and generation ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotion_llama")
    folders = build_folders(root)
    return root, folders, write_checkpoint(root / "checkpoint_best.pth")


@pytest.fixture(scope="module")
def bundle(tiny):
    root, f, ckpt = tiny
    # the model alone: no face detector, no ASR (the full one below)
    return root / "bundle", export_tiny("emotion_llama", root / "bundle", ckpt, f, ["model"])


@pytest.fixture(scope="module")
def reference(tiny):
    from emolive.export.emotion_llama import model as elm

    _, f, ckpt = tiny
    return elm.build(read_checkpoint(ckpt), f["vision"], f["audio"], f["llm"])


@pytest.mark.slow
def test_the_export_writes_a_checked_bundle(bundle):
    from emolive.runtime.bundle import Bundle

    root, checks = bundle
    b = Bundle.open(root)
    assert b.profile == "emotion_llama"
    assert {spec.VISION, spec.FACE, spec.VIDEO, spec.AUDIO, LLM_DECODER} <= set(b.graphs)
    c = checks["model"]
    assert c[LLM_DECODER]["greedy_tokens_identical"] > 0
    assert c["checkpoint"]["lora_scale"] == 4.0  # alpha 16 / r 4
    assert c["checkpoint"]["ln_vision"] == "default (1, 0)"
    config = json.loads(b.file(spec.CONFIG).read_text())
    assert config["visual_tokens"] == 260  # 256 grouped patches + 3 features + CLS
    assert config["decoding"]["greedy"] and config["decoding"]["stop_ids"] == [EOS]
    assert config["bos_id"] == BOS
    # the instruction's labels the wheel lacks stay emotion words: open labels, never dropped
    from emolive.runtime.affectgpt.answers import parse_answer

    wheel = json.loads(b.file(spec.WHEEL).read_text())["words"]
    assert all(label in wheel for label in spec.LABELS)
    parsed = parse_answer("The emotion is doubt.", FER_LABELS, wheel)
    assert parsed.probs is None and parsed.open_labels == ("doubt",)
    assert parse_answer("doubt", spec.LABELS, wheel).mentions == {"doubt": 1}


# -- pure pieces ------------------------------------------------------------------------------
def test_frames_are_sampled_as_each_encoder_takes_them():
    from emolive.runtime.emotion_llama.media import utterance, video_indices, window_pixels

    # 40 frames: tick (40 - 1) / 8 = 4.875, segments start at int(2.4375 + 4.875 k)
    assert video_indices(40).tolist() == [2, 3, 7, 8, 12, 13, 17, 18, 21, 22, 26, 27, 31, 32,
                                          36, 37]  # fmt: skip
    assert video_indices(5).tolist() == [0, 1] * 8  # too few frames: every segment at 0
    frames = [np.full((448, 448, 3), i, np.uint8) for i in range(30)]
    px = window_pixels(frames)
    assert px[spec.VISION].shape == (1, 3, 448, 448) and px[spec.VISION].max() == 0  # 1st frame
    assert px[spec.FACE].shape == (8, 3, 224, 224) and px[spec.VIDEO].shape == (16, 3, 224, 224)
    assert px[spec.FACE][:, 0, 0, 0].tolist() == [0, 3, 7, 11, 15, 18, 22, 26]
    assert len(utterance(np.ones(10, np.float32))) == spec.MIN_SAMPLES


def test_the_prompt_is_split_at_its_placeholder_and_the_answer_cut():
    from emolive.runtime.emotion_llama.prompt import cut_answer, prompt_pieces, prompt_text

    text = prompt_text(spec.TEMPLATE, "I am fine", "emotion", spec.INSTRUCTIONS["emotion"])
    assert text.startswith("<s>[INST] <video><VideoHere></video> <feature><FeatureHere>")
    assert "says: I am fine.  [emotion] Please determine" in text and text.endswith(".  [/INST]")

    class Chars:  # one id per character
        def encode(self, s):
            return [ord(c) for c in s]

    head, tail = prompt_pieces(Chars(), text, bos_id=1)
    assert head[0] == 1 and "".join(map(chr, head[1:])) == "<s>[INST] <video>"
    assert "".join(map(chr, tail)).startswith("</video> <feature><FeatureHere>")
    with pytest.raises(ValueError, match="once"):
        prompt_pieces(Chars(), "no placeholder", 1)
    assert cut_answer("[INST] x [/INST] The emotion is happy.</s> more") == "The emotion is happy."


# -- every graph at run time against torch ------------------------------------------------
@pytest.mark.slow
def test_every_graph_matches_torch_and_greedy_generation_is_identical(bundle, reference):
    from emolive.export.affectgpt.model import greedy
    from emolive.export.emotion_llama.model import embed_prompt
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.emotion_llama.media import window_pixels
    from emolive.runtime.emotion_llama.prompt import visual_tokens
    from emolive.runtime.emotion_llama.reasoner import EmotionLlamaModel

    model = EmotionLlamaModel.from_bundle(Bundle.open(bundle[0]))
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 255, (448, 448, 3), dtype=np.uint8) for _ in range(12)]
    samples = rng.normal(0, 0.2, 16000 * 2).astype(np.float32)
    visual = model.encode(frames, samples)
    px = {k: torch.from_numpy(v) for k, v in window_pixels(frames).items()}
    with torch.no_grad():
        patches, cls = reference.vision(px[spec.VISION])
        want = visual_tokens(patches, reference.face(px[spec.FACE]), reference.video(
            px[spec.VIDEO]), reference.audio(torch.from_numpy(samples)), cls)  # fmt: skip
    assert visual.shape == (260, HIDDEN)
    np.testing.assert_allclose(visual, want, atol=1e-4, rtol=1e-3)
    gen = model.answer(visual, "I am fine", model.generation_config(max_new_tokens=40))
    embeds = embed_prompt(reference.llm, model.prompt("I am fine"), visual)
    ref = greedy(reference.llm, embeds, len(gen.ids) + 1, model.tokenizer.stop_ids)
    assert len(gen.ids) >= 20 and list(gen.ids) == ref[: len(gen.ids)]


# -- the live session -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_live_session_runs_the_bundle_from_a_video_with_audio(bundle, tmp_path):
    events, readings, stats = read_file(bundle[0], clip_with_audio(tmp_path / "clip.mp4"), 1.5)
    assert len(readings) >= 2, [e["type"] for e in events]
    for r in readings:
        assert set(r["backend"]["graphs"]) == {spec.VISION, spec.FACE, spec.VIDEO, spec.AUDIO,
                                               LLM_DECODER}  # fmt: skip
        assert r["latency_ms"]["llm_answer"] > 0 and r["latency_ms"]["encoders"] > 0
        assert any("no face detector in this bundle, MAE reads whole frames" in n
                   for n in r["notes"])  # fmt: skip
        # a label came from the answer's words, or the reading says the answer named none
        assert r["emotion"] is not None or any("names no emotion" in n for n in r["notes"]), r
    assert stats["frames_analysed"] == 45


# -- bad inputs ------------------------------------------------------------------------------
def _export(tiny, tmp_path, **change):
    _, f, ckpt = tiny
    export_tiny("emotion_llama", tmp_path / "b", change.pop("checkpoint", ckpt), {**f, **change},
                ["model"])  # fmt: skip


@pytest.mark.slow
def test_llm_hidden_size_disagreeing_with_a_projector_is_named(tiny, tmp_path):
    wide = write_checkpoint(tmp_path / "wide.pth", checkpoint_state(hidden=48))
    with pytest.raises(CheckpointError, match=r"key 'cls_tk_llama_proj.weight' expects \(48, "
                       r"176\); the LLM's hidden size .* gives \(64, 176\)"):  # fmt: skip
        _export(tiny, tmp_path, checkpoint=wide)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_encoder_folders_and_files_without_weights_are_named(tiny, tmp_path):
    from emolive.export.affectgpt.model import EncoderFolderError
    from emolive.export.emotion_llama.eva import EvaFileError

    _, f, _ = tiny
    vision = tmp_path / "vision"
    shutil.copytree(f["vision"], vision)
    (vision / "videomae" / "model.safetensors").unlink()
    with pytest.raises(EncoderFolderError, match=rf"{vision / 'videomae'}: VideoMAE .* no weights"):
        _export(tiny, tmp_path, vision=vision)
    eva = vision / "eva_vit_g.pth"
    eva.write_bytes(eva.read_bytes()[:4000])
    with pytest.raises(EvaFileError, match=r"eva_vit_g\.pth: not a readable torch file"):
        _export(tiny, tmp_path, vision=vision)
    eva.unlink()
    with pytest.raises(EncoderFolderError, match="vision folder has no eva_vit_g.pth"):
        _export(tiny, tmp_path, vision=vision)


def test_the_cli_exports_with_the_profile_options(tiny, tmp_path):
    from click.testing import CliRunner

    from emolive.cli.export import export

    root, f, ckpt = tiny
    res = CliRunner().invoke(export, ["--profile", "emotion_llama", "--out", str(tmp_path / "b"),
                                      "--checkpoint", str(ckpt), "--vision", str(f["vision"]),
                                      "--audio", str(f["audio"])])  # fmt: skip
    assert res.exit_code == 2 and "--llm" in res.output


@pytest.mark.slow
def test_eval_runs_on_the_bundle(bundle, tmp_path):
    """`emo-live eval` measures an emotion_llama bundle's readings: the clip goes through the
    profile's own stages and reasoner."""
    from click.testing import CliRunner

    from emolive.calibrate.eval.items import ItemRunner
    from emolive.calibrate.eval.readers import read_manifest
    from emolive.cli.main import main

    clip = clip_with_audio(tmp_path / "clip.mp4")
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"path,label\n{clip},sad\n", encoding="utf-8")
    out = tmp_path / "report"
    got = CliRunner().invoke(main, ["eval", "--data", str(manifest), "--modality", "all",
                                    "--bundle", str(bundle[0]), "--out", str(out)])  # fmt: skip
    assert got.exit_code == 0, got.output
    run = json.loads((out / "report.json").read_text())["runs"]["bundle"]
    assert run["metrics"]["n"] == 1 and run["skipped"] == 0
    item = run["items"][0]
    assert item["label"] == "sad" and item["kind"] == "video"
    assert item["emotion"] in FER_LABELS or (item["emotion"] is None and item["abstained"]), item
    result = ItemRunner(bundle[0], FER_LABELS, modality="all", explain="all").run(
        read_manifest(manifest).items[0]
    )
    latency = result.reading["latency_ms"]
    assert latency["encoders"] > 0 and latency["llm_answer"] > 0, latency


@pytest.mark.slow
def test_with_every_stage_mae_reads_face_crops_and_whisper_writes_the_subtitle(
    tiny, media_bgr, tmp_path, monkeypatch
):
    """The bundle with the 'faces' and 'speech' stages: a clip whose first half shows a real
    face while a voice speaks; MAE reads that half's face crops, the faceless windows say MAE
    read whole frames, and the spoken words reach the prompt's subtitle."""
    from emolive.runtime.emotion_llama.reasoner import EmotionLlamaModel
    from emolive.runtime.names import FACE_DETECTOR_FULL, VAD

    root, f, ckpt = tiny
    export_tiny("emotion_llama", tmp_path / "full", ckpt, f)
    subtitles: list[str] = []
    faces_read: list[int] = []
    prompt, encode = EmotionLlamaModel.prompt, EmotionLlamaModel.encode

    def recording_prompt(self, subtitle, task=None):  # the real methods, their inputs recorded
        subtitles.append(subtitle)
        return prompt(self, subtitle, task)

    def recording_encode(self, frames, samples, faces=None):
        faces_read.append(len(faces or []))
        return encode(self, frames, samples, faces)

    monkeypatch.setattr(EmotionLlamaModel, "prompt", recording_prompt)
    monkeypatch.setattr(EmotionLlamaModel, "encode", recording_encode)
    clip = face_clip(tmp_path / "face.mp4", media_bgr("single_face.jpg"))
    _, readings, stats = read_file(tmp_path / "full", clip, 1.0)
    assert 15 <= stats["frames_with_faces"] <= 25
    assert any(n > 0 for n in faces_read) and 0 in faces_read, faces_read
    assert any("happy" in s.lower() for s in subtitles), subtitles
    notes = [n for r in readings for n in r["notes"]]
    assert not any("no ASR" in n or "no face detector" in n for n in notes)
    assert any("no face in this window: MAE read whole frames" in n for n in notes)
    read = [r for r in readings if "llm_answer" in r["latency_ms"]]
    assert read and all({FACE_DETECTOR_FULL, VAD} <= set(r["backend"]["graphs"]) for r in read)
