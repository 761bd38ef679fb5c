"""Eval's label metrics against cases computed by hand."""

import numpy as np
import pytest

from emolive.calibrate.eval.metrics import calibration, confusion, label_metrics

LABELS = ["a", "b", "c"]


def test_confusion_counts_rows_true_and_a_column_for_abstentions():
    m = confusion(["a", "a", "b", "c", "c"], ["a", "b", "b", None, "a"], LABELS)
    assert m.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]]


def test_weighted_and_macro_f1_by_hand():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    got = label_metrics(truth, pred, [0.9] * 6, LABELS)["all"]
    # a: P 2/2 R 2/3 F1 0.8; b: P 1/2 R 1/2 F1 0.5; c: P 1/2 R 1/1 F1 2/3
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert got["per_class"]["c"]["precision"] == pytest.approx(0.5)
    assert got["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert got["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)


def test_abstentions_count_wrong_in_all_and_not_in_answered():
    truth = ["a", "a", "b", "b"]
    pred = ["a", None, "b", "a"]
    got = label_metrics(truth, pred, [0.8, 0.0, 0.6, 0.7], LABELS)
    assert got["abstained"] == 1 and got["abstention_rate"] == 0.25
    assert got["all"]["accuracy"] == pytest.approx(2 / 4)
    assert got["answered"]["accuracy"] == pytest.approx(2 / 3)
    # An abstention is a miss for its class (recall), no class's false positive (precision).
    assert got["all"]["per_class"]["a"]["recall"] == pytest.approx(1 / 2)
    assert got["answered"]["per_class"]["a"]["recall"] == pytest.approx(1 / 1)
    assert got["all"]["per_class"]["a"]["precision"] == pytest.approx(1 / 2)
    # a: P 1/2 R 1/2 F1 1/2; b: P 1 R 1/2 F1 2/3; c occurs nowhere: left out of macro F1
    assert got["all"]["macro_f1"] == pytest.approx(np.mean([1 / 2, 2 / 3]))
    assert got["calibration"]["bins"][0]["count"] == 0  # the abstention's 0 is not binned
    assert sum(b["count"] for b in got["calibration"]["bins"]) == 3
    assert got["majority_baseline"]["accuracy"] == pytest.approx(0.5)


def test_ece_on_a_constructed_example():
    # 10 items at 0.95 confidence, 8 right; 10 at 0.55, 5 right; 15 bins.
    conf = [0.95] * 10 + [0.55] * 10
    hit = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    got = calibration(conf, hit, bins=15)
    assert got["ece"] == pytest.approx(0.5 * abs(0.8 - 0.95) + 0.5 * abs(0.5 - 0.55))
    filled = [b for b in got["bins"] if b["count"]]
    assert [(b["lo"], b["count"]) for b in filled] == [
        (pytest.approx(8 / 15), 10),
        (pytest.approx(14 / 15), 10),
    ]
    # A perfectly calibrated run scores 0; bin edges are (lo, hi]: 1/15 falls in bin 0.
    assert calibration([1.0, 1.0], [True, True])["ece"] == 0.0
    assert calibration([1 / 15], [True])["bins"][0]["count"] == 1


def test_labels_outside_the_set_are_named():
    with pytest.raises(ValueError, match="'z'"):
        label_metrics(["a"], ["z"], [0.5], LABELS)
