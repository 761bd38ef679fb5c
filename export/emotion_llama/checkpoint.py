"""An Emotion-LLaMA checkpoint (``checkpoint_best.pth``): read, checked by key.

MiniGPT-v2's runner saves ``{"model": the trainable weights, "optimizer", "config",
"scaler", "epoch"}``: the projectors and the LoRA of LLaMA's q/v projections (frozen EVA and
LLaMA weights are not in it). The release loads it with ``strict=False``, so a missing key
would stay random; here every projector and LoRA key the export needs must be present, and
each size is read from the weights. LoRA keys come as PEFT writes them: without an adapter
name (peft 0.2, the release environment) or with ``default`` (peft >= 0.3); both are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolive.export.checkpoint import (
    LORA_PREFIX,
    CheckpointError,
    check_linear_layers,
    load_checkpoint,
    lora_delta,
    required_lora,
    weight_arrays,
)

# Single linear layers (``.weight`` [out, in] + ``.bias``) the export needs, by role.
PROJECTORS = (
    "llama_proj",  # [H, 4·Dvit]: 4 neighbouring EVA patches concatenated -> one LLM token
    "cls_tk_llama_proj",  # [H, Dvit]: EVA's CLS token
    "feats_llama_proj1",  # [H, Dmae]: MAE face feature
    "feats_llama_proj2",  # [H, Dvideomae]: VideoMAE feature
    "feats_llama_proj3",  # [H, Dhubert]: HuBERT feature
)
# Trained but not on the generation path: MiniGPTBase's auxiliary emotion classifier.
UNUSED_PREFIXES = ("attention.",)
OPTIONAL = ("ln_vision.weight", "ln_vision.bias")  # frozen in MiniGPT-v2: default when absent
LORA_TARGETS = ("self_attn.q_proj", "self_attn.v_proj")
LORA_ALPHA = 16.0  # MiniGPT-v2's lora_alpha unless the checkpoint's config says otherwise


def lora_key(layer: int, target: str, ab: str) -> str:
    """The key in the release environment's naming (peft 0.2: no adapter name)."""
    return f"{LORA_PREFIX}{layer}.{target}.lora_{ab}.weight"


@dataclass
class Sizes:
    """Every width, from the weights."""

    vit: int  # EVA's width (1408 for ViT-g)
    face: int  # MAE feature width
    video: int  # VideoMAE feature width
    audio: int  # HuBERT feature width
    hidden: int  # the LLM's
    lora_layers: int
    lora_rank: int


@dataclass
class Checkpoint:
    path: Path
    weights: dict[str, np.ndarray]  # the projectors (and ln_vision when saved), fp32
    lora: dict[str, np.ndarray]  # by lora_key naming
    sizes: Sizes
    lora_alpha: float = LORA_ALPHA
    unexpected: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    epoch: int | None = None

    def linear(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.weights[f"{name}.weight"], self.weights[f"{name}.bias"]

    def lora_delta(self, layer: int, target: str) -> np.ndarray:
        """(alpha / r) · B @ A for one LLaMA linear: [out, in]."""
        a, b = (self.lora[lora_key(layer, target, ab)] for ab in "AB")
        return lora_delta(a, b, self.lora_alpha)


def _alpha(blob: dict) -> float:
    """lora_alpha from the saved run config (``config.model.lora_alpha``) when it has one."""
    config = blob.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    if isinstance(model, dict) and isinstance(model.get("lora_alpha"), (int, float)):
        return float(model["lora_alpha"])
    return LORA_ALPHA


def read_checkpoint(path: Path | str, llm_layers: int | None = None) -> Checkpoint:
    """Read and check ``path``. ``llm_layers``: the LLM's layer count, so that LoRA for each
    of its layers is required (None: the layers the LoRA keys name)."""
    path = Path(path)
    blob = load_checkpoint(path, "MiniGPT-v2's runner's checkpoint")
    # PEFT >= 0.3 names the adapter: its keys read as the release's
    arrays = weight_arrays(path, blob["model"], lambda k: k.replace(".default.weight", ".weight"))
    wanted = [f"{p}.{s}" for p in PROJECTORS for s in ("weight", "bias")]
    if not any(k in wanted or k.startswith(LORA_PREFIX) for k in arrays):
        raise CheckpointError(
            path, "not an Emotion-LLaMA checkpoint: none of its keys is a projector or LoRA "
            f"key (e.g. 'llama_proj.weight'); it has {sorted(arrays)[:6]}",
        )  # fmt: skip
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise CheckpointError(path, f"missing projector key(s) {missing}")
    lora = {k: v for k, v in arrays.items() if k.startswith(LORA_PREFIX)}
    layers, need = required_lora(path, lora, lora_key, LORA_TARGETS, llm_layers)
    used = set(wanted) | set(need) | {k for k in OPTIONAL if k in arrays}
    rest = sorted(set(arrays) - used)
    unused = [k for k in rest if k.startswith(UNUSED_PREFIXES)]
    weights = {k: arrays[k] for k in (*wanted, *OPTIONAL) if k in arrays}
    ckpt = Checkpoint(path, weights, {k: lora[k] for k in need},
                      _sizes(path, weights, lora, layers), _alpha(blob),
                      [k for k in rest if k not in unused], unused, blob.get("epoch"))  # fmt: skip
    return ckpt


def _sizes(path: Path, w: dict, lora: dict, layers: int) -> Sizes:
    def shape(name: str) -> tuple[int, ...]:
        return tuple(w[f"{name}.weight"].shape)

    check_linear_layers(path, w, PROJECTORS)
    hidden, vit = shape("cls_tk_llama_proj")
    for name, want, what in (
        ("llama_proj", (hidden, 4 * vit), "[H, 4·Dvit] with H and Dvit of cls_tk_llama_proj"),
        *((f"feats_llama_proj{i}", hidden, "the LLM width H of cls_tk_llama_proj")
          for i in (1, 2, 3)),
    ):  # fmt: skip
        got = shape(name) if isinstance(want, tuple) else shape(name)[0]
        if got != want:
            raise CheckpointError(path, f"key '{name}.weight' has shape {shape(name)}, {what} "
                                        f"wants {want}")  # fmt: skip
    for k in OPTIONAL:
        if k in w and w[k].shape != (vit,):
            raise CheckpointError(path, f"key '{k}' has shape {w[k].shape}, EVA's width is {vit}")
    rank = lora[lora_key(0, LORA_TARGETS[0], "A")].shape[0]
    return Sizes(vit=vit, face=shape("feats_llama_proj1")[1], video=shape("feats_llama_proj2")[1],
                 audio=shape("feats_llama_proj3")[1], hidden=hidden, lora_layers=layers,
                 lora_rank=rank)  # fmt: skip
