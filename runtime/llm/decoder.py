"""One decoder graph run step by step, with its KV cache in preallocated buffers.

The cache is one ``[1, kv_heads, max_context, head_dim]`` buffer per layer for keys and one
for values, allocated once and bound with IOBinding as both the graph's ``past_key_values``
input and its ``present`` output. GroupQueryAttention writes each new token's keys in place,
so nothing is concatenated or copied per token. The buffers and the binding come from the
graph's backend runner, so on a GPU the cache lives in device memory; the graph's own
element types (an fp16 form for CUDA takes and returns fp16) decide the buffers'. The attention mask's length is the number of
tokens in the cache; ``truncate`` rewinds it, which is how a shared prompt prefix is reused
(label scoring, content-free calibration prompts): later tokens simply overwrite the old ones.

Token embedding happens here, from the bundle's embedding table, so text tokens and modality
embeddings (affectgpt profile) meet in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime import backends
from emolive.runtime.backends import GraphRunner, RuntimeConfig
from emolive.runtime.names import (
    ATTENTION_MASK,
    INPUTS_EMBEDS,
    LOGITS,
    LOGITS_TO_KEEP,
    POSITION_IDS,
    past_key,
    past_value,
    present_key,
    present_value,
)


class ContextOverflow(ValueError):
    """More tokens than the KV cache holds."""


@dataclass(frozen=True)
class DecoderLayout:
    """The decoder's sizes, as the bundle manifest records them (graph attrs)."""

    layers: int
    kv_heads: int
    head_dim: int
    hidden: int
    vocab: int

    @classmethod
    def from_attrs(cls, attrs: dict, where: str = "llm_decoder attrs") -> DecoderLayout:
        try:
            return cls(**{f: int(attrs[f]) for f in cls.__dataclass_fields__})
        except KeyError as e:
            raise ValueError(f"{where}: missing decoder size {e.args[0]!r}") from e


