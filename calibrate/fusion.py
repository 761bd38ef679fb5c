"""Fitting the fusion: how much each modality weighs, and when a reading is uncertain.

Log-linear pooling gives each modality an exponent (``runtime/fusion.FusionModel``): a weight
w on a distribution p is a temperature 1/w on its log-probabilities. Fitted on labelled data,
the weights make the pooled probabilities calibrated, so the reading's confidence means what
it says. Items may carry any subset of the modalities: a modality's weight is fitted on every
item that has it, jointly with the others where items have several (coordinate descent on
the negative log-likelihood, each coordinate by golden-section search). A weight that fits
under ``NEGLIGIBLE`` is set to 0: that modality is not pooled (nor computed, for the LLM).

The uncertainty threshold follows from calibration: a reading names a label only where,
on the fitting data, readings that confident were right at least half the time (a named
label is then more likely right than wrong). Below it, the reading says ``uncertain``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emolive.calibrate.eval.metrics import calibration
from emolive.runtime.fusion import FusionModel, pool

WEIGHT_RANGE = (0.0, 5.0)
NEGLIGIBLE = 0.05  # a fitted weight under this: the modality adds nothing, and is not pooled
HAND_SET = FusionModel()  # the weights a bundle without a fitted model runs with


@dataclass(frozen=True)
class Item:
    """One labelled item: its modalities' distributions over the label set, and the index of
    its true label."""

    dists: Mapping[str, np.ndarray]
    label: int


def nll(items: Sequence[Item], model: FusionModel) -> float:
    """Mean negative log-likelihood of the true labels under the pooled distributions (items
    with no weighted modality count as uniform)."""
    total = 0.0
    for it in items:
        p = pool(it.dists, model)
        k = len(next(iter(it.dists.values())))
        total -= math.log(max(float(p[it.label]), 1e-12)) if p is not None else -math.log(1 / k)
    return total / max(len(items), 1)


def _golden(f, lo: float, hi: float, iters: int = 40) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_weights(
    items: Sequence[Item], modalities: Sequence[str], start: FusionModel = HAND_SET,
    rounds: int = 4,
) -> FusionModel:  # fmt: skip
    """The weights of ``modalities`` that minimise the NLL of ``items`` (others keep
    ``start``'s weights)."""
    if not items:
        raise ValueError("no labelled items to fit the fusion on")
    weights = dict(start.weights)
    for name in modalities:
        if not any(name in it.dists for it in items):
            raise ValueError(f"no item carries modality {name!r}; cannot fit its weight")
    for _ in range(rounds if len(modalities) > 1 else 1):
        for name in modalities:

            def loss(w, name=name):
                return nll(items, FusionModel({**weights, name: w}, start.llm_max_ratio))

            w = _golden(loss, *WEIGHT_RANGE)
            weights[name] = 0.0 if w < NEGLIGIBLE else round(w, 4)
    return FusionModel(weights, start.llm_max_ratio, start.threshold, start.fitted_on)


def confidences(items: Sequence[Item], model: FusionModel) -> tuple[np.ndarray, np.ndarray]:
    """Each item's pooled top probability and whether its top label is right."""
    conf, right = [], []
    for it in items:
        p = pool(it.dists, model)
        if p is None:
            continue
        top = int(np.argmax(p))
        conf.append(float(p[top]))
        right.append(top == it.label)
    return np.array(conf), np.array(right, dtype=bool)


def measure(items: Sequence[Item], model: FusionModel) -> dict:
    """How ``model`` reads ``items``: NLL, accuracy, ECE (15 bins, ``eval.metrics``), and the
    share its threshold turns uncertain with the accuracy of the rest."""
    conf, right = confidences(items, model)
    answered = conf >= model.threshold if model.threshold is not None else np.ones(len(conf), bool)
    return {
        "items": len(items),
        "nll": round(nll(items, model), 4),
        "accuracy": round(float(right.mean()), 4),
        "ece": round(calibration(conf, right)["ece"], 4),
        "uncertain_share": round(float(1 - answered.mean()), 4),
        "accuracy_answered": round(float(right[answered].mean()), 4) if answered.any() else None,
    }


def uncertainty_threshold(
    conf: np.ndarray, right: np.ndarray, min_accuracy: float = 0.5, band: float = 0.1,
    min_items: int = 20,
) -> float | None:  # fmt: skip
    """The lowest confidence from which readings are right at least ``min_accuracy`` of the
    time: every band of ``band`` width at or above it (with ``min_items`` items or more) meets
    it. None when every band does (no reading need abstain)."""
    conf, right = np.asarray(conf, np.float64), np.asarray(right, bool)
    grid = np.round(np.arange(0.05, 1.0, 0.01), 2)
    failing = [
        t for t in grid
        if ((conf >= t) & (conf < t + band)).sum() >= min_items
        and right[(conf >= t) & (conf < t + band)].mean() < min_accuracy
    ]  # fmt: skip
    if not failing:
        return None
    return float(min(round(max(failing) + band, 2), 0.99))


def fit(
    items: Sequence[Item], modalities: Sequence[str], fitted_on: Mapping,
    start: FusionModel = HAND_SET,
) -> tuple[FusionModel, dict]:  # fmt: skip
    """Fit the weights and the threshold on ``items``; the model (with ``fitted_on`` and the
    fit's measures recorded) and a report: NLL and ECE before and after, the threshold, and
    the share of readings it turns uncertain with the accuracy of the rest."""
    before = measure(items, start)
    model = fit_weights(items, modalities, start)
    threshold = uncertainty_threshold(*confidences(items, model))
    model = FusionModel(model.weights, model.llm_max_ratio, threshold)
    after = measure(items, model)
    report = {
        "items": len(items),
        "modalities": list(modalities),
        "weights": {m: model.weights[m] for m in modalities},
        "nll": {"before": before["nll"], "after": after["nll"]},
        "ece": {"before": before["ece"], "after": after["ece"]},
        "accuracy": after["accuracy"],
        "threshold": threshold,
        "uncertain_share": after["uncertain_share"],
        "accuracy_answered": after["accuracy_answered"],
    }
    model = FusionModel(model.weights, model.llm_max_ratio, threshold, {**fitted_on, "fit": report})
    return model, report
