"""The LLM decoder graph, written node by node: ~11 nodes per layer with ORT's fused ops.

One graph serves prefill and decode (DESIGN.md, "LLM decoder graph"):

    inputs   inputs_embeds [b, s, h], attention_mask [b, t] (int64),
             past_key_values.{i}.key|value [b, kv, p, d],
             logits_to_keep [1] (int64: logits for the last k positions, 0 = all)
    outputs  logits [b, s, vocab], present.{i}.key|value [b, kv, t or p, d]

Attention is ``com.microsoft.GroupQueryAttention`` with packed QKV and rotary embedding
inside it, so the graph takes no ``position_ids``: GQA derives each new token's position from
the attention mask (``seqlens_k`` = tokens so far - 1). Past and present may be one
preallocated buffer bound to both (ORT then writes the new keys in place). Norms are
``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` (RMSNorm fused with
the residual add). A torch.onnx export of the same model has ~3,150 nodes; this one ~340,
which is what makes a decode step cheap (FACTS.md).

Linear layers come in as dense [N, K] arrays (MatMul) or as ``NBitsWeight`` (MatMulNBits,
with the exact Q4_1 remainder term when present, or fed ``[x, blocksum(x)]`` when the
remainder is folded into the weight). Only numpy and onnx here: weights are
handed over by ``export.llm.source``, which is where torch lives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from emolive.export.llm.quant import Int8Channels, NBitsWeight
from emolive.runtime.names import (
    ATTENTION_MASK,
    INPUTS_EMBEDS,
    LOGITS,
    LOGITS_TO_KEEP,
    past_key,
    past_value,
    present_key,
    present_value,
)

OPSET = 21  # default domain; the bundle reader accepts 13..21
MS_DOMAIN = "com.microsoft"
IR_VERSION = 10  # readable by ONNX Runtime 1.18 and later

Linear = np.ndarray | NBitsWeight | Int8Channels


@dataclass(frozen=True)
class DecoderShape:
    """What the graph needs to know about a Llama-architecture decoder."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rms_eps: float
    rope_theta: float
    max_positions: int

    @property
    def qkv_out(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim


@dataclass
class LayerWeights:
    input_norm: np.ndarray  # [h]
    qkv: Linear  # [q + k + v rows, h], q/k rows in Hugging Face (rotate-half) order
    o: Linear
    post_norm: np.ndarray
    gate_up: Linear  # gate rows then up rows: one matmul, split after
    down: Linear


@dataclass
class DecoderWeights:
    layers: list[LayerWeights]
    final_norm: np.ndarray
    lm_head: Linear  # [vocab, h]
    accuracy_level: int = 4  # MatMulNBits: 4 = int8 activations (fast), 0/1 = fp32 (exact)


@dataclass
class _Graph:
    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    blocksums: dict = field(default_factory=dict)
    augmented: dict = field(default_factory=dict)
    names: set = field(default_factory=set)

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        self.names.add(name)
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        domain = MS_DOMAIN if op in _MS_OPS else ""
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))


_MS_OPS = {
    "GroupQueryAttention", "SkipSimplifiedLayerNormalization", "MatMulNBits",
    "DynamicQuantizeMatMul",
}  # fmt: skip


