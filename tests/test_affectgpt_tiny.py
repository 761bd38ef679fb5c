"""Tiny random-weight AffectGPT parts in Hugging Face layout, and a checkpoint with the real
key names (LoRA in PEFT's naming with the ``default`` adapter, fp32); the checkpoint's
errors, each naming its key or file. The builders serve tests/test_affectgpt_export.py."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from emolive.export.affectgpt.checkpoint import (
    LORA_TARGETS,
    PROJECTORS,
    CheckpointError,
    lora_key,
    read_checkpoint,
)
from tests.tiny_exports import save_tiny_hubert, write_training_checkpoint

TEXT = [
    "The audio and video merged info is happy sad angry calm worried surprised.",
    "Please infer the person's emotional state and provide your reasoning process.",
    "Now, please answer my question based on all the provided information.",
]
LLM_LAYERS = 2
HIDDEN = 64
CLIP_DIM = 24  # CLIP projection_dim: Dv
HUBERT_DIM = 32  # Da
RANK = 4


def tiny_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(TEXT, trainer)
    tok.save(str(folder / "tokenizer.json"))


def build_folders(root: Path, seed: int = 0) -> dict[str, Path]:
    import transformers as tr

    torch.manual_seed(seed)
    out = {k: root / k for k in ("vision", "audio", "llm")}
    clip = tr.CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                         num_attention_heads=2, vocab_size=64, max_position_embeddings=8,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                           num_attention_heads=2, image_size=224, patch_size=32),
        projection_dim=CLIP_DIM,
    )  # fmt: skip
    tr.CLIPModel(clip).save_pretrained(out["vision"])
    save_tiny_hubert(out["audio"], HUBERT_DIM, layers=3)
    qwen = tr.Qwen2Config(
        vocab_size=320, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LLM_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    llm = tr.Qwen2ForCausalLM(qwen)
    with torch.no_grad():  # a random model's q/k/v biases start at zero: make them count
        for layer in llm.model.layers:
            for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                p.bias.normal_(0, 0.5)
    llm.save_pretrained(out["llm"])
    tiny_tokenizer(out["llm"])
    (out["llm"] / "generation_config.json").write_text(
        json.dumps({"top_k": 20, "top_p": 0.8, "eos_token_id": [2, 0]})
    )
    return out


def checkpoint_state(seed: int = 0, layers: int = LLM_LAYERS, hidden: int = HIDDEN) -> dict:
    g = torch.Generator().manual_seed(seed)
    dv, da = CLIP_DIM, HUBERT_DIM
    m = max(dv, da)
    shapes = {
        "image_llama_proj": (hidden, dv), "video_attention_mlp": (1, dv),
        "affectgpt_proj": (hidden, dv), "audio_attention_mlp": (1, da),
        "audio_llama_proj": (hidden, da), "multi_video_embs": (m, dv),
        "multi_audio_embs": (m, da), "attention_mlp": (m, 2 * m), "fc_att": (2, m),
        "multi_llama_proj": (hidden, m),
    }  # fmt: skip
    state = {}
    for name, (o, i) in shapes.items():
        state[f"{name}.weight"] = torch.randn(o, i, generator=g) / i**0.5
        state[f"{name}.bias"] = torch.randn(o, generator=g) * 0.1
    dims = {"self_attn.q_proj": (64, 64), "self_attn.k_proj": (32, 64),
            "self_attn.v_proj": (32, 64), "self_attn.o_proj": (64, 64),
            "mlp.gate_proj": (96, 64), "mlp.up_proj": (96, 64), "mlp.down_proj": (64, 96)}  # fmt: skip
    for i in range(layers):
        for t in LORA_TARGETS:
            o, n = dims[t]
            state[lora_key(i, t, "A")] = torch.randn(RANK, n, generator=g) * 0.1
            state[lora_key(i, t, "B")] = torch.randn(o, RANK, generator=g) * 0.1
    return state


FACE_CONFIG = {"datasets": {"mercaptionplus": {"face_or_frame": "multiface_audio_face_text"}}}


def write_checkpoint(path: Path, state: dict | None = None, **extra) -> Path:
    """``torch.save`` of AffectGPT's checkpoint dict, storages tagged cuda:0."""
    state = checkpoint_state() if state is None else state
    return write_training_checkpoint(
        path, state, **{"config": {"run": "tiny"}, "epoch": 3, **extra}
    )


# -- the checkpoint's errors ------------------------------------------------------------------
def test_the_checkpoint_is_saved_from_cuda_and_loads_on_the_cpu(tmp_path):
    path = write_checkpoint(tmp_path / "c.pth")
    with zipfile.ZipFile(path) as z:
        pickle = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"cuda:0" in pickle and b"cpu" not in pickle  # every storage tagged as on the GPU
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # as the real files fail without map_location
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert blob["model"]["affectgpt_proj.weight"].device.type == "cpu"
    assert read_checkpoint(path).sizes.hidden == HIDDEN


def test_the_model_kind_comes_from_the_saved_config(tmp_path):
    from emolive.export.affectgpt.checkpoint import checkpoint_mode

    face = read_checkpoint(write_checkpoint(tmp_path / "f.pth", config=FACE_CONFIG))
    assert checkpoint_mode(face)[0] == "face"
    assert "datasets.mercaptionplus.face_or_frame" in checkpoint_mode(face)[1]
    frame = {"datasets": {"ovmerd": {"face_or_frame": "multiframe_audio_frame_text"}}}
    assert checkpoint_mode(read_checkpoint(write_checkpoint(tmp_path / "r.pth", config=frame))) \
        [0] == "frame"  # fmt: skip
    assert checkpoint_mode(read_checkpoint(write_checkpoint(tmp_path / "n.pth")))[0] is None
    mixed = {
        "datasets": {"a": {"face_or_frame": "multiface_x"}, "b": {"face_or_frame": "multiframe_y"}}
    }
    with pytest.raises(CheckpointError, match="disagrees on face_or_frame"):
        checkpoint_mode(read_checkpoint(write_checkpoint(tmp_path / "m.pth", config=mixed)))


