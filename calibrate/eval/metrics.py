"""Label metrics of readings, in numpy: accuracy, F1 (weighted and macro), per-class
precision and recall, the confusion matrix, expected calibration error and abstention.

A reading that abstains (``emotion`` null) has no label. Metrics come two ways:

* ``answered``: over the items that got a label (what a consumer that skips abstentions sees);
* ``all``: over every item, an abstention counted wrong (it is a miss for its true class and a
  prediction of no class, so it lowers recall, not any class's precision).

Macro F1 averages over the classes that occur as a true or a predicted label (scikit-learn's
default for the labels present); weighted F1 weighs each class's F1 by its true support. A
class with no prediction has precision 0, one with no true item recall 0 (scikit-learn's
``zero_division=0``).

ECE: answered items only, ``bins`` equal-width bins of the reading's confidence over [0, 1]
(bin i holds confidences in (i/bins, (i+1)/bins]; 0 falls in the first), ECE = sum over bins of
(n_bin / n) * |accuracy_bin - mean confidence_bin|.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ABSTAINED = "(abstained)"


def confusion(
    truth: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
) -> np.ndarray:
    """Counts [true label, predicted label]; a last column counts abstentions (None)."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels) + 1), np.int64)
    for t, p in zip(truth, predicted, strict=True):
        m[index[t], len(labels) if p is None else index[p]] += 1
    return m


def per_class(m: np.ndarray, labels: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support per class from a confusion matrix whose last
    column counts abstentions."""
    k = len(labels)
    tp = np.diag(m[:, :k]).astype(float)
    predicted = m[:, :k].sum(axis=0).astype(float)
    support = m.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    return {
        lab: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
        }
        for i, lab in enumerate(labels)
    }


def summary(m: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, weighted and macro F1 and per-class scores of a confusion matrix."""
    classes = per_class(m, labels)
    n = int(m.sum())
    correct = int(np.trace(m[:, : len(labels)]))
    support = np.array([c["support"] for c in classes.values()], float)
    f1 = np.array([c["f1"] for c in classes.values()])
    present = np.array([c["support"] > 0 or c["predicted"] > 0 for c in classes.values()])
    return {
        "n": n,
        "accuracy": correct / n if n else None,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class": classes,
    }


def calibration(confidence: Sequence[float], correct: Sequence[bool], bins: int = 15) -> dict:
    """Expected calibration error and the reliability table (per bin: count, mean
    confidence, accuracy)."""
    conf = np.asarray(confidence, float)
    hit = np.asarray(correct, float)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidences must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # (lo, hi] bins; a confidence of exactly 0 joins the first.
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        count = int(sel.sum())
        row = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
               "confidence": None, "accuracy": None}  # fmt: skip
        if count:
            row["confidence"] = float(conf[sel].mean())
            row["accuracy"] = float(hit[sel].mean())
            ece += count / conf.size * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return {"ece": float(ece) if conf.size else None, "bins": table}


def label_metrics(
    truth: Sequence[str],
    predicted: Sequence[str | None],
    confidence: Sequence[float],
    labels: Sequence[str],
    bins: int = 15,
) -> dict:
    """Every label metric of one run: abstention, ``answered`` and ``all`` summaries, the
    confusion matrix (rows true, columns predicted + abstained) and calibration."""
    labels = list(labels)
    unknown = sorted({t for t in truth if t not in labels} | {p for p in predicted if p is not None and p not in labels})  # fmt: skip
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label set {labels}")
    m = confusion(truth, predicted, labels)
    answered = [i for i, p in enumerate(predicted) if p is not None]
    n = len(truth)
    out = {
        "labels": labels,
        "n": n,
        "abstained": n - len(answered),
        "abstention_rate": (n - len(answered)) / n if n else None,
        "all": summary(m, labels),
        "answered": summary(_no_abstentions(m), labels),
        "confusion": {"rows": labels, "columns": labels + [ABSTAINED], "counts": m.tolist()},
        "calibration": calibration(
            [confidence[i] for i in answered],
            [predicted[i] == truth[i] for i in answered],
            bins,
        ),
    }
    # The majority-class baseline: always answering the most frequent true label.
    if n:
        support = m.sum(axis=1)
        top = int(np.argmax(support))
        base = np.zeros_like(m)
        base[:, top] = support
        out["majority_baseline"] = {"label": labels[top], **_headline(summary(base, labels))}
    return out


def _no_abstentions(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[:, -1] = 0
    return out


def _headline(s: dict) -> dict:
    return {k: s[k] for k in ("accuracy", "weighted_f1", "macro_f1")}
