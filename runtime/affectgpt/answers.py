"""AffectGPT's free answer -> probabilities over the session's labels.

The answer is cut as AffectGPT cuts it (at ``###``, after ``Assistant:``). Its emotion words
are looked up in the bundle's wheel (word -> base emotion); each base maps to a session
label of the same name, else to one that stands for the same FER emotion
(``names.fer_label_of``: "worried" -> fear where the labels have no "worried"). The
probabilities are the mentions' shares, mixed with 10% uniform (a hand-set floor: the
answer names emotions, it does not weigh them). Emotion words that map to no session label
are kept as open labels, for the reading's notes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emolive.runtime.affectgpt.spec import STOP_STRING
from emolive.runtime.names import fer_label_of

UNIFORM_SHARE = 0.1


def cut_answer(text: str) -> str:
    text = text.split(STOP_STRING)[0]
    if "Assistant:" in text:
        text = text.split("Assistant:")[-1]
    return text.strip()


@dataclass(frozen=True)
class Parsed:
    probs: np.ndarray | None  # over the labels; None: no emotion word maps onto them
    mentions: dict[str, int]  # session label -> mentions
    open_labels: tuple[str, ...]  # emotion words outside the session's labels


def _label_of(base: str, labels: Sequence[str]) -> str | None:
    lower = {lab.lower(): lab for lab in labels}
    if base in lower:
        return lower[base]
    fer = fer_label_of(base)
    for lab in labels:
        if fer is not None and fer_label_of(lab) == fer:
            return lab
    return None


def parse_answer(answer: str, labels: Sequence[str], wheel: Mapping[str, str]) -> Parsed:
    words = re.findall(r"[a-z]+", answer.lower())
    counts = dict.fromkeys(labels, 0)
    open_labels: list[str] = []
    for w in words:
        base = wheel.get(w)
        if base is None:
            continue
        label = _label_of(base, labels)
        if label is None:
            if w not in open_labels:
                open_labels.append(w)
            continue
        counts[label] += 1
    # A short list answer ("happy, proud, nervous") names its labels: items the wheel does
    # not know are open labels too.
    items = [i.strip(" .").lower() for i in answer.split(",")]
    if len(items) > 1 and all(0 < len(i.split()) <= 2 for i in items):
        for i in items:
            if not any(wheel.get(w) for w in i.split()) and i not in open_labels:
                open_labels.append(i)
    total = sum(counts.values())
    if total == 0:
        return Parsed(None, counts, tuple(open_labels))
    share = np.array([counts[lab] for lab in labels], np.float64) / total
    probs = (1 - UNIFORM_SHARE) * share + UNIFORM_SHARE / len(labels)
    return Parsed(probs, {k: v for k, v in counts.items() if v}, tuple(open_labels))


def answer_judgement(
    answer: str, labels: Sequence[str], wheel: Mapping[str, str], notes: list[str],
    latency_ms: dict[str, float], precision: str,
):  # fmt: skip
    """A free answer (already cut) as the reasoning stage's ``Judgement``: its label scores,
    the open labels and an answer naming no label said in the notes (the latter abstains),
    and the answer itself as the explanation."""
    from emolive.runtime.reasoning.stage import Judgement

    parsed = parse_answer(answer, labels, wheel)
    notes = list(notes)
    if parsed.open_labels:
        notes.append(
            "open-vocabulary emotions outside the labels: " + ", ".join(parsed.open_labels)
        )
    abstained = None
    if parsed.probs is None:
        abstained = "the answer names no emotion of this session's labels"
        notes.append(abstained)
    return Judgement(
        probs=parsed.probs, abstained=abstained, notes=notes, latency_ms=latency_ms,
        backend={"llm": precision}, explain=lambda label: answer or None,
    )  # fmt: skip
