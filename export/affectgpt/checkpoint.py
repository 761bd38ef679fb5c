"""An AffectGPT training checkpoint (``checkpoint_%06d_loss_%.3f.pth``): read, checked by key.

The file is ``torch.save`` of {"model": the trainable weights only, "optimizer", "config",
"scaler", "epoch"}, fp32, storages saved from ``cuda:0``. AffectGPT itself loads it with
``strict=False``, so a missing key silently stays random; here every projector, fusion and
LoRA key the export needs must be present, and each size is read from the weights.
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
    "video_attention_mlp",  # [1, Dv]: frame scores (no softmax)
    "affectgpt_proj",  # [H, Dv]: pooled frames -> <FaceHere>/<FrameHere>
    "audio_attention_mlp",  # [1, Da]
    "audio_llama_proj",  # [H, Da] -> <AudioHere>
    "multi_video_embs",  # [M, Dv], M = max(Da, Dv)
    "multi_audio_embs",  # [M, Da]
    "attention_mlp",  # [M, 2M]
    "fc_att",  # [2, M]
    "multi_llama_proj",  # [H, M] -> <MultiHere>
)
UNUSED = ("image_llama_proj",)  # always saved; video models never use it
# Extra visual perspectives (multi-perspective visual projection, spec.PERSPECTIVES): each
# its own attention pooling ``<p>_attention_mlp`` [1, Dv] and projector ``<p>_proj`` [H, Dv];
# the model's own perspective (face or frame) keeps AffectGPT's keys above.
PERSPECTIVES = ("face", "frame", "temporal")


def perspective_keys(perspective: str) -> tuple[str, str]:
    return f"{perspective}_attention_mlp", f"{perspective}_proj"


LORA_TARGETS = (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
)  # fmt: skip
LORA_ALPHA = 32.0  # AffectGPT's LoraConfig(lora_alpha=32), whatever r is


def lora_key(layer: int, target: str, ab: str) -> str:
    return f"{LORA_PREFIX}{layer}.{target}.lora_{ab}.default.weight"


@dataclass
class Sizes:
    """Every width, from the weights."""

    video: int  # Dv: the vision encoder's feature (CLIP projection_dim)
    audio: int  # Da: HuBERT's hidden size
    multi: int  # M
    hidden: int  # H: the LLM's
    lora_layers: int
    lora_rank: int


@dataclass
class Checkpoint:
    path: Path
    weights: dict[str, np.ndarray]  # the projectors and fusion layers, fp32
    lora: dict[str, np.ndarray]  # LoRA keys as saved
    sizes: Sizes
    unexpected: list[str] = field(default_factory=list)
    epoch: int | None = None
    config: dict = field(default_factory=dict)  # the training config saved with the weights
    perspectives: tuple[str, ...] = ()  # extra visual perspectives whose keys it holds

    def linear(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.weights[f"{name}.weight"], self.weights[f"{name}.bias"]

    def lora_delta(self, layer: int, target: str) -> np.ndarray:
        """(alpha / r) · B @ A for one LLM linear: [out, in]."""
        a, b = (self.lora[lora_key(layer, target, ab)] for ab in "AB")
        return lora_delta(a, b, LORA_ALPHA)


def read_checkpoint(path: Path | str, llm_layers: int | None = None) -> Checkpoint:
    """Read and check ``path``. ``llm_layers``: the LLM's layer count, so that LoRA for each
    of its layers is required (None: the layers the LoRA keys name)."""
    path = Path(path)
    blob = load_checkpoint(path, "an AffectGPT checkpoint")
    arrays = weight_arrays(path, blob["model"])
    layers_named = (*PROJECTORS, *UNUSED, *(k for p in PERSPECTIVES for k in perspective_keys(p)))
    known = {f"{p}.{s}" for p in layers_named for s in ("weight", "bias")}
    if not any(k in known for k in arrays):  # LoRA keys alone: another LLaMA-LoRA model's
        others = sorted(k for k in arrays if not k.startswith(LORA_PREFIX))
        raise CheckpointError(
            path,
            "not an AffectGPT checkpoint: none of its keys is a projector or fusion key "
            f"(e.g. 'affectgpt_proj.weight'); it has {(others or sorted(arrays))[:6]}",
        )
    missing = sorted(k for p in PROJECTORS for k in (f"{p}.weight", f"{p}.bias") if k not in arrays)
    if missing:
        raise CheckpointError(path, f"missing projector/fusion key(s) {missing}")
    weights = {k: arrays[k] for k in known if k in arrays}
    lora = {k: v for k, v in arrays.items() if k.startswith(LORA_PREFIX)}
    unexpected = sorted(set(arrays) - set(weights) - set(lora))
    bad_lora = [
        k for k in lora if not k.endswith((".lora_A.default.weight", ".lora_B.default.weight"))
    ]
    unexpected += sorted(bad_lora)
    for k in bad_lora:
        del lora[k]
    layers, want = required_lora(path, lora, lora_key, LORA_TARGETS, llm_layers)
    unexpected += sorted(set(lora) - set(want))
    sizes = _sizes(path, weights, lora, layers)
    views = _perspectives(path, weights, sizes)
    config = blob.get("config") if isinstance(blob.get("config"), dict) else {}
    return Checkpoint(path, weights, {k: lora[k] for k in want}, sizes, unexpected,
                      blob.get("epoch"), config, views)  # fmt: skip


def _perspectives(path: Path, w: dict, sizes: Sizes) -> tuple[str, ...]:
    """The extra perspectives with keys in ``w``; each must have both layers, whole, sized
    [1, Dv] and [H, Dv]."""
    found = []
    for p in PERSPECTIVES:
        layers = perspective_keys(p)
        names = [f"{k}.{s}" for k in layers for s in ("weight", "bias")]
        have = [n for n in names if n in w]
        if not have:
            continue
        if len(have) < len(names):
            missing = [n for n in names if n not in w]
            raise CheckpointError(path, f"perspective {p!r}: missing key(s) {missing}")
        for key, want in zip(layers, ((1, sizes.video), (sizes.hidden, sizes.video)), strict=True):
            got = tuple(w[f"{key}.weight"].shape)
            if got != want or w[f"{key}.bias"].shape != (want[0],):
                raise CheckpointError(
                    path, f"key '{key}.weight' has shape {got} (bias "
                    f"{tuple(w[key + '.bias'].shape)}); perspective {p!r} wants {want} [.., Dv]",
                )  # fmt: skip
        found.append(p)
    return tuple(found)


def _face_or_frame(config, where: str = "config"):
    """(key path, value) of every ``face_or_frame`` in the saved training config."""
    if isinstance(config, dict):
        for k, v in config.items():
            if k == "face_or_frame" and isinstance(v, str):
                yield f"{where}.{k}", v
            else:
                yield from _face_or_frame(v, f"{where}.{k}")


def checkpoint_mode(ckpt: Checkpoint) -> tuple[str | None, str]:
    """The visual input the checkpoint was trained on, from its saved training config:
    ("face", where) for ``multiface_*`` (OpenFace crops), ("frame", where) for
    ``multiframe_*``; (None, why) when the config names none. AffectGPT's inference reads
    the same field (``datasets.<name>.face_or_frame``)."""
    found = list(_face_or_frame(ckpt.config))
    if not found:
        return None, "its saved config names no face_or_frame"
    modes = {}
    for key, value in found:
        v = value.lower()
        face = v.startswith("multiface") or ("face" in v and "frame" not in v)
        frame = v.startswith("multiframe") or ("frame" in v and "face" not in v)
        if face == frame:
            raise CheckpointError(
                ckpt.path, f"key {key!r} is {value!r}: neither a face nor a frame model"
            )
        modes[key] = "face" if face else "frame"
    if len(set(modes.values())) > 1:
        raise CheckpointError(ckpt.path, f"its config disagrees on face_or_frame: {modes}")
    key = next(iter(modes))
    return modes[key], f"{key} = {dict(found)[key]!r}"


MODE_INPUTS = {"face": "face crops", "frame": "whole frames"}


def choose_mode(ckpt: Checkpoint, asked: str | None) -> tuple[str, str, str | None]:
    """(mode, why, warning or None): the visual input to export the model for. ``asked``:
    ``--mode`` (None: the saved config decides; "frame" where it names none). An asked mode
    is followed even where the saved config says otherwise (its owner may know the config
    is wrong), with a warning: the weights were trained on the other input. A config that
    disagrees with itself is refused unless a mode is asked."""
    try:
        saved, why = checkpoint_mode(ckpt)
    except CheckpointError as e:
        if asked is None:
            raise
        return asked, f"--mode {asked}", f"--mode {asked} decides, since {e}"
    if asked is None:
        return (saved, why, None) if saved else ("frame", f"{why}: the raw-frame model", None)
    if saved in (None, asked):
        return asked, f"--mode {asked}; {why}", None
    return (
        asked,
        f"--mode {asked}, against {why}",
        (
            f"--mode {asked} contradicts its saved config ({why}): exported as the {asked} model, "
            f"reading {MODE_INPUTS[asked]}, though its weights were trained on {MODE_INPUTS[saved]}"
        ),
    )


def _sizes(path: Path, w: dict, lora: dict, layers: int) -> Sizes:
    def shape(name: str) -> tuple[int, ...]:
        return tuple(w[f"{name}.weight"].shape)

    def need(name: str, got, want, what: str) -> None:
        if got != want:
            raise CheckpointError(path, f"key '{name}.weight' has shape {got}, {what} wants {want}")

    check_linear_layers(path, w, PROJECTORS)
    hidden, dv = shape("affectgpt_proj")
    da = shape("audio_llama_proj")[1]
    m = max(da, dv)
    need(
        "video_attention_mlp", shape("video_attention_mlp"), (1, dv), "a vision feature of width Dv"
    )
    need(
        "audio_llama_proj",
        shape("audio_llama_proj"),
        (hidden, da),
        "the LLM width of affectgpt_proj",
    )
    need(
        "audio_attention_mlp", shape("audio_attention_mlp"), (1, da), "an audio feature of width Da"
    )
    need("multi_video_embs", shape("multi_video_embs"), (m, dv), "M = max(Da, Dv)")
    need("multi_audio_embs", shape("multi_audio_embs"), (m, da), "M = max(Da, Dv)")
    need("attention_mlp", shape("attention_mlp"), (m, 2 * m), "[M, 2M]")
    need("fc_att", shape("fc_att"), (2, m), "[2, M]")
    need("multi_llama_proj", shape("multi_llama_proj"), (hidden, m), "[H, M]")
    rank = lora[lora_key(0, LORA_TARGETS[0], "A")].shape[0]
    return Sizes(video=dv, audio=da, multi=m, hidden=hidden, lora_layers=layers, lora_rank=rank)