def test_an_asked_mode_is_followed_and_one_against_the_config_warns(tmp_path):
    from emolive.export.affectgpt.checkpoint import choose_mode

    face = read_checkpoint(write_checkpoint(tmp_path / "f.pth", config=FACE_CONFIG))
    plain = read_checkpoint(write_checkpoint(tmp_path / "n.pth"))
    assert choose_mode(face, None)[::2] == ("face", None)
    assert choose_mode(plain, None)[::2] == ("frame", None)  # the config names none
    assert choose_mode(face, "face")[::2] == ("face", None)
    assert choose_mode(plain, "face")[::2] == ("face", None)
    mode, why, warning = choose_mode(face, "frame")
    assert mode == "frame" and "against config.datasets.mercaptionplus.face_or_frame" in why
    assert "trained on face crops" in warning and "reading whole frames" in warning
    mixed = {"datasets": {"a": {"face_or_frame": "multiface_x"},
                          "b": {"face_or_frame": "multiframe_y"}}}  # fmt: skip
    both = read_checkpoint(write_checkpoint(tmp_path / "m.pth", config=mixed))
    with pytest.raises(CheckpointError, match="disagrees on face_or_frame"):
        choose_mode(both, None)
    mode, _, warning = choose_mode(both, "face")  # the flag settles what the config cannot
    assert mode == "face" and "disagrees on face_or_frame" in warning


def test_a_good_checkpoint_reads_with_sizes_from_the_weights(tmp_path):
    ck = read_checkpoint(write_checkpoint(tmp_path / "c.pth"), llm_layers=LLM_LAYERS)
    s = ck.sizes
    assert (s.video, s.audio, s.multi, s.hidden, s.lora_rank) == (24, 32, 32, 64, RANK)
    assert ck.unexpected == [] and ck.epoch == 3
    delta = ck.lora_delta(1, "mlp.down_proj")
    a = ck.lora[lora_key(1, "mlp.down_proj", "A")]
    b = ck.lora[lora_key(1, "mlp.down_proj", "B")]
    np.testing.assert_allclose(delta, (32 / RANK) * b @ a, rtol=1e-4, atol=1e-6)


def test_unexpected_keys_are_reported(tmp_path):
    state = checkpoint_state()
    state["video_Qformer.bert.x.weight"] = torch.zeros(2)
    ck = read_checkpoint(write_checkpoint(tmp_path / "c.pth", state))
    assert ck.unexpected == ["video_Qformer.bert.x.weight"]


@pytest.mark.parametrize(
    "drop", ["affectgpt_proj.weight", "fc_att.bias", "multi_llama_proj.weight"]
)
def test_a_missing_projector_or_fusion_key_is_named(tmp_path, drop):
    state = checkpoint_state()
    del state[drop]
    with pytest.raises(
        CheckpointError, match=rf"c\.pth: missing projector/fusion key\(s\) \['{drop}'\]"
    ):
        read_checkpoint(write_checkpoint(tmp_path / "c.pth", state))


def test_lora_for_fewer_layers_than_the_llm_has_is_named(tmp_path):
    # a missing key, a file without LoRA: tests/test_lora_checkpoint.py (both profiles)
    short = checkpoint_state(layers=1)
    with pytest.raises(CheckpointError, match=r"layers\.1\.self_attn\.q_proj\.lora_A"):
        read_checkpoint(write_checkpoint(tmp_path / "d.pth", short), llm_layers=LLM_LAYERS)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    other = {"model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4),
             "llama_proj.weight": torch.zeros(4, 4)}  # fmt: skip
    with pytest.raises(CheckpointError, match="not an AffectGPT checkpoint"):
        read_checkpoint(write_checkpoint(tmp_path / "other.pth", other))
    # Emotion-LLaMA's (MiniGPT-v2's) keys: LoRA on the same layer prefix, its own projectors.
    emotion_llama = {"llama_proj.weight": torch.zeros(8, 20), "cls_tk_llama_proj.weight":
                     torch.zeros(8, 4), "feats_llama_proj1.weight": torch.zeros(8, 4),
                     "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":
                     torch.zeros(2, 8)}  # fmt: skip
    with pytest.raises(CheckpointError, match=r"el\.pth: not an AffectGPT checkpoint.*"
                       r"'cls_tk_llama_proj.weight'"):  # fmt: skip
        read_checkpoint(write_checkpoint(tmp_path / "el.pth", emotion_llama))


def test_projector_sizes_that_disagree_are_named(tmp_path):
    state = checkpoint_state()
    state["multi_llama_proj.weight"] = torch.zeros(48, 32)  # H 48, affectgpt_proj says 64
    state["multi_llama_proj.bias"] = torch.zeros(48)
    with pytest.raises(
        CheckpointError, match=r"key 'multi_llama_proj.weight' has shape \(48, 32\)"
    ):
        read_checkpoint(write_checkpoint(tmp_path / "c.pth", state))


def test_every_projector_is_required():
    assert len(PROJECTORS) == 9
