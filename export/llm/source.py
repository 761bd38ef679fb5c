"""Where the LLM comes from: a GGUF file through transformers' loader (torch lives here).

``load_gguf`` gives three views of the same weights: the torch model (the reference every
exported graph is checked against), its tokenizer, and the raw GGUF blocks (Q4_1 for the
linear layers, Q8_0 for the tied embedding/lm_head) that the exact 4-bit form is built from.
The raw blocks are matched to the torch weights value for value; a mismatch (an unknown row
permutation, a different quantization type) is an error, not a silent fallback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.export.llm.graph import DecoderShape
from emolive.export.llm.quant import Q41Blocks

# GGUF tensor name (per block) -> Hugging Face Llama parameter name.
_GGUF_LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
Q4_1_BLOCK_BYTES = 20  # fp16 d, fp16 m, 16 bytes of 4-bit codes
Q8_0_BLOCK_BYTES = 34  # fp16 d, 32 int8 codes


class LlmSourceError(ValueError):
    """The LLM source cannot be exported as it is; the message says which tensor and why."""


@dataclass
class LoadedLlm:
    model: object  # transformers LlamaForCausalLM, fp32, eval mode
    tokenizer: object | None  # transformers tokenizer (None for tiny test models)
    q4_1: dict[str, Q41Blocks] | None  # HF linear name -> Q4_1 blocks, rows in HF order
    q8_0_embed: tuple[np.ndarray, np.ndarray] | None  # (d [V, H/32], q [V, H] int8)
    gguf_path: Path | None = None


def decoder_shape(config, max_positions: int | None = None) -> DecoderShape:
    """The graph's shape from a transformers LlamaConfig; unsupported variants raise."""
    problems = []
    if getattr(config, "model_type", None) != "llama":
        problems.append(f"model_type {config.model_type!r} (only 'llama')")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("bias in attention/MLP")
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"activation {config.hidden_act!r}")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        problems.append(f"rope scaling {rope.get('rope_type')!r}")
    if problems:
        raise LlmSourceError(f"unsupported decoder: {'; '.join(problems)}")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return DecoderShape(
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=config.num_attention_heads,
        kv_heads=config.num_key_value_heads,
        head_dim=head_dim,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
        rms_eps=float(config.rms_norm_eps),
        rope_theta=float(theta),
        max_positions=int(max_positions or config.max_position_embeddings),
    )


def state_dict_numpy(model) -> dict[str, np.ndarray]:
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    if "lm_head.weight" not in sd:  # tied and not listed
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    return sd


def load_gguf(path: Path | str) -> LoadedLlm:
    """Load a Llama GGUF with transformers (dequantized to fp32) plus its raw blocks."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise RuntimeError(
            "exporting the LLM needs the export extra: pip install 'emo-live[export]' "
            "(torch, transformers, gguf, accelerate)"
        ) from e
    path = Path(path)
    if not path.is_file():
        raise LlmSourceError(f"{path}: GGUF file not found")
    folder, name = str(path.parent), path.name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:  # transformers raises many types for a bad file
        raise LlmSourceError(f"{path}: transformers could not load it: {e}") from e
    model.eval()
    sd = state_dict_numpy(model)
    q4_1, q8 = read_gguf_blocks(path, model.config, sd)
    return LoadedLlm(model, tokenizer, q4_1, q8, gguf_path=path)


def _rotary_row_order(rows: int, heads: int) -> np.ndarray:
    """GGUF stores q/k rows interleaved per head for llama.cpp's rope; this undoes it."""
    half = rows // heads // 2
    return np.arange(rows).reshape(heads, half, 2).swapaxes(1, 2).reshape(rows)


def _q4_1(raw: np.ndarray, k: int) -> Q41Blocks:
    n = raw.shape[0]
    blocks = raw.reshape(n, k // 32, Q4_1_BLOCK_BYTES)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = blocks[..., 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # element j low nibble, j+16 high
    return Q41Blocks(q.reshape(n, k).astype(np.uint8), d, m)


def _q8_0(raw: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = raw.shape[0]
    blocks = raw.reshape(n, k // 32, Q8_0_BLOCK_BYTES)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    q = blocks[..., 2:].copy().view(np.int8).reshape(n, k)
    return d, q


def read_gguf_blocks(
    path: Path, config, sd: dict[str, np.ndarray]
) -> tuple[dict[str, Q41Blocks], tuple[np.ndarray, np.ndarray]]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    q4_1: dict[str, Q41Blocks] = {}
    for i in range(config.num_hidden_layers):
        for gname, hname in _GGUF_LINEARS.items():
            t = tensors.get(f"blk.{i}.{gname}.weight")
            key = f"model.layers.{i}.{hname}.weight"
            if t is None or t.tensor_type.name != "Q4_1":
                kind = None if t is None else t.tensor_type.name
                raise LlmSourceError(f"{path}: blk.{i}.{gname}.weight is {kind}, expected Q4_1")
            want = sd[key]
            blocks = _q4_1(np.asarray(t.data), want.shape[1])
            if gname in ("attn_q", "attn_k"):
                heads = (
                    config.num_attention_heads if gname == "attn_q" else config.num_key_value_heads
                )
                blocks = blocks.rows(_rotary_row_order(want.shape[0], heads))
            if not np.array_equal(blocks.dequantize(), want):
                raise LlmSourceError(
                    f"{path}: blk.{i}.{gname}.weight does not dequantize to {key}; "
                    "the raw Q4_1 blocks cannot be mapped exactly"
                )
            q4_1[key] = blocks
    t = tensors.get("token_embd.weight")
    if t is None or t.tensor_type.name != "Q8_0":
        raise LlmSourceError(f"{path}: token_embd.weight is not Q8_0")
    emb = sd["model.embed_tokens.weight"]
    d, q = _q8_0(np.asarray(t.data), emb.shape[1])
    deq = (q.reshape(q.shape[0], -1, 32).astype(np.float32) * d[..., None]).reshape(q.shape)
    if not np.array_equal(deq, emb):
        raise LlmSourceError(f"{path}: token_embd.weight does not dequantize to the embeddings")
    return q4_1, (d, q)
