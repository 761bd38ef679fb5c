"""Activation smoothing for the ``w8a8`` form: per-channel input maxima from a calibration text.

Int8 activations lose the channels whose range dwarfs the others (LLM activations have a few
such outlier channels). Smoothing divides input channel k by ``s_k`` and multiplies the
weight's column k by it, which leaves the product unchanged while moving range from the
activation into the weight (SmoothQuant, Xiao et al. 2023, with its alpha = 0.5). Both
smoothed linears read the output of an RMSNorm, so the division is folded into the norm's
gamma and costs nothing at run time: qkv reads ``input_layernorm``, gate_up reads
``post_attention_layernorm``.

The maxima come from running the torch model over a text that is *not* the perplexity text
(report.py), so the form's perplexity is measured on text its calibration never saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Debian base-files, like the perplexity text (GPL-3) but another licence.
CALIBRATION_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
CALIBRATION_TOKENS = 1024
ALPHA = 0.5


def fold_inputs(model, modules: dict, fold, ids: list[int], chunk: int = 256) -> dict:
    """Run ``ids`` through ``model`` in chunks; per key of ``modules``, fold that module's
    inputs (flattened to [tokens, in_features]): ``acc = fold(acc or None, x)``."""
    import torch

    out: dict = {}
    hooks = []

    def keep(key):
        def hook(module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1])
            out[key] = fold(out.get(key), x)

        return hook

    for key, module in modules.items():
        hooks.append(module.register_forward_pre_hook(keep(key)))
    try:
        with torch.no_grad():
            for start in range(0, len(ids), chunk):
                model(torch.tensor([ids[start : start + chunk]]), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return out


def input_absmax(model, ids: list[int], chunk: int = 256) -> dict[tuple[int, str], np.ndarray]:
    """Per layer, max |x| per input channel of q_proj ("qkv") and gate_proj ("gate_up")."""
    modules = {}
    for i, layer in enumerate(model.model.layers):
        modules[(i, "qkv")] = layer.self_attn.q_proj
        modules[(i, "gate_up")] = layer.mlp.gate_proj

    def fold(acc, x):
        m = x.float().abs().amax(0).numpy()
        return m if acc is None else np.maximum(acc, m)

    return fold_inputs(model, modules, fold, ids, chunk)


def calibration_ids(tokenizer, vocab: int) -> list[int]:
    """The calibration text's first tokens; random ids for test models without a tokenizer."""
    if tokenizer is None:
        return np.random.default_rng(0).integers(0, vocab, 256).tolist()
    if not CALIBRATION_TEXT.is_file():
        raise FileNotFoundError(f"{CALIBRATION_TEXT}: the w8a8 calibration text is missing")
    return tokenizer.encode(CALIBRATION_TEXT.read_text(encoding="utf-8"))[:CALIBRATION_TOKENS]


def smoothing_factors(x_absmax: np.ndarray, w: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """s [K] for a weight w [N, K] read by activations with per-channel maxima x_absmax [K]."""
    xm = np.maximum(np.asarray(x_absmax, np.float64), 1e-5)
    wm = np.maximum(np.abs(w).max(0).astype(np.float64), 1e-5)
    return (xm**alpha / wm ** (1 - alpha)).astype(np.float32)
