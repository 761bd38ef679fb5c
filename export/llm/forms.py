"""The weight forms the bundle carries the LLM in (FACTS.md measured why these three).

* ``fp32``: the dequantized GGUF weights as they are; the reference.
* ``int8``: 8-bit MatMulNBits, blocks of 32, accuracy_level 4 (int8 activations). Layers are
  re-quantized from the dequantized Q4_1 values, which sit on the 8-bit grid almost exactly;
  the lm_head (GGUF Q8_0) maps exactly. Plain dynamic INT8 and static Q/DQ lost 10x more
  perplexity (per-tensor activation scales), so they are not built.
* ``int4``: the GGUF's own Q4_1 blocks with their float minimum kept exactly (integer zero
  point + remainder term, see quant.py), lm_head as in int8. For a model with no GGUF blocks
  (tiny test models) the Q4_1 blocks are made with ggml's quantizer first.
* ``w8a8``: the int8 form, except that qkv and gate_up run MLAS's int8 GEMM
  (``DynamicQuantizeMatMul``: int8 weights per output channel, int8 activations per token)
  after smoothing their inputs into the RMSNorm gammas (smooth.py). ~1.5x int8's prefill;
  o and down stay 8-bit MatMulNBits (down's SwiGLU input cost 9% perplexity as unsmoothed
  int8; smoothed into up_proj it kept perplexity but gained ~3% prefill for 8% decode).
* ``int4f``: the same Q4_1 codes with the remainder folded into the MatMulNBits as 4-bit input
  columns over block sums (quant.py); lm_head as in int8. Perplexity +0.06% against fp32,
  and one node per linear instead of four: the fastest decode here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emolive.export.llm.graph import DecoderShape, DecoderWeights, LayerWeights, Linear
from emolive.export.llm.quant import (
    Q41Blocks,
    q4_1_exact,
    q4_1_folded,
    q4_1_from_float,
    q8_0_exact,
    quantize_blocks,
    quantize_channels,
)
from emolive.export.llm.smooth import smoothing_factors
from emolive.runtime.names import LLM_PRECISIONS

PRECISIONS = LLM_PRECISIONS
DEFAULT_ACCURACY_LEVEL = {"fp32": 0, "int8": 4, "int4": 4, "int4f": 4, "w8a8": 4}
_HF = {
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}  # fmt: skip


def _layer_key(i: int, which: str) -> str:
    return f"model.layers.{i}.{_HF[which]}.weight"


def decoder_weights(
    shape: DecoderShape,
    sd: dict[str, np.ndarray],
    precision: str,
    q4_1: dict[str, Q41Blocks] | None = None,
    q8_0_embed: tuple[np.ndarray, np.ndarray] | None = None,
    accuracy_level: int | None = None,
    input_absmax: dict[tuple[int, str], np.ndarray] | None = None,
) -> DecoderWeights:
    """Weights of one form, from a numpy state dict (+ the GGUF blocks when there are some).

    ``input_absmax``: per (layer, "qkv" | "gate_up") input maxima (smooth.py), for w8a8."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown LLM weight form {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision == "w8a8" and input_absmax is None:
        raise ValueError("the w8a8 form needs calibrated input maxima (export.llm.smooth)")
    acc = DEFAULT_ACCURACY_LEVEL[precision] if accuracy_level is None else accuracy_level

    def stacked(keys: list[str]) -> np.ndarray:
        """The [N, K] weight of one graph linear: HF weights stacked along N (qkv, gate_up)."""
        return np.concatenate([sd[k] for k in keys]) if len(keys) > 1 else sd[keys[0]]

    def blocks(key: str) -> Q41Blocks:
        if q4_1 is not None:
            return q4_1[key]
        return q4_1_from_float(sd[key])

    convert: Callable[[list[str]], Linear]
    if precision == "fp32":
        convert = stacked

    elif precision in ("int8", "w8a8"):

        def convert(keys: list[str]) -> Linear:
            return quantize_blocks(stacked(keys), bits=8, block=32)

    else:
        mapping = q4_1_exact if precision == "int4" else q4_1_folded

        def convert(keys: list[str]) -> Linear:
            return mapping(Q41Blocks.concat([blocks(k) for k in keys]))

    def smoothed(i: int, which: str, keys: list[str], gamma: np.ndarray):
        """(gamma / s, int8 channels of w * s): the same product, a tamer activation."""
        assert input_absmax is not None
        w = stacked(keys)
        s = smoothing_factors(input_absmax[(i, which)], w)
        return (gamma / s).astype(np.float32), quantize_channels(w * s[None, :])

    layers = []
    for i in range(shape.layers):
        qkv_keys = [_layer_key(i, w) for w in ("q", "k", "v")]
        gate_up_keys = [_layer_key(i, "gate"), _layer_key(i, "up")]
        input_norm = sd[f"model.layers.{i}.input_layernorm.weight"]
        post_norm = sd[f"model.layers.{i}.post_attention_layernorm.weight"]
        if precision == "w8a8":
            input_norm, qkv = smoothed(i, "qkv", qkv_keys, input_norm)
            post_norm, gate_up = smoothed(i, "gate_up", gate_up_keys, post_norm)
        else:
            qkv, gate_up = convert(qkv_keys), convert(gate_up_keys)
        layers.append(
            LayerWeights(
                input_norm=input_norm,
                qkv=qkv,
                o=convert([_layer_key(i, "o")]),
                post_norm=post_norm,
                gate_up=gate_up,
                down=convert([_layer_key(i, "down")]),
            )
        )
    head = sd["lm_head.weight"]
    if precision == "fp32":
        lm_head: Linear = head
    elif q8_0_embed is not None and np.array_equal(head, sd["model.embed_tokens.weight"]):
        lm_head = q8_0_exact(*q8_0_embed)
    else:
        lm_head = quantize_blocks(head, bits=8, block=32)
    return DecoderWeights(layers, sd["model.norm.weight"], lm_head, accuracy_level=acc)
