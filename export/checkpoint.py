"""A training checkpoint of a LoRA-tuned LLM (AffectGPT's, Emotion-LLaMA's): the file read,
its linear layers and LoRA keys checked by name, and the LoRA merged into the LLM.

Both releases save ``torch.save({"model": the trainable weights, "optimizer", "config",
"scaler", "epoch"})`` from the GPU and load it with ``strict=False``, so a missing key would
silently stay random; here every key the export needs must be present. What differs (which
projectors, which LoRA targets, the alpha) stays in each profile's ``checkpoint.py``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

# PEFT's prefix for the LLM's decoder layers when the LLM is ``llama_model`` (both releases).
LORA_PREFIX = "llama_model.base_model.model.model.layers."


class CheckpointError(ValueError):
    """A checkpoint that cannot be exported; the message names the file and the key."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


def load_checkpoint(path: Path, saved_by: str) -> dict:
    """The checkpoint's dict, its storages mapped to the CPU (the files are saved from
    ``cuda:0``). ``saved_by`` says whose checkpoint has the ``model`` dict, for the message."""
    import torch

    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        size = path.stat().st_size
        raise CheckpointError(
            path, f"not a readable torch checkpoint ({size} bytes; truncated or damaged?): {e}"
        ) from e
    if not isinstance(blob, dict) or not isinstance(blob.get("model"), dict):
        keys = sorted(blob)[:8] if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            path, f"no 'model' dict of trained weights ({saved_by} has one); has {keys}"
        )
    return blob


def weight_arrays(path: Path, state: dict, rename: Callable[[str], str] = str) -> dict:
    """Every tensor of ``state`` as fp32 numpy, keyed by ``rename(key)``."""
    arrays: dict[str, np.ndarray] = {}
    for k, v in state.items():
        if not hasattr(v, "detach"):
            raise CheckpointError(path, f"key {k!r} is not a tensor")
        arrays[rename(k)] = v.detach().to("cpu").float().numpy()
    return arrays


def check_linear_layers(path: Path, weights: dict, names: Iterable[str]) -> None:
    """Each name must be one linear layer: ``.weight`` [out, in] and ``.bias`` [out]."""
    for name in names:
        w, b = weights[f"{name}.weight"], weights[f"{name}.bias"]
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise CheckpointError(
                path, f"key '{name}': weight {tuple(w.shape)} and bias {tuple(b.shape)} are "
                "not one linear layer",
            )  # fmt: skip


def required_lora(
    path: Path,
    lora: dict,
    key: Callable[[int, str, str], str],
    targets: Sequence[str],
    llm_layers: int | None,
) -> tuple[int, list[str]]:
    """(layers, keys): the LoRA keys (A and B of every target in every layer, named by
    ``key``) the LLM needs, all present in ``lora``. ``llm_layers``: the LLM's layer count (None: the layers
    the keys name)."""
    if not lora:
        raise CheckpointError(path, f"no LoRA keys ({key(0, targets[0], 'A')} ...)")
    layers = llm_layers
    if layers is None:
        layers = 1 + max(int(k[len(LORA_PREFIX) :].split(".")[0]) for k in lora)
    want = [key(i, t, ab) for i in range(layers) for t in targets for ab in "AB"]
    absent = [k for k in want if k not in lora]
    if absent:
        raise CheckpointError(path, f"missing {len(absent)} LoRA key(s), first {absent[:3]}")
    return layers, want


def lora_delta(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """(alpha / r) · B @ A for one LLM linear: [out, in], computed in fp64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return ((alpha / a.shape[0]) * (b64 @ a64)).astype(np.float32)


def merge_lora(llm, ckpt, targets: Sequence[str]) -> int:
    """W += ckpt.lora_delta(layer, target) for every target of every layer of ``llm`` (a
    Hugging Face causal LM); returns how many. ``ckpt``: a profile's Checkpoint (``path``,
    ``sizes.lora_layers``, ``lora_delta``)."""
    import torch

    layers = llm.model.layers
    if len(layers) != ckpt.sizes.lora_layers:
        raise CheckpointError(
            ckpt.path, f"LoRA for {ckpt.sizes.lora_layers} layers, the LLM has {len(layers)}"
        )
    n = 0
    with torch.no_grad():
        for i, layer in enumerate(layers):
            for target in targets:
                lin = layer.get_submodule(target)
                delta = ckpt.lora_delta(i, target)
                if tuple(delta.shape) != tuple(lin.weight.shape):
                    raise CheckpointError(
                        ckpt.path,
                        f"LoRA of layer {i} {target}: B @ A is {tuple(delta.shape)}, the LLM's "
                        f"weight {tuple(lin.weight.shape)}",
                    )
                lin.weight += torch.from_numpy(delta)
                n += 1
    return n
