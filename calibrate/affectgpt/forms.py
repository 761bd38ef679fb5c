"""An LLM profile's decoder in the lite LLM's weight forms, built from the bundle's fp32 graph.

``export.affectgpt.decoder`` writes Qwen2 as ``export.llm.graph.build_decoder``'s graph plus
one q|k|v bias Add per layer, and ``export.emotion_llama`` writes LLaMA as that graph alone
(no biases), so the fp32 graph's initializers are the model's weights under
known names. They are read back into a Hugging Face-named state dict, each form is built by
``export.llm.forms.decoder_weights`` exactly as for the lite LLM, and the biases (where the
graph has them) go back in front of each GroupQueryAttention (whatever op computes q|k|v in
that form). The rotary tables are copied from the fp32 graph, so a form differs from it only in its weights.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from emolive.export.affectgpt.decoder import add_qkv_biases
from emolive.export.llm.bundle import save_external
from emolive.export.llm.forms import decoder_weights
from emolive.export.llm.graph import DecoderShape, build_decoder
from emolive.export.llm.smooth import CALIBRATION_TEXT
from emolive.runtime.int8 import _link_or_copy
from emolive.runtime.llm.decoder import DecoderLayout
from emolive.runtime.names import (
    ATTENTION_MASK,
    INPUTS_EMBEDS,
    LLM_DECODER,
    LOGITS_TO_KEEP,
    past_key,
    past_value,
)

FORMS = ("int8", "int4", "int4f", "w8a8")
CALIBRATION_TOKENS = 1024
CHUNK = 256


class FormError(ValueError):
    """The bundle's decoder graph is not the layout the forms are built from."""


