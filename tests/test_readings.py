import numpy as np
import pytest

from emolive.runtime.names import FER_LABELS
from emolive.runtime.readings import (
    SCHEMA_VERSION,
    ReadingError,
    expression_event,
    valence_arousal,
    validate,
)


def _event(probs):
    return expression_event(
        t=1.5, frame=45, source="clip.mp4", track_id=1, box=(10, 20, 110, 140), face_score=0.9,
        labels=FER_LABELS, probs=np.asarray(probs, np.float32), clues=["smiling (mouth-corner lift 0.31)"],
        measures={"mouth_corner_lift": 0.31}, latency_ms={"total": 2.0},
        backend={"runtime": "onnxruntime", "device": "cpu", "precision": {"expression": "fp32"}},
    )  # fmt: skip


def test_expression_event_follows_the_schema():
    e = _event([0.05, 0.0, 0.05, 0.8, 0.0, 0.05, 0.05])
    validate(e)
    assert e["emotion"] == "happy" and e["confidence"] == pytest.approx(0.8)
    assert e["valence"] > 0.5 and e["arousal"] > 0.3


def test_valence_arousal_is_the_expectation_over_known_labels():
    assert valence_arousal({"sad": 1.0}) == (-0.7, -0.4)
    assert valence_arousal({"happy": 0.5, "sad": 0.5}) == (0.05, 0.05)
    assert valence_arousal({"bored": 1.0}) == (None, None)


def test_validation_names_the_field():
    e = _event([0.05, 0.0, 0.05, 0.8, 0.0, 0.05, 0.05])
    with pytest.raises(ReadingError, match="'scores' sums"):
        validate({**e, "scores": {"happy": 0.5}, "emotion": "happy"})
    with pytest.raises(ReadingError, match="missing field 'clues'"):
        validate({k: v for k, v in e.items() if k != "clues"})
    with pytest.raises(ReadingError, match="schema_version"):
        validate({**e, "schema_version": "1.0"})  # 2.0: a reading may abstain


def test_a_reading_either_has_a_label_or_says_why_not():
    from emolive.runtime.fusion import reading_event

    r = reading_event(
        t_start=0, t_end=5, labels=FER_LABELS, expressions=[], visual_clues=[], audio_clues=[],
        text_clues=[], llm_scores=None, explanation=None, latency_ms={}, backend={},
    )  # fmt: skip
    validate(r)
    assert r["schema_version"] == SCHEMA_VERSION == "2.2" and r["emotion"] is None
    with pytest.raises(ReadingError, match="'abstained' must say why"):
        validate({**r, "abstained": None})
    with pytest.raises(ReadingError, match="empty 'scores' and 'confidence' 0"):
        validate({**r, "confidence": 0.14})
    with pytest.raises(ReadingError, match="but the reading has an emotion"):
        validate({**r, "emotion": "happy", "scores": {"happy": 1.0}, "confidence": 1.0})
    with pytest.raises(ReadingError, match="null in an expression event"):
        validate({**_event([0.05, 0.0, 0.05, 0.8, 0.0, 0.05, 0.05]), "emotion": None})
