"""The bundle's LLM, ready to run: tokenizer + decoder session + generation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.cpu import this_cpu
from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.generate import Generated, GenerationConfig, Token, generate
from emolive.runtime.llm.tokenizer import ChatFormat, ChatTokenizer
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, LLM_TOKENIZER
from emolive.runtime.parity import load_checked


@dataclass(frozen=True)
class LlmOptions:
    precision: str | None = None  # None: what the bundle prefers on this device
    threads: int | None = None
    max_context: int = 1024  # KV cache slots (tokens); 46 KB each for SmolLM2-135M
    spin: bool = True  # let ORT worker threads spin during a run (see decoder.py)


class Llm:
    """A chat LLM from a bundle. One sequence at a time; not thread-safe."""

    def __init__(
        self,
        graph: Path,
        embeddings: np.ndarray,
        tokenizer: ChatTokenizer,
        layout: DecoderLayout,
        options: LlmOptions = LlmOptions(),
        precision: str = "fp32",
    ):
        self.tokenizer = tokenizer
        self.precision = precision
        self.notes: list[str] = []  # how the form was loaded here, for the readings' stats
        self.session = DecoderSession(
            graph, embeddings, layout, options.max_context, options.threads, precision, options.spin
        )

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | Path | str,
        options: LlmOptions = LlmOptions(),
        graph: Path | str | None = None,
    ) -> Llm:
        """``graph``: run this decoder graph instead of the bundle's form (benchmarks and
        experiments; it must have the bundle's layout and embeddings)."""
        if not isinstance(bundle, Bundle):
            bundle = Bundle.open(bundle)
        entry = bundle.graph(LLM_DECODER)
        variant = entry.variant(options.precision, "cpu")
        where = f"{bundle.root}/manifest.json graph {LLM_DECODER!r}"
        layout = DecoderLayout.from_attrs(entry.attrs, where)
        emb_path = bundle.file(LLM_EMBEDDINGS)
        try:
            # Memory-mapped: only the rows of tokens actually used become resident.
            embeddings = np.load(emb_path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise BundleError(emb_path, f"not a readable .npy embedding table: {e}") from e
        chat = ChatFormat.from_attrs(entry.attrs.get("chat") or {})
        tokenizer = ChatTokenizer(bundle.file(LLM_TOKENIZER), chat)
        if tokenizer.vocab_size > layout.vocab:
            raise BundleError(
                emb_path, f"tokenizer has {tokenizer.vocab_size} tokens, the decoder {layout.vocab}"
            )
        if graph is not None:
            return cls(Path(graph), embeddings, tokenizer, layout, options, variant.precision)

        def load(v) -> Llm:
            return cls(v.path, embeddings, tokenizer, layout, options, v.precision)

        llm, _, note = load_checked(
            bundle, LLM_DECODER, variant, load, lambda m: m.session.probe, this_cpu()
        )  # fmt: skip
        llm.notes = [n for n in (llm.session.cpu_note, note) if n]
        return llm

    def encode_chat(self, messages: Sequence[dict], prefill: str = "") -> list[int]:
        return self.tokenizer.encode(self.tokenizer.chat.render(messages, prefill=prefill))

    def chat(
        self,
        messages: Sequence[dict],
        config: GenerationConfig | None = None,
        on_token: Callable[[Token], None] | None = None,
    ) -> Generated:
        """Answer a chat from an empty cache; ``on_token`` streams the answer."""
        ids = self.encode_chat(messages)
        self.session.reset()
        logits = self.session.forward(ids, last_only=True)[-1]
        return generate(
            self.session, self.tokenizer, logits, config or GenerationConfig(), on_token
        )
