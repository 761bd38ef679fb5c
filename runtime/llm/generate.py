"""Token generation over a ``DecoderSession``: greedy or top-p, streamed as it comes.

Generation continues from whatever the session's cache holds; it stops at an end-of-turn
token (not emitted), at a stop string, when the token budget is spent, or when the cache is
full, and says which in ``Generated.stop_reason``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from emolive.runtime.llm.decoder import DecoderSession
from emolive.runtime.llm.tokenizer import ChatTokenizer, TextStream


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 64
    top_p: float | None = None  # None (and no top_k): greedy
    top_k: int | None = None  # sample among the k likeliest only (before top_p, as transformers)
    temperature: float = 1.0
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()
    max_sentences: int | None = None  # stop once this many sentences have ended

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class Token:
    id: int
    text: str  # the new text this token completes ("" while inside a UTF-8 character)


@dataclass(frozen=True)
class Generated:
    text: str
    ids: tuple[int, ...]
    stop_reason: str  # end_of_turn | stop_string | max_sentences | max_new_tokens | context_full


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def sentences_ended(text: str) -> int:
    return len(_SENTENCE_END.findall(text))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def pick_token(logits: np.ndarray, config: GenerationConfig, rng: np.random.Generator) -> int:
    if config.top_p is None and config.top_k is None:
        return int(np.argmax(logits))
    probs = softmax(logits / config.temperature)
    order = np.argsort(-probs)
    if config.top_k is not None:  # the k likeliest, renormalised, then top_p among them
        order = order[: config.top_k]
        probs = np.zeros_like(probs)
        probs[order] = softmax(logits[order] / config.temperature)
    top_p = 1.0 if config.top_p is None else config.top_p
    cumulative = np.cumsum(probs[order])
    # Smallest set whose mass reaches top_p (always at least the most likely token).
    keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
    p = probs[keep] / probs[keep].sum()
    return int(rng.choice(keep, p=p))


class Generation:
    """Iterate to stream ``Token``s; ``result`` holds the outcome once iteration ends."""

    def __init__(
        self,
        session: DecoderSession,
        tokenizer: ChatTokenizer,
        first_logits: np.ndarray,
        config: GenerationConfig,
        on_token: Callable[[Token], None] | None = None,
    ):
        self.session = session
        self.tokenizer = tokenizer
        self.logits = first_logits
        self.config = config
        self.on_token = on_token
        self.result: Generated | None = None

    def __iter__(self) -> Iterator[Token]:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        stream = TextStream(self.tokenizer)
        logits = self.logits
        reason = "max_new_tokens"
        for _ in range(cfg.max_new_tokens):
            tid = pick_token(logits, cfg, rng)
            if tid in self.tokenizer.stop_ids:
                reason = "end_of_turn"
                break
            token = Token(tid, stream.push(tid))
            if self.on_token:
                self.on_token(token)
            yield token
            if cfg.stop_strings and any(s in stream.text for s in cfg.stop_strings):
                reason = "stop_string"
                break
            if cfg.max_sentences and sentences_ended(stream.text) >= cfg.max_sentences:
                reason = "max_sentences"
                break
            if self.session.room == 0:
                reason = "context_full"
                break
            logits = self.session.forward([tid])[-1]
        self.result = Generated(stream.text, tuple(stream.ids), reason)


def generate(
    session: DecoderSession,
    tokenizer: ChatTokenizer,
    first_logits: np.ndarray,
    config: GenerationConfig,
    on_token: Callable[[Token], None] | None = None,
) -> Generated:
    """Run a whole generation; ``on_token`` sees each token as it is produced."""
    gen = Generation(session, tokenizer, first_logits, config, on_token)
    for _ in gen:
        pass
    assert gen.result is not None
    return gen.result
