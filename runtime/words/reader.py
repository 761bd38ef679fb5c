"""Words in, emotion evidence out: all-MiniLM-L6-v2 (ONNX) + the bundle's emotion head (numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle
from emolive.runtime.names import (
    FER_LABELS,
    WORDS_EMBEDDING,
    WORDS_ENCODER,
    WORDS_HEAD,
    WORDS_HEAD_CARD,
    WORDS_MAX_TOKENS,
    WORDS_TOKENIZER,
)
from emolive.runtime.parity import load_graph
from emolive.runtime.words.head import EmotionHead, load_card
from emolive.runtime.words.labels import check_labels, routing_matrix
from emolive.runtime.words.tokens import WordsTokenizer

# The encoder is small and one utterance is short: one intra-op thread per reader unless the
# session's RuntimeConfig says otherwise (benchmarks/words.py measures 1 and 2).
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class WordsEvidence:
    """What the words of one utterance say about emotion.

    ``probabilities``: over the ``labels`` asked for, summing to 1 (FER's distribution carried
    over, see runtime/words/labels.py). ``fer_probabilities``: the head's calibrated
    distribution over FER's seven labels. ``intensity``: per asked label, how strongly the
    words express it, 0-1: the calibrated probability (the head's temperature was fitted on
    dev, so 0.8 means right about 80% of the time; no intensity-labelled data to regress on).
    ``tokens``: the word pieces read ([CLS]/[SEP] included); ``truncated``: the text had more
    than the encoder's max tokens and its end was not read."""

    labels: tuple[str, ...]
    probabilities: np.ndarray
    fer_probabilities: dict[str, float]
    intensity: dict[str, float]
    tokens: tuple[str, ...]
    truncated: bool
    routing: dict[str, str] = field(default_factory=dict)  # how each FER label was carried over

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]


class WordsReader:
    """Reads utterances: tokenizer -> encoder graph (through runtime/backends, parity-gated) ->
    numpy head -> FER distribution -> the session's labels. Synchronous; a stage threads it."""

    def __init__(
        self,
        encoder,
        tokenizer: WordsTokenizer,
        head: EmotionHead,
        card: dict | None = None,
        precision: str = "fp32",
        backend_info: dict | None = None,
        notes: Sequence[str] = (),
    ):
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.head = head
        self.card = dict(card or {})
        self.precision = precision
        self.backend_info: dict[str, dict] = {WORDS_ENCODER: dict(backend_info or {})}
        self.notes: list[str] = list(notes)
        self._routing: dict[tuple[str, ...], tuple[np.ndarray, dict[str, str]]] = {}
        self._order = [head.labels.index(x) for x in FER_LABELS]

    @classmethod
    def from_bundle(cls, bundle: Bundle, runtime: RuntimeConfig | None = None) -> WordsReader:
        """Load the words' graph (the precision ``runtime`` names for it, else the one the
        bundle prefers for the device; a reduced one is parity-gated), tokenizer and head."""
        runtime = runtime or RuntimeConfig()
        if runtime.threads is None:
            runtime = replace(runtime, threads=DEFAULT_THREADS)
        entry = bundle.graph(WORDS_ENCODER)
        gated = load_graph(bundle, WORDS_ENCODER, runtime)
        graph, variant, notes, info = gated.runner, gated.variant, gated.notes, gated.info
        max_tokens = int(entry.attrs.get("max_tokens", WORDS_MAX_TOKENS))
        return cls(
            graph,
            WordsTokenizer(bundle.file(WORDS_TOKENIZER), max_tokens=max_tokens),
            EmotionHead.load(bundle.file(WORDS_HEAD)),
            load_card(bundle.file(WORDS_HEAD_CARD)),
            precision=variant.precision,
            backend_info=info,
            notes=notes,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence embeddings [n, 384]."""
        return self.encoder.run(self.tokenizer.encode(list(texts)).feeds())[WORDS_EMBEDDING]

    def fer_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """[n, 7] calibrated probabilities in FER_LABELS order, for a batch of texts."""
        return self._fer_of(self.embed(texts))

    def _fer_of(self, embeddings: np.ndarray) -> np.ndarray:
        return self.head.probabilities(embeddings)[:, self._order]

    def routing(self, labels: Sequence[str]) -> tuple[np.ndarray, dict[str, str]]:
        return self._routing_of(check_labels(labels))

    def _routing_of(self, key: tuple[str, ...]) -> tuple[np.ndarray, dict[str, str]]:
        if key not in self._routing:
            self._routing[key] = routing_matrix(key, self.fer_probabilities)
        return self._routing[key]

    def read(self, text: str, labels: Sequence[str] = FER_LABELS) -> WordsEvidence:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text is empty: there are no words to read")
        names = check_labels(labels)
        routing, how = self._routing_of(names)
        batch = self.tokenizer.encode([text])  # its tokens and truncation go in the evidence
        fer = self._fer_of(self.encoder.run(batch.feeds())[WORDS_EMBEDDING])[0]
        fer = fer.astype(np.float64)
        probs = fer @ routing
        probs = probs / probs.sum()
        return WordsEvidence(
            labels=names,
            probabilities=probs,
            fer_probabilities={k: float(v) for k, v in zip(FER_LABELS, fer, strict=True)},
            intensity={k: float(v) for k, v in zip(names, probs, strict=True)},
            tokens=batch.tokens[0],
            truncated=batch.truncated[0],
            routing=how,
        )