class DecoderSession:
    """Prefill and decode one sequence through a decoder graph (batch 1)."""

    def __init__(
        self,
        graph: Path | str | GraphRunner,
        embeddings: np.ndarray,
        layout: DecoderLayout,
        max_context: int = 1024,
        threads: int | None = None,
        precision: str = "fp32",
        spin: bool = True,
    ):
        """``graph``: a runner from ``backends.load`` (any device), or a graph file to load
        with ONNX Runtime on the CPU (``threads``, ``precision``, ``spin`` apply to that)."""
        if embeddings.ndim != 2 or embeddings.shape[1] != layout.hidden:
            raise ValueError(
                f"embedding table has shape {embeddings.shape}, the decoder wants "
                f"[vocab, {layout.hidden}]"
            )
        self.layout = layout
        self.max_context = int(max_context)
        self.embeddings = embeddings
        if isinstance(graph, str | Path):
            # int8 GEMMs that would saturate on this CPU load in their exact u8×u8 form.
            graph = backends.load(
                RuntimeConfig(), Path(graph), precision, threads=threads, spin=spin
            )
        self.runner = graph
        self.path = Path(graph.path)
        self.precision = graph.precision
        self.cpu_note = getattr(graph, "cpu_note", None)
        self.input_names = list(graph.input_names)
        self.output_names = list(graph.output_names)
        self._check_io()
        dtypes = graph.dtypes
        self._embeds_dtype = dtypes.get(INPUTS_EMBEDS, np.dtype(np.float32))
        kv_dtype = dtypes.get(past_key(0), np.dtype(np.float32))
        self._logits_dtype = dtypes.get(LOGITS, np.dtype(np.float32))
        shape = (1, layout.kv_heads, self.max_context, layout.head_dim)
        self._kv = [graph.buffer(shape, kv_dtype) for _ in range(2 * layout.layers)]
        self._mask = np.ones((1, self.max_context), np.int64)
        self._step_logits = graph.buffer((1, 1, layout.vocab), self._logits_dtype)
        self._keep_last = np.array([1], np.int64)
        self._keep_all = np.array([0], np.int64)
        self._binding = graph.binding()
        for i in range(layout.layers):
            for j, (past, present) in enumerate(
                ((past_key(i), present_key(i)), (past_value(i), present_value(i)))
            ):
                value = self._kv[2 * i + j]
                self._binding.bind_input(past, value)
                self._binding.bind_output(present, value)
        self.length = 0
        self._tokens: list[int | None] = []  # what each cache slot holds (None: an embedding)
        self.positions_run = 0  # positions computed over the session's life (cache reuse shows)

    @property
    def info(self) -> dict:
        return self.runner.info

    def _check_io(self) -> None:
        want_in = {INPUTS_EMBEDS, ATTENTION_MASK}
        want_out = {LOGITS}
        for i in range(self.layout.layers):
            want_in |= {past_key(i), past_value(i)}
            want_out |= {present_key(i), present_value(i)}
        # logits_to_keep is ours; decoder graphs from elsewhere (affectgpt) may lack it.
        # position_ids is the contract's where a graph takes them (GroupQueryAttention graphs
        # derive positions from the mask; standard exports take them).
        have_in = set(self.input_names) - {LOGITS_TO_KEEP, POSITION_IDS}
        have_out = set(self.output_names)
        self.keeps_logits = LOGITS_TO_KEEP in self.input_names
        self.takes_positions = POSITION_IDS in self.input_names
        if have_in != want_in or not want_out <= have_out:
            raise ValueError(
                f"{self.path}: not a decoder graph for this layout; inputs differ by "
                f"{sorted(have_in ^ want_in)}, missing outputs {sorted(want_out - have_out)}"
            )

    @property
    def room(self) -> int:
        return self.max_context - self.length

    def reset(self) -> None:
        self.length = 0
        self._tokens.clear()

    @property
    def tokens(self) -> list[int | None]:
        return self._tokens[: self.length]

    def truncate(self, length: int) -> None:
        """Forget every token after the first ``length`` (their slots get overwritten)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} tokens to {length}")
        self.length = length
        del self._tokens[length:]

    def prefill_reusing(self, token_ids: Sequence[int]) -> np.ndarray:
        """Make the cache hold exactly ``token_ids``, reusing the prefix it already holds.

        Returns the last position's logits [1, vocab].
        """
        ids = [int(t) for t in token_ids]
        if not ids:
            raise ValueError("prefill needs at least one token")
        same = 0
        for cached, new in zip(self.tokens, ids, strict=False):
            if cached != new:
                break
            same += 1
        self.truncate(min(same, len(ids) - 1))
        return self.forward(ids[self.length :], last_only=True)

    def embed(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.embeddings.shape[0]):
            raise ValueError(f"token id outside the vocabulary of {self.embeddings.shape[0]}")
        return np.asarray(self.embeddings[ids], dtype=np.float32)

    def forward(self, token_ids: Sequence[int] | np.ndarray, last_only: bool = False) -> np.ndarray:
        """Append tokens to the cache; returns their logits [n, vocab] (a fresh array), or
        only the last position's [1, vocab] with ``last_only``."""
        ids = [int(t) for t in np.asarray(token_ids).reshape(-1)]
        return self.forward_embeds(self.embed(ids), ids, last_only)

    def probe(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Logits of a probe's token ids from an empty cache (the parity gate's run)."""
        self.reset()
        try:
            return {LOGITS: self.forward(inputs["token_ids"])}
        finally:
            self.reset()

    def forward_embeds(
        self, embeds: np.ndarray, token_ids: list[int] | None = None, last_only: bool = False
    ) -> np.ndarray:
        """Append embedded positions (e.g. modality tokens); ``token_ids`` if they are text."""
        n = int(embeds.shape[0])
        if n == 0:
            raise ValueError("forward needs at least one token")
        if n > self.room:
            raise ContextOverflow(
                f"{n} more tokens do not fit: {self.length} of {self.max_context} cache slots "
                "are in use"
            )
        total = self.length + n
        b = self._binding
        b.bind_input(INPUTS_EMBEDS, np.ascontiguousarray(embeds[None], self._embeds_dtype))
        b.bind_input(ATTENTION_MASK, self._mask[:, :total])
        if self.takes_positions:
            b.bind_input(POSITION_IDS, np.arange(self.length, total, dtype=np.int64)[None])
        kept = 1 if last_only and self.keeps_logits else n
        if self.keeps_logits:
            b.bind_input(LOGITS_TO_KEEP, self._keep_last if kept == 1 else self._keep_all)
        if kept == 1:
            value = self._step_logits
        else:
            value = self.runner.buffer((1, kept, self.layout.vocab), self._logits_dtype)
        b.bind_output(LOGITS, value)
        b.run()
        self.length = total
        self.positions_run += n
        self._tokens.extend(token_ids if token_ids is not None else [None] * n)
        logits = value.numpy()
        # A fresh float32 array: the step buffer is overwritten by the next step.
        out = logits[0].astype(np.float32, copy=kept == 1)
        return out[-1:] if last_only else out

    def kv_snapshot(self, length: int | None = None) -> list[np.ndarray]:
        """Copies of the cached keys/values [1, kv, length, d] (tests and debugging)."""
        n = self.length if length is None else length
        return [a.numpy()[:, :, :n].copy() for a in self._kv]
