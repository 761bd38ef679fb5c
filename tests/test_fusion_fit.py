"""Fitting the fusion on labelled items: weights that calibrate, a threshold that follows."""

from __future__ import annotations

import numpy as np
import pytest

from emolive.calibrate.eval.metrics import calibration
from emolive.calibrate.fusion import (
    Item,
    fit,
    fit_weights,
    uncertainty_threshold,
)
from emolive.runtime.bundle import BundleError
from emolive.runtime.fusion import FusionModel, fuse_evidence, reading_event
from emolive.runtime.readings import validate


def _overconfident(n=600, k=4, right=0.6, seed=0):
    """A modality right ``right`` of the time, but always ~0.97 sure: temperature too low."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        label = int(rng.integers(k))
        pick = label if rng.random() < right else int((label + rng.integers(1, k)) % k)
        p = np.full(k, 0.01)
        p[pick] = 1 - 0.01 * (k - 1)
        items.append(Item({"words": p}, label))
    return items


def test_fitting_an_overconfident_modality_lowers_its_weight_and_calibrates_it():
    items = _overconfident()
    model = fit_weights(items, ["words"])
    assert model.weights["words"] < 0.6  # a temperature > 1: its certainty was overstated
    # Pooled alone, its confidence now matches its accuracy (0.6) instead of 0.97.
    fused = fuse_evidence(list("abcd"), None, model=model, words=items[0].dists["words"])
    assert fused.probs.max() == pytest.approx(0.6, abs=0.05)


def test_ece_and_the_threshold_on_known_cases():
    conf = np.array([0.9] * 10 + [0.3] * 10)
    right = np.array([True] * 9 + [False] + [True] * 3 + [False] * 7)
    # bins: 0.9 -> acc 0.9 (gap 0), 0.3 -> acc 0.3 (gap 0)
    assert calibration(conf, right)["ece"] == pytest.approx(0.0)
    assert calibration(np.array([0.9, 0.9]), np.array([False, False]))["ece"] == 0.9
    # Readings at 0.3 are right 30% of the time: the threshold rises above their band.
    assert uncertainty_threshold(conf, right, min_items=5) == pytest.approx(0.4)
    assert uncertainty_threshold(conf[:10], right[:10], min_items=5) is None


def test_fit_reports_and_a_fitted_model_makes_readings_uncertain():
    model, report = fit(_overconfident(right=0.45), ["words"], {"data": "synthetic"})
    assert report["ece"]["after"] < report["ece"]["before"]
    assert report["nll"]["after"] < report["nll"]["before"]
    assert model.fitted_on["data"] == "synthetic" and model.fitted_on["fit"] == report
    assert FusionModel.from_dict(model.as_dict()) == model  # the bundle's JSON round-trips
    # Right 41% of the time at one confidence: no reading of it is more likely right than wrong.
    assert model.threshold is not None and report["uncertain_share"] == 1.0
    p = np.array([0.3, 0.3, 0.2, 0.2])
    fused = fuse_evidence(list("abcd"), None, model=model, words=p)
    r = reading_event(
        t_start=0, t_end=1, labels=list("abcd"), expressions=[], visual_clues=[],
        audio_clues=[], text_clues=['said: "hm"'], llm_scores=None, explanation="x",
        latency_ms={}, backend={}, fused=fused,
    )  # fmt: skip
    validate(r)
    assert r["emotion"] is None and r["abstained"].startswith("uncertain: ")
    assert r["uncertain"]["label"] == "a" and r["explanation"] is None


def test_a_bad_fusion_model_is_refused_by_field():
    with pytest.raises(ValueError, match="weights.words must be a number"):
        FusionModel.from_dict({"weights": {"words": -1}})
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        FusionModel.from_dict({"weights": {"smell": 1}})
    with pytest.raises(ValueError, match="field 'threshold' must be in"):
        FusionModel.from_dict({"weights": {"face": 1}, "threshold": 1.5})
    assert issubclass(BundleError, ValueError)
