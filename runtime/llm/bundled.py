"""A bundle's LLM decoder and embedding table as one ``DecoderSession``, through the gate.

The LLM profiles (affectgpt, emotion_llama) load the same two things: the decoder graph in
the precision the session asks for (else the one the bundle prefers on its device), on the
route that can run it, parity-gated with the graph's token-id probe, and the token
embeddings, memory-mapped. Lite's ``Llm`` shares the route and the table and wraps its own
session (its chat tokenizer and options).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emolive.runtime.backends import ROUTES, RuntimeConfig
from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS
from emolive.runtime.parity import GatedGraph, load_graph


def embedding_table(bundle: Bundle) -> np.ndarray:
    path = bundle.file(LLM_EMBEDDINGS)
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise BundleError(path, f"not a readable .npy embedding table: {e}") from e


def decoder_route(runtime: RuntimeConfig) -> tuple[RuntimeConfig, str | None]:
    """Where the decoder runs for ``runtime``, and a note when that is not the route asked
    for: native TensorRT cannot parse the decoder (GroupQueryAttention and friends are ONNX
    Runtime contrib ops), so with ``--backend trt`` it runs on ONNX Runtime's CUDA provider."""
    if runtime.backend != "trt":
        return runtime, None
    placed = RuntimeConfig(
        backend="ort", device="cuda", precision=runtime.precision, threads=runtime.threads
    )
    return placed, (
        f"{LLM_DECODER}: runs on {ROUTES['ort', 'cuda']}, not {ROUTES['trt', 'tensorrt']} "
        "(its GroupQueryAttention is an ONNX Runtime contrib op TensorRT's parser does not read)"
    )


def probe_session(table: np.ndarray, layout: DecoderLayout) -> Callable:
    """runner -> the parity probe's run: a session with just the probe's tokens of KV cache
    (not the live session's thousands of slots)."""

    def run(runner):
        def probe(inputs: dict) -> dict:
            slots = max(64, len(inputs["token_ids"]) + 1)
            return DecoderSession(runner, table, layout, slots).probe(inputs)

        return probe

    return run


def load_decoder(
    bundle: Bundle, runtime: RuntimeConfig, max_context: int | None = None
) -> tuple[GatedGraph, DecoderSession]:
    """The gated decoder graph and a session over it with ``max_context`` KV slots (None:
    the graph's ``max_context`` attribute, else 2,048). With ``--backend trt`` the decoder
    runs on ONNX Runtime's CUDA provider, and the gated graph's notes say so."""
    entry = bundle.graph(LLM_DECODER)
    layout = DecoderLayout.from_attrs(entry.attrs, f"{bundle.root}/manifest.json {LLM_DECODER}")
    table = embedding_table(bundle)
    slots = int(max_context or entry.attrs.get("max_context", 2048))
    placed, route_note = decoder_route(runtime)
    gated = load_graph(bundle, LLM_DECODER, placed, probe_run=probe_session(table, layout))
    if route_note:
        gated.notes.insert(0, route_note)
        gated.info["fallback"] = "; ".join(n for n in (route_note, gated.info.get("fallback")) if n)
    return gated, DecoderSession(gated.runner, table, layout, slots)
