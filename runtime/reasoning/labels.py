"""Label sets and label scoring: each label's probability as a continuation of one prompt.

The prompt is run once; every label's first token is read off the last position's
distribution, and only labels of two or more tokens need a short extra pass over their own
tokens from the shared cache (the cache is rewound after each). A label's score is the
log-probability of its tokens; the distribution over the label set is the softmax of those.

Contextual calibration (Zhao et al. 2021; FACTS.md): the 135M model prefers some labels
whatever the clues say. The same scoring on content-free prompts ("N/A" clues) measures that
preference, and the calibrated distribution is p(label | clues) / p(label | nothing),
renormalized. That calibrated distribution is what the pipeline fuses with the other stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emolive.runtime.llm.decoder import DecoderSession
from emolive.runtime.names import FER_LABELS, MER_LABELS

LABEL_SETS = {"fer": FER_LABELS, "mer": MER_LABELS}
MIN_LABELS = 2
MAX_LABELS = 64  # every label is listed in the prompt and scored; 500 would not fit
MAX_LABEL_CHARS = 40


class LabelSetError(ValueError):
    pass


@dataclass(frozen=True)
class LabelSet:
    labels: tuple[str, ...]

    def __post_init__(self):
        n = len(self.labels)
        if n < MIN_LABELS:
            raise LabelSetError(
                f"a label set needs at least {MIN_LABELS} labels to choose from, got {n}: "
                f"{list(self.labels)}"
            )
        if n > MAX_LABELS:
            raise LabelSetError(
                f"a label set holds at most {MAX_LABELS} labels, got {n}: each is listed in "
                "the prompt and scored"
            )
        seen = set()
        for i, lab in enumerate(self.labels):
            if not isinstance(lab, str) or not lab.strip():
                raise LabelSetError(f"label {i} is empty")
            if lab != lab.strip() or any(c in lab for c in "\n\r\t,"):
                raise LabelSetError(f"label {lab!r}: no surrounding spaces, commas or newlines")
            if not lab.isprintable():
                raise LabelSetError(f"label {lab!r}: no control or other non-printable characters")
            if len(lab) > MAX_LABEL_CHARS:
                raise LabelSetError(f"label {lab[:20]!r}...: longer than {MAX_LABEL_CHARS} chars")
            if lab.lower() in seen:
                raise LabelSetError(f"label {lab!r} appears twice")
            seen.add(lab.lower())

    @classmethod
    def parse(cls, spec: str | Sequence[str]) -> LabelSet:
        """'fer', 'mer', 'calm,tense,joyful' or a sequence of labels."""
        if isinstance(spec, str):
            key = spec.strip().lower()
            if key in LABEL_SETS:
                return cls(LABEL_SETS[key])
            spec = [s.strip() for s in spec.split(",") if s.strip()]
        return cls(tuple(spec))

    def __len__(self) -> int:
        return len(self.labels)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def label_token_ids(tokenizer, labels: LabelSet) -> list[list[int]]:
    """Each label as it continues a sentence: after a space."""
    out = []
    for lab in labels.labels:
        ids = tokenizer.encode(" " + lab)
        if not ids:
            raise LabelSetError(f"label {lab!r} encodes to no tokens")
        out.append(ids)
    return out


def score_labels(
    session: DecoderSession, last_logits: np.ndarray, label_ids: list[list[int]]
) -> np.ndarray:
    """Log-probability of each label's tokens after the cached prompt; the cache is restored."""
    base = session.length
    first = log_softmax(last_logits)
    scores = np.empty(len(label_ids))
    continued: dict[tuple[int, ...], np.ndarray] = {}  # label prefix -> log-probs after it
    for i, ids in enumerate(label_ids):
        total = first[ids[0]]
        if len(ids) > 1:
            head = tuple(ids[:-1])
            if head not in continued:
                session.truncate(base)
                continued[head] = session.forward(list(head))
            logits = continued[head]
            for j, tok in enumerate(ids[1:]):
                total += log_softmax(logits[j])[tok]
        scores[i] = total
    session.truncate(base)
    return scores


def distribution(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max()
    p = np.exp(z)
    return p / p.sum()


def calibrate(probs: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """p / p_content_free, renormalized (both over the same label set)."""
    q = probs / np.maximum(content_free, 1e-12)
    return q / q.sum()
