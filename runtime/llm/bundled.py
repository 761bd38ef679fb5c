"""A bundle's LLM decoder and embedding table as one ``DecoderSession``, through the gate.

Every profile with an LLM (lite's reasoner, affectgpt, emotion_llama) loads the same two
things: the decoder graph in the precision the session asks for (else the one the bundle
prefers on its device), parity-gated with the graph's token-id probe, and the token
embeddings, memory-mapped.
"""

from __future__ import annotations

import numpy as np

from emolive.runtime.backends import RuntimeConfig
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


def load_decoder(
    bundle: Bundle, runtime: RuntimeConfig, max_context: int | None = None
) -> tuple[GatedGraph, DecoderSession]:
    """The gated decoder graph and a session over it with ``max_context`` KV slots (None:
    the graph's ``max_context`` attribute, else 2,048)."""
    entry = bundle.graph(LLM_DECODER)
    layout = DecoderLayout.from_attrs(entry.attrs, f"{bundle.root}/manifest.json {LLM_DECODER}")
    table = embedding_table(bundle)
    slots = int(max_context or entry.attrs.get("max_context", 2048))
    gated = load_graph(
        bundle, LLM_DECODER, runtime,
        probe_run=lambda runner: DecoderSession(runner, table, layout, slots).probe,
    )  # fmt: skip
    return gated, DecoderSession(gated.runner, table, layout, slots)