@dataclass
class Fp32Decoder:
    """What the fp32 graph holds: its shape, HF-named weights, q|k|v biases, rotary tables."""

    path: Path
    shape: DecoderShape
    state: dict[str, np.ndarray]
    biases: list[np.ndarray] | None  # q|k|v biases per layer (Qwen2); None: LLaMA, none
    rotary: dict[str, np.ndarray]

    @classmethod
    def read(cls, path: Path, embeddings: np.ndarray) -> Fp32Decoder:
        model = onnx.load(str(path))
        inits = {i.name: i for i in model.graph.initializer}

        def weight(name: str) -> np.ndarray:
            if name not in inits:
                raise FormError(f"{path}: no initializer {name!r}; not an emo-live decoder graph")
            return numpy_helper.to_array(inits[name], str(path.parent))

        gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
        if not gqa:
            raise FormError(f"{path}: no GroupQueryAttention node; not an emo-live decoder graph")
        attrs = {a.name: helper.get_attribute_value(a) for a in gqa[0].attribute}
        norm = next(n for n in model.graph.node if n.op_type == "SimplifiedLayerNormalization")
        eps = next(helper.get_attribute_value(a) for a in norm.attribute if a.name == "epsilon")
        cos = weight("cos_cache")
        layers, heads, kv = len(gqa), int(attrs["num_heads"]), int(attrs["kv_num_heads"])
        hidden = embeddings.shape[1]
        head_dim = 2 * cos.shape[1]
        inter = int(weight("l0.split")[0])
        shape = DecoderShape(layers=layers, hidden=hidden, heads=heads, kv_heads=kv,
                             head_dim=head_dim, intermediate=inter, vocab=embeddings.shape[0],
                             rms_eps=float(eps), rope_theta=10000.0, max_positions=cos.shape[0])  # fmt: skip
        sd = {"model.embed_tokens.weight": np.asarray(embeddings, np.float32),
              "lm_head.weight": weight("lm_head.weight_t").T,
              "model.norm.weight": weight("final.norm")}  # fmt: skip
        q, k = heads * head_dim, kv * head_dim
        biases = []
        for i in range(layers):
            p, a = f"model.layers.{i}.", f"model.layers.{i}.self_attn."
            qkv = weight(f"l{i}.qkv.weight_t").T
            sd[a + "q_proj.weight"], sd[a + "k_proj.weight"] = qkv[:q], qkv[q : q + k]
            sd[a + "v_proj.weight"] = qkv[q + k :]
            sd[a + "o_proj.weight"] = weight(f"l{i}.o.weight_t").T
            gate_up = weight(f"l{i}.gate_up.weight_t").T
            sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"] = np.split(gate_up, 2)
            sd[p + "mlp.down_proj.weight"] = weight(f"l{i}.down.weight_t").T
            sd[p + "input_layernorm.weight"] = weight("l0.input_norm" if i == 0 else f"l{i}.norm")
            sd[p + "post_attention_layernorm.weight"] = weight(f"l{i}.post_norm")
            if f"l{i}.qkv.bias" in inits:
                biases.append(weight(f"l{i}.qkv.bias"))
        if biases and len(biases) != layers:
            raise FormError(f"{path}: {len(biases)} of {layers} layers have a q|k|v bias")
        sd = {k: np.ascontiguousarray(v, np.float32) for k, v in sd.items()}
        return cls(
            path, shape, sd, biases or None, {"cos_cache": cos, "sin_cache": weight("sin_cache")}
        )

    @property
    def layout(self) -> DecoderLayout:
        s = self.shape
        return DecoderLayout(s.layers, s.kv_heads, s.head_dim, s.hidden, s.vocab)

    def form(self, precision: str, out: Path, input_absmax: dict | None = None) -> Path:
        """Build, bias and save one form (weights in ``<out>.data``, as the lite LLM's)."""
        weights = decoder_weights(self.shape, self.state, precision, input_absmax=input_absmax)
        model = build_decoder(self.shape, weights, f"{LLM_DECODER}_{precision}")
        if self.biases:
            add_qkv_biases(model, self.biases)
        for init in model.graph.initializer:
            if init.name in self.rotary:
                init.CopyFrom(numpy_helper.from_array(self.rotary[init.name], init.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        save_external(model, out)
        return out


def input_absmax(decoder: Fp32Decoder, ids: list[int]) -> dict[tuple[int, str], np.ndarray]:
    """Per layer, max |x| per input channel of qkv and gate_up over ``ids``, from the fp32
    graph itself (chunks of ``CHUNK`` tokens without a cache, as ``export.llm.smooth``)."""
    taps = {}
    for i in range(decoder.shape.layers):
        taps[f"l{i}/normed"], taps[f"l{i}/post_normed"] = (i, "qkv"), (i, "gate_up")
    with tempfile.TemporaryDirectory(prefix="emolive-taps-") as tmp:
        session = _tapped_session(decoder.path, list(taps), Path(tmp))
        return _fold_absmax(decoder, session, taps, ids)


def _tapped_session(path: Path, taps: list[str], tmp: Path):
    """An ONNX Runtime session of ``path`` that also outputs ``taps``; the graph is rewritten
    in ``tmp`` beside links to its external data (a 7B graph's weights are not copied)."""
    import onnxruntime as ort

    model = onnx.load(str(path), load_external_data=False)
    model.graph.output.extend(
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in taps
    )
    for location in {e.value for t in model.graph.initializer for e in t.external_data
                     if e.key == "location"}:  # fmt: skip
        _link_or_copy(path.parent / location, tmp / location)
    onnx.save(model, str(tmp / path.name))
    return ort.InferenceSession(str(tmp / path.name), providers=["CPUExecutionProvider"])


def _fold_absmax(decoder: Fp32Decoder, session, taps: dict, ids: list[int]) -> dict:
    s, emb = decoder.shape, decoder.state["model.embed_tokens.weight"]
    empty = np.zeros((1, s.kv_heads, 0, s.head_dim), np.float32)
    out: dict[tuple[int, str], np.ndarray] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        feed = {INPUTS_EMBEDS: emb[chunk][None], ATTENTION_MASK: np.ones((1, len(chunk)), np.int64),
                LOGITS_TO_KEEP: np.array([1], np.int64)}  # fmt: skip
        for i in range(s.layers):
            feed[past_key(i)] = feed[past_value(i)] = empty
        for name, value in zip(taps, session.run(list(taps), feed), strict=True):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(0)
            out[taps[name]] = np.maximum(out[taps[name]], m) if taps[name] in out else m
    return out


def calibration_ids(tokenizer, vocab: int, text: Path = CALIBRATION_TEXT) -> list[int]:
    """The w8a8 calibration text (not the perplexity text) in the bundle's tokens."""
    if not text.is_file():
        raise FileNotFoundError(f"{text}: the w8a8 calibration text is missing (Debian base-files)")
    ids = [i for i in tokenizer.encode(text.read_text(encoding="utf-8")) if i < vocab]
    return ids[:CALIBRATION_TOKENS]