def _linear(
    g: _Graph, x: str, w: Linear, name: str, accuracy_level: int, out: str | None = None
) -> str:
    out = out or f"{name}/out"
    if isinstance(w, np.ndarray):
        g.node("MatMul", [x, g.init(f"{name}.weight_t", w.T.astype(np.float32))], [out], name)
        return out
    if isinstance(w, Int8Channels):
        return _int8_per_token(g, x, w, name, out)
    if w.blocksum_columns:
        x = _with_blocksums(g, x, w, name)
    inputs = [x, g.init(f"{name}.B", w.packed), g.init(f"{name}.scales", w.scales)]
    if w.zero_points is not None:
        inputs.append(g.init(f"{name}.zero_points", w.zero_points))
    mm = f"{name}/nbits" if w.remainder is not None else out
    g.node(
        "MatMulNBits", inputs, [mm], name, K=w.k, N=w.n, bits=w.bits,
        block_size=w.block, accuracy_level=accuracy_level,
    )  # fmt: skip
    if w.remainder is None:
        return mm
    # Q4_1's float minimum: y += blocksum(x) @ R, the block sums shared by linears reading
    # the same x. Reshape + ReduceSum measured cheaper per decode step than a 0/1 MatMul.
    key = (x, w.k, w.block)
    if key not in g.blocksums:
        shape = f"const/block_shape_{w.k}_{w.block}"
        if shape not in g.names:
            g.init(shape, np.array([0, 0, w.k // w.block, w.block], np.int64))
        g.node("Reshape", [x, shape], [f"{name}/blocks"], f"{name}/blocks")
        g.node(
            "ReduceSum", [f"{name}/blocks", "const/last_axis"], [f"{name}/blocksum"],
            f"{name}/blocksum", keepdims=0,
        )  # fmt: skip
        g.blocksums[key] = f"{name}/blocksum"
    g.node(
        "MatMul", [g.blocksums[key], g.init(f"{name}.remainder", w.remainder)],
        [f"{name}/remainder"], f"{name}/remainder",
    )  # fmt: skip
    g.node("Add", [mm, f"{name}/remainder"], [out], f"{name}/add_remainder")
    return out


def _int8_per_token(g: _Graph, x: str, w: Int8Channels, name: str, out: str) -> str:
    """MLAS's int8 GEMM with one activation scale per token, the same for any batch of tokens.

    ``DynamicQuantizeMatMul`` quantizes its input over the whole tensor (uint8, min..max).
    Each row is divided by its max |x| (and the result multiplied back), and one constant row
    holding +1 and -1 rides along, so the tensor's range is always exactly [-1, 1]: a token
    is quantized the same whether it comes alone (decode) or in a prompt (prefill), and a
    prompt's tokens do not share one range (that cost 0.7% perplexity more). The constant
    row makes such graphs batch-1, which is what ``DecoderSession`` runs.
    """
    k = w.q.shape[0]
    sentinel = f"const/range_row_{k}"
    if sentinel not in g.names:
        row = np.zeros((1, 1, k), np.float32)
        row[0, 0, :2] = (1.0, -1.0)
        g.init(sentinel, row)
    for const, value in (("const/tiny", np.array(1e-12, np.float32)),
                         ("const/zero", np.array([0], np.int64)),
                         ("const/minus_one", np.array([-1], np.int64))):  # fmt: skip
        if const not in g.names:
            g.init(const, value)
    g.node("Abs", [x], [f"{name}/abs"], f"{name}/abs")
    g.node("ReduceMax", [f"{name}/abs", "const/last_axis"], [f"{name}/rowmax"], f"{name}/rowmax",
           keepdims=1)  # fmt: skip
    g.node("Max", [f"{name}/rowmax", "const/tiny"], [f"{name}/rowscale"], f"{name}/rowscale")
    g.node("Div", [x, f"{name}/rowscale"], [f"{name}/rows"], f"{name}/rows")
    g.node("Concat", [f"{name}/rows", sentinel], [f"{name}/ranged"], f"{name}/ranged", axis=1)
    g.node(
        "DynamicQuantizeMatMul",
        [f"{name}/ranged", g.init(f"{name}.q", w.q), g.init(f"{name}.scales", w.scales),
         g.init(f"{name}.zero_point", np.zeros(w.scales.shape, np.int8))],
        [f"{name}/int8"], name,
    )  # fmt: skip
    g.node(
        "Slice", [f"{name}/int8", "const/zero", "const/minus_one", "const/time_axis"],
        [f"{name}/tokens"], f"{name}/tokens",
    )  # fmt: skip
    g.node("Mul", [f"{name}/tokens", f"{name}/rowscale"], [out], f"{name}/rescale")
    return out


def _with_blocksums(g: _Graph, x: str, w: NBitsWeight, name: str) -> str:
    """``[x, blocksum(x), 0...]``, built once per input and shared by the linears reading it.

    The block sums come from one MatMul with a 0/1 matrix, which also pads them to whole
    blocks: two small nodes per input (a Reshape + ReduceSum + Pad took three, and measured
    slower per decode step).
    """
    k, cols = w.in_features, w.blocksum_columns
    key = (x, k, cols, w.block)
    if key not in g.augmented:
        ones = f"const/blocksum_{k}_{cols}"
        if ones not in g.names:
            e = np.zeros((k, cols), np.float32)
            e[np.arange(k), np.arange(k) // w.block] = 1.0
            g.init(ones, e)
        g.node("MatMul", [x, ones], [f"{name}/blocksums"], f"{name}/blocksums")
        g.node(
            "Concat", [x, f"{name}/blocksums"], [f"{name}/with_sums"], f"{name}/with_sums", axis=-1
        )
        g.augmented[key] = f"{name}/with_sums"
    return g.augmented[key]


def rotary_caches(shape: DecoderShape) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [max_positions, head_dim/2], computed in float32 the way transformers does."""
    d = shape.head_dim
    inv_freq = 1.0 / (np.float32(shape.rope_theta) ** (np.arange(0, d, 2, dtype=np.int64) / d))
    inv_freq = inv_freq.astype(np.float32)
    pos = np.arange(shape.max_positions, dtype=np.float32)
    freqs = np.outer(pos, inv_freq).astype(np.float32)
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


def build_decoder(shape: DecoderShape, weights: DecoderWeights, name: str) -> onnx.ModelProto:
    if len(weights.layers) != shape.layers:
        raise ValueError(f"{name}: {len(weights.layers)} layer weights for {shape.layers} layers")
    g = _Graph()
    acc = weights.accuracy_level
    g.init("const/one", np.array(1, np.int64))
    g.init("const/last_axis", np.array([-1], np.int64))
    g.init("const/time_axis", np.array([1], np.int64))
    cos, sin = rotary_caches(shape)
    g.init("cos_cache", cos)
    g.init("sin_cache", sin)

    # GQA's view of the mask: seqlens_k = (tokens so far) - 1, total = mask length.
    g.node("ReduceSum", [ATTENTION_MASK, "const/time_axis"], ["mask/sum"], "mask/sum", keepdims=0)
    g.node("Sub", ["mask/sum", "const/one"], ["mask/seqlens64"], "mask/sub")
    g.node("Cast", ["mask/seqlens64"], ["seqlens_k"], "mask/seqlens", to=TensorProto.INT32)
    g.node("Shape", [ATTENTION_MASK], ["mask/shape"], "mask/shape")
    g.node("Gather", ["mask/shape", "const/one"], ["mask/total64"], "mask/total", axis=0)
    g.node("Cast", ["mask/total64"], ["total_len"], "mask/total_len", to=TensorProto.INT32)

    eps = float(shape.rms_eps)
    first = weights.layers[0]
    g.node(
        "SimplifiedLayerNormalization", [INPUTS_EMBEDS, g.init("l0.input_norm", first.input_norm)],
        ["l0/normed"], "l0/input_norm", axis=-1, epsilon=eps, stash_type=1,
    )  # fmt: skip
    normed, residual = "l0/normed", INPUTS_EMBEDS
    for i, lw in enumerate(weights.layers):
        p = f"l{i}"
        qkv = _linear(g, normed, lw.qkv, f"{p}.qkv", acc)
        g.node(
            "GroupQueryAttention",
            [qkv, "", "", past_key(i), past_value(i), "seqlens_k", "total_len", "cos_cache",
             "sin_cache"],
            [f"{p}/attn", present_key(i), present_value(i)],
            f"{p}/gqa",
            num_heads=shape.heads, kv_num_heads=shape.kv_heads,
            scale=1.0 / math.sqrt(shape.head_dim), do_rotary=1, rotary_interleaved=0,
            local_window_size=-1,
        )  # fmt: skip
        o = _linear(g, f"{p}/attn", lw.o, f"{p}.o", acc)
        g.node(
            "SkipSimplifiedLayerNormalization",
            [residual, o, g.init(f"{p}.post_norm", lw.post_norm)],
            [f"{p}/post_normed", "", "", f"{p}/resid_attn"], f"{p}/post_norm", epsilon=eps,
        )  # fmt: skip
        x = f"{p}/post_normed"
        gate_up = _linear(g, x, lw.gate_up, f"{p}.gate_up", acc)
        gate, up = f"{p}/gate", f"{p}/up"
        half = g.init(f"{p}.split", np.array([shape.intermediate] * 2, np.int64))
        g.node("Split", [gate_up, half], [gate, up], f"{p}/split", axis=-1)
        g.node("Sigmoid", [gate], [f"{p}/gate_sig"], f"{p}/sigmoid")
        g.node("Mul", [gate, f"{p}/gate_sig"], [f"{p}/silu"], f"{p}/silu")
        g.node("Mul", [f"{p}/silu", up], [f"{p}/swiglu"], f"{p}/swiglu")
        down = _linear(g, f"{p}/swiglu", lw.down, f"{p}.down", acc)
        last = i == shape.layers - 1
        gamma = weights.final_norm if last else weights.layers[i + 1].input_norm
        nxt = "final" if last else f"l{i + 1}"
        outs = [f"{nxt}/normed"] if last else [f"{nxt}/normed", "", "", f"{nxt}/resid"]
        g.node(
            "SkipSimplifiedLayerNormalization",
            [f"{p}/resid_attn", down, g.init(f"{nxt}.norm", gamma)], outs,
            f"{nxt}/norm", epsilon=eps,
        )  # fmt: skip
        normed, residual = f"{nxt}/normed", f"{nxt}/resid"
    # Only the last k positions reach the lm_head (k = 0: all). A prefill needs one row of
    # vocabulary logits, not one per prompt token: ~17% of its time and 39 MB at 200 tokens.
    g.node("Neg", [LOGITS_TO_KEEP], ["keep/start"], "keep/neg")
    g.node(
        "Slice", [normed, "keep/start", "const/int64_max", "const/time_axis"], ["keep/hidden"],
        "keep/slice",
    )  # fmt: skip
    g.init("const/int64_max", np.array([np.iinfo(np.int64).max], np.int64))
    _linear(g, "keep/hidden", weights.lm_head, "lm_head", acc, out=LOGITS)

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    kv = [shape.kv_heads]
    inputs = [
        helper.make_tensor_value_info(INPUTS_EMBEDS, f32, ["batch", "sequence", shape.hidden]),
        helper.make_tensor_value_info(ATTENTION_MASK, i64, ["batch", "total_sequence"]),
    ]
    outputs = [helper.make_tensor_value_info(LOGITS, f32, ["batch", "kept", shape.vocab])]
    for i in range(shape.layers):
        for nm in (past_key(i), past_value(i)):
            inputs.append(
                helper.make_tensor_value_info(
                    nm, f32, ["batch", *kv, "past_sequence", shape.head_dim]
                )
            )
        for nm in (present_key(i), present_value(i)):
            outputs.append(
                helper.make_tensor_value_info(
                    nm, f32, ["batch", *kv, "present_sequence", shape.head_dim]
                )
            )
    # A plain input, not an initializer with a default: IOBinding cannot bind those.
    inputs.append(helper.make_tensor_value_info(LOGITS_TO_KEEP, i64, [1]))
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        ir_version=IR_VERSION,
        producer_name="emolive.export.llm",
    )
    return model


def linear_graph(weight: Linear, k: int, accuracy_level: int = 4) -> onnx.ModelProto:
    """One linear of the decoder, built exactly as ``build_decoder`` builds it: ``x [1, s, k]``
    in, ``y [1, s, n]`` out. For checking a weight form's numerics on its own."""
    g = _Graph()
    g.init("const/last_axis", np.array([-1], np.int64))
    g.init("const/time_axis", np.array([1], np.int64))
    _linear(g, "x", weight, "linear", accuracy_level, out="y")
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes,
        "linear",
        [helper.make_tensor_value_info("x", f32, [1, "sequence", k])],
        [helper.make_tensor_value_info("y", f32, [1, "sequence", None])],
        g.inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        ir_version=IR_VERSION,
        producer_name="emolive.export.llm",
    )
