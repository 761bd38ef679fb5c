"""Qwen2 as the runtime's decoder graph: the lite LLM's in-place GroupQueryAttention layout.

``export.llm.graph.build_decoder`` writes a Llama decoder node by node with one KV buffer
bound as both past and present (``DecoderSession``'s contract); Qwen2 differs only by the
biases of q, k and v, added here after the packed QKV MatMul. The same graph, the same
session code and the same weight forms then serve both profiles, instead of a second,
concatenating KV path in the runtime.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from emolive.export.llm.graph import DecoderShape, DecoderWeights, LayerWeights, build_decoder


class DecoderExportError(ValueError):
    pass


def qwen2_shape(config, max_positions: int) -> DecoderShape:
    problems = []
    if config.model_type != "qwen2":
        problems.append(f"model_type {config.model_type!r}")
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"activation {config.hidden_act!r}")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        problems.append(f"rope scaling {rope.get('rope_type')!r}")
    if getattr(config, "use_sliding_window", False):
        problems.append("sliding-window attention")
    if problems:
        raise DecoderExportError(f"unsupported Qwen2 decoder: {'; '.join(problems)}")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return DecoderShape(
        layers=config.num_hidden_layers, hidden=config.hidden_size,
        heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
        head_dim=head_dim, intermediate=config.intermediate_size, vocab=config.vocab_size,
        rms_eps=float(config.rms_norm_eps), rope_theta=float(theta),
        max_positions=int(min(config.max_position_embeddings, max_positions)),
    )  # fmt: skip


def qwen2_decoder(model, max_positions: int, name: str = "llm_decoder") -> onnx.ModelProto:
    """The graph of a (LoRA-merged) ``Qwen2ForCausalLM``."""
    shape = qwen2_shape(model.config, max_positions)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    lm_head = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    layers, biases = [], []
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        layers.append(
            LayerWeights(
                input_norm=sd[p + "input_layernorm.weight"],
                qkv=np.concatenate([sd[a + f"{x}_proj.weight"] for x in "qkv"]),
                o=sd[a + "o_proj.weight"],
                post_norm=sd[p + "post_attention_layernorm.weight"],
                gate_up=np.concatenate(
                    [sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"]]
                ),
                down=sd[p + "mlp.down_proj.weight"],
            )
        )
        biases.append(np.concatenate([sd.get(a + f"{x}_proj.bias", np.zeros(
            sd[a + f"{x}_proj.weight"].shape[0], np.float32)) for x in "qkv"]))  # fmt: skip
    weights = DecoderWeights(layers, sd["model.norm.weight"], lm_head)
    graph = build_decoder(shape, weights, name)
    return add_qkv_biases(graph, biases), shape


def add_qkv_biases(model: onnx.ModelProto, biases: list[np.ndarray]) -> onnx.ModelProto:
    """Each layer's q|k|v bias added to the packed QKV in front of its GroupQueryAttention,
    whatever produced it (a MatMul, a MatMulNBits with or without its remainder, an int8
    GEMM): the weight forms of a Qwen2 decoder all take their biases here."""
    g = model.graph
    nodes = []
    layer = 0
    for node in g.node:
        if node.op_type == "GroupQueryAttention":
            if layer >= len(biases):
                raise DecoderExportError(f"more attention nodes than the {len(biases)} layers")
            src, bias = node.input[0], f"l{layer}.qkv.bias"
            g.initializer.append(numpy_helper.from_array(biases[layer].astype(np.float32), bias))
            nodes.append(helper.make_node("Add", [src, bias], [f"{src}+bias"],
                                          name=f"l{layer}/qkv_bias"))  # fmt: skip
            node.input[0] = f"{src}+bias"
            layer += 1
        nodes.append(node)
    if layer != len(biases):
        raise DecoderExportError(f"{layer} attention nodes for {len(biases)} layers of biases")
    del g.node[:]
    g.node.extend(nodes)
    return model
