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

from emolive.export.affectgpt.checkpoint import CheckpointError
from emolive.export.emotion_llama.checkpoint import LORA_TARGETS, lora_key, read_checkpoint
from emolive.runtime.emotion_llama import spec
from emolive.runtime.names import FER_LABELS, LLM_DECODER

LLM_LAYERS = 2
HIDDEN = 64
EVA_WIDTH = 176  # two heads of 88
EVA_BLOCKS = 2
FEAT = 32  # MAE, VideoMAE and HuBERT widths (1024 each in the release)
RANK = 4
TEXT = [
    "[INST] <video></video> <feature><FeatureHere></feature> The person in video says: I am "
    "fine. [emotion] Please determine which emotion label in the video represents: happy, sad, "
    "neutral, angry, worried, surprise, fear, contempt, doubt. [/INST] The emotion is happy.",
]


def tiny_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(TEXT, trainer)
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
    hubert = tr.HubertConfig(
        hidden_size=FEAT, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer",
    )  # fmt: skip
    tr.HubertModel(hubert).save_pretrained(out["audio"])
    llama = tr.LlamaConfig(
        vocab_size=300, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LLM_LAYERS,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    tr.LlamaForCausalLM(llama).save_pretrained(out["llm"])
    tiny_tokenizer(out["llm"])
    (out["llm"] / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2})
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
    blob = {"model": checkpoint_state() if state is None else state, "optimizer": {},
            "config": {"model": {"arch": "minigpt_v2", "lora_r": RANK, "lora_alpha": 16}},
            "scaler": None, "epoch": 5, **extra}  # fmt: skip
    torch.save(blob, path)
    return path


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


def test_missing_lora_keys_are_named(tmp_path):
    state = checkpoint_state()
    key = lora_key(1, "self_attn.v_proj", "B")
    del state[key]
    with pytest.raises(CheckpointError, match=rf"missing 1 LoRA key\(s\), first \['{key}'\]"):
        read_checkpoint(write_checkpoint(tmp_path / "c.pth", state), llm_layers=LLM_LAYERS)
    no_lora = {k: v for k, v in checkpoint_state().items() if "lora" not in k}
    with pytest.raises(CheckpointError, match="no LoRA keys"):
        read_checkpoint(write_checkpoint(tmp_path / "e.pth", no_lora))


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    from tests.test_affectgpt_tiny import checkpoint_state as affectgpt_state

    with pytest.raises(CheckpointError, match="not an Emotion-LLaMA checkpoint"):
        read_checkpoint(write_checkpoint(tmp_path / "affectgpt.pth", {
            k: v for k, v in affectgpt_state().items() if "lora" not in k}))  # fmt: skip
    # AffectGPT's LoRA shares the prefix: then the missing projectors are named
    with pytest.raises(CheckpointError, match=r"missing projector key\(s\) \['llama_proj.weight'"):
        read_checkpoint(write_checkpoint(tmp_path / "affectgpt2.pth", affectgpt_state()))
    torch.save({"state_dict": {}}, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match=r"plain\.pth: no 'model' dict"):
        read_checkpoint(tmp_path / "plain.pth")


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = write_checkpoint(tmp_path / "c.pth")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"c\.pth: not a readable torch checkpoint .*trunc"):
        read_checkpoint(path)


def test_projector_sizes_that_disagree_are_named(tmp_path):
    state = checkpoint_state()
    state["feats_llama_proj2.weight"] = torch.zeros(48, FEAT)
    state["feats_llama_proj2.bias"] = torch.zeros(48)
    with pytest.raises(CheckpointError, match=r"key 'feats_llama_proj2.weight' has shape "
                                              r"\(48, 32\), the LLM width H"):  # fmt: skip
        read_checkpoint(write_checkpoint(tmp_path / "c.pth", state))


# -- export, graphs and generation ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotion_llama")
    folders = build_folders(root)
    return root, folders, write_checkpoint(root / "checkpoint_best.pth")


@pytest.fixture(scope="module")
def bundle(tiny):
    from emolive.export.profiles import export_profile

    root, f, ckpt = tiny
    checks = export_profile(
        "emotion_llama", root / "bundle", log=lambda m: None,
        options={"checkpoint": ckpt, "vision": f["vision"], "audio": f["audio"], "llm": f["llm"]},
    )  # fmt: skip
    return root / "bundle", checks


@pytest.fixture(scope="module")
def reference(tiny):
    from emolive.export.emotion_llama import model as elm

    _, f, ckpt = tiny
    return elm.build(read_checkpoint(ckpt), f["vision"], f["audio"], f["llm"])


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
    assert config["decoding"]["greedy"] and config["decoding"]["stop_ids"] == [2]
    assert config["bos_id"] == 1
