"""The bundle's LLM, ready to run: tokenizer + decoder session + generation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime import backends
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle, BundleError, GraphVariant
from emolive.runtime.cpu import this_cpu
from emolive.runtime.llm.bundled import decoder_route, embedding_table
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
        graph: Path | backends.GraphRunner,
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
        self.backend_info: dict[str, dict] = {LLM_DECODER: self.session.info}

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | Path | str,
        options: LlmOptions = LlmOptions(),
        graph: Path | str | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> Llm:
        """``graph``: run this decoder graph instead of the bundle's form (benchmarks and
        experiments; it must have the bundle's layout and embeddings). ``runtime``: the
        session's backend and device (None: ONNX Runtime on the CPU); its precision for the
        decoder and its threads apply where ``options`` leaves them unset. The variant is
        the one the bundle prefers for the device (an fp16 form on a GPU where it has one),
        checked there by the parity gate."""
        if not isinstance(bundle, Bundle):
            bundle = Bundle.open(bundle)
        runtime = runtime or RuntimeConfig()
        entry = bundle.graph(LLM_DECODER)
        precision = options.precision or runtime.precision_for(LLM_DECODER)
        threads = options.threads if options.threads is not None else runtime.threads
        placed, route_note = decoder_route(runtime)
        variant = entry.variant(precision, placed.device)
        where = f"{bundle.root}/manifest.json graph {LLM_DECODER!r}"
        layout = DecoderLayout.from_attrs(entry.attrs, where)
        embeddings = embedding_table(bundle)  # memory-mapped: only used rows are resident
        emb_path = bundle.file(LLM_EMBEDDINGS)
        chat = ChatFormat.from_attrs(entry.attrs.get("chat") or {})
        tokenizer = ChatTokenizer(bundle.file(LLM_TOKENIZER), chat)
        if tokenizer.vocab_size > layout.vocab:
            raise BundleError(
                emb_path, f"tokenizer has {tokenizer.vocab_size} tokens, the decoder {layout.vocab}"
            )

        def load(v, device: str) -> Llm:
            runner = backends.load(
                RuntimeConfig(backend=placed.backend, device=device), v.path, v.precision,
                threads=threads, spin=options.spin,
            )  # fmt: skip
            return cls(runner, embeddings, tokenizer, layout, options, v.precision)

        if graph is not None:
            llm = load(
                GraphVariant(LLM_DECODER, variant.precision, Path(graph), "", {}), placed.device
            )
            note = None
        else:
            llm, _, note = load_checked(
                bundle, LLM_DECODER, variant, load, lambda m: m.session.probe, this_cpu(),
                device=placed.device,
            )  # fmt: skip
        llm.notes = [n for n in (route_note, llm.session.cpu_note, note) if n]
        info = dict(llm.session.info)
        if route_note or note:
            info["fallback"] = "; ".join(n for n in (route_note, note) if n)
        llm.backend_info = {LLM_DECODER: info}
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
