"""Open label sets: a session's labels ("calm,stressed,excited", MER's "worried") from FER's 7.

The head always gives a distribution over FER's seven labels. To carry it over to a session's
labels, each FER label's probability mass is routed to the session's labels:

1. a FER label that a session label names exactly (``names.fer_label_of``: the label itself or
   a listed synonym, e.g. "joy" or "excited" -> happy, "calm" -> neutral, "worried" -> fear)
   gives all its mass to that label (split evenly when several name it);
2. a FER label no session label names goes to the labels that name no FER label ("open"
   labels, e.g. "stressed"; all labels when there are none), in proportion to how strongly
   the words' own head reads that emotion in each label's name: each name is read in one
   template ("I feel {name}.") by the encoder and head, and FER label f's mass goes to label
   j by P(f | "I feel j.") / the sum over the candidate labels. Open labels first: a name
   like "calm" means neutral, and anger should not reach it because the head reads a little
   fear in "I feel calm." The head, not raw embedding similarity: in the encoder's space
   "I feel angry." is nearest "I feel calm." (cosine routing sent 0.78 of anger to "calm" in
   "calm,stressed,excited"). Exact names (or synonyms added to names.EMOTION_WORDS) remain
   the reliable way to say what a label means.

The result is a [7, labels] routing matrix whose rows sum to 1, so probabilities over the
session's labels are ``fer_probabilities @ routing``, and still sum to 1. A session label no FER
label is routed to gets probability 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from emolive.runtime.names import FER_LABELS, fer_label_of

LABEL_TEMPLATE = "I feel {name}."


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence of label names, not one string")
    out = tuple(str(x).strip() for x in labels)
    if not out or any(not x for x in out):
        raise ValueError(f"labels must be non-empty names, got {list(labels)}")
    if len({x.lower() for x in out}) != len(out):
        raise ValueError(f"labels repeat a name: {list(labels)}")
    return out


def routing_matrix(
    labels: Sequence[str], read_fer: Callable[[list[str]], np.ndarray]
) -> tuple[np.ndarray, dict[str, str]]:
    """[len(FER_LABELS), len(labels)] routing of FER mass onto ``labels`` (rows sum to 1), and
    how each FER label was routed ("exact: x" or "read in names: x 0.83, y 0.12"), for notes.
    ``read_fer`` maps sentences to [n, 7] FER probabilities (the head); called only when
    some FER label has no exact name among ``labels``."""
    labels = check_labels(labels)
    exact = [fer_label_of(name) for name in labels]
    routing = np.zeros((len(FER_LABELS), len(labels)), np.float64)
    how: dict[str, str] = {}
    unnamed = []
    for i, fer in enumerate(FER_LABELS):
        hits = [j for j, e in enumerate(exact) if e == fer]
        if hits:
            routing[i, hits] = 1.0 / len(hits)
            how[fer] = "exact: " + ", ".join(labels[j] for j in hits)
        else:
            unnamed.append(i)
    if unnamed:
        read = np.asarray(read_fer([LABEL_TEMPLATE.format(name=n) for n in labels]), np.float64)
        open_labels = np.array([e is None for e in exact])
        candidates = open_labels if open_labels.any() else np.ones(len(labels), bool)
        for i in unnamed:
            w = np.where(candidates, read[:, i] + 1e-12, 0.0)  # all ~0: an even split
            routing[i] = w / w.sum()
            top = [j for j in np.argsort(-routing[i])[:2] if routing[i, j] >= 0.005]
            how[FER_LABELS[i]] = "read in names: " + ", ".join(
                f"{labels[j]} {routing[i, j]:.2f}" for j in top
            )
    return routing, how
