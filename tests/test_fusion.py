import numpy as np
import pytest

from emolive.runtime.fusion import (
    conflict,
    map_face_scores,
    pool,
    reading_event,
    window_face_scores,
)
from emolive.runtime.names import FER_LABELS, MER_LABELS
from emolive.runtime.readings import validate

FACE_HAPPY = {"angry": 0.02, "disgust": 0.01, "fear": 0.02, "happy": 0.85, "sad": 0.03,
              "surprise": 0.02, "neutral": 0.05}  # fmt: skip


def _expr(track, scores, clues=("smiling (mouth-corner lift 0.31)",)):
    return {"track_id": track, "scores": scores, "clues": {"visual": list(clues)}}


def test_face_scores_map_onto_other_label_sets():
    mer = map_face_scores(FACE_HAPPY, MER_LABELS)
    assert mer.sum() == pytest.approx(1.0)
    assert MER_LABELS[int(np.argmax(mer))] == "happy"
    # "worried" takes the face's fear mass.
    assert mer[MER_LABELS.index("worried")] == pytest.approx(
        0.02 / sum(FACE_HAPPY[k] for k in ("neutral", "angry", "happy", "sad", "fear", "surprise"))
    )
    assert map_face_scores(FACE_HAPPY, ["bored", "curious"]) is None


def test_fusion_is_log_linear_pooling():
    a = np.array([0.7, 0.2, 0.1])
    b = np.array([0.2, 0.7, 0.1])
    np.testing.assert_allclose(pool({"face": a, "llm": None}), a)
    both = pool({"face": a, "llm": b})
    np.testing.assert_allclose(both[0], both[1])  # symmetric evidence ties
    assert both[2] < both[0]
    assert pool({"face": None, "llm": None}) is None  # no evidence: no label
    assert pool({"face": a, "voice": b}) is not None  # voice has weight 0: shown, not pooled
    np.testing.assert_allclose(pool({"face": a, "voice": b}), a)


def test_window_follows_the_main_face():
    events = [_expr(1, FACE_HAPPY)] * 3 + [_expr(2, {**FACE_HAPPY, "happy": 0.0, "sad": 0.88})]
    assert window_face_scores(events)["happy"] == pytest.approx(0.85)


def test_window_face_scores_follow_a_swapped_in_span():
    from emolive.runtime.reasoning.stage import visual_clues
    from emolive.runtime.windows import Window

    w = Window(0.0, 1.0, [_expr(1, FACE_HAPPY)])
    assert w.face_scores["happy"] == pytest.approx(0.85)
    assert visual_clues(w.evidence)[0].startswith("facial expression over 1 frames reads happy")
    # The collector swaps in the fuller span once vision caught up: the evidence follows it.
    w.expressions = [_expr(1, {**FACE_HAPPY, "happy": 0.05, "sad": 0.83})] * 3
    assert max(w.face_scores, key=w.face_scores.get) == "sad"
    assert "over 3 frames reads sad" in visual_clues(w.evidence)[0]


def test_conflict_when_face_and_voice_disagree_in_valence():
    sad = np.array([0.05, 0.05, 0.05, 0.7, 0.1, 0.05])  # MER order: sad
    c = conflict(FACE_HAPPY, MER_LABELS, sad)
    assert c == {
        "face": "happy",
        "voice_and_words": "sad",
        "description": "looks happy but sounds sad",
    }
    happy = np.array([0.05, 0.05, 0.7, 0.05, 0.1, 0.05])
    assert conflict(FACE_HAPPY, MER_LABELS, happy) is None
    unsure = np.full(6, 1 / 6)
    assert conflict(FACE_HAPPY, MER_LABELS, unsure) is None


def test_reading_event_is_valid_and_explains():
    llm = np.array([0.1, 0.05, 0.05, 0.05, 0.6, 0.1, 0.05])  # FER order: sad
    r = reading_event(
        t_start=1.0, t_end=4.0, labels=FER_LABELS, expressions=[_expr(1, FACE_HAPPY)] * 4,
        visual_clues=["smiling (mouth-corner lift 0.31)"], audio_clues=["pitch 20% below this speaker's baseline"], text_clues=['"I lost my job"'],
        llm_scores=llm, explanation="Smiling, but the words and low voice say sad.",
        latency_ms={"reason": 420.0}, backend={"llm": "int8"},
    )  # fmt: skip
    validate(r)
    assert r["modalities"] == ["visual", "audio", "text"]
    assert r["conflict"]["description"] == "looks happy but sounds sad"
    assert r["emotion"] in ("happy", "sad")
    assert r["clues"]["visual"] == ["smiling (mouth-corner lift 0.31)"]
    video_only = reading_event(
        t_start=0, t_end=1, labels=FER_LABELS, expressions=[_expr(1, FACE_HAPPY)],
        visual_clues=[], audio_clues=[], text_clues=[], llm_scores=None, explanation=None,
        latency_ms={}, backend={},
    )  # fmt: skip
    validate(video_only)
    assert video_only["emotion"] == "happy" and video_only["modalities"] == ["visual"]


FACE_NEUTRAL = {"angry": 0.02, "disgust": 0.01, "fear": 0.02, "happy": 0.06, "sad": 0.04,
                "surprise": 0.02, "neutral": 0.83}  # fmt: skip
LLM_HAPPY = np.array([0.005, 0.005, 0.005, 0.97, 0.005, 0.005, 0.005])  # FER order


def _reading(expressions, llm, text=()):
    return reading_event(
        t_start=0, t_end=2, labels=FER_LABELS, expressions=expressions, visual_clues=[],
        audio_clues=[], text_clues=list(text), llm_scores=llm, explanation=None,
        latency_ms={}, backend={},
    )  # fmt: skip


def test_the_llm_alone_claims_no_more_than_its_accuracy_supports():
    r = _reading([], LLM_HAPPY, ['said: "We won!"'])
    validate(r)
    assert r["emotion"] == "happy"
    # At most LLM_MAX_RATIO = 10 times likelier than any other label: 10 / (10 + 6).
    assert r["confidence"] == pytest.approx(10 / 16, abs=1e-3)
    assert max(r["evidence"]["llm"]) / min(r["evidence"]["llm"]) == pytest.approx(10, rel=1e-3)


def test_words_cannot_overturn_a_confident_face_but_weigh_in_on_an_unsure_one():
    confident = _reading([_expr(1, FACE_NEUTRAL)] * 5, LLM_HAPPY, ['said: "happy happy"'])
    assert confident["emotion"] == "neutral"  # 0.83 / 0.06 is more than 10 to 1
    unsure = {**FACE_NEUTRAL, "neutral": 0.5, "happy": 0.39}
    swayed = _reading([_expr(1, unsure)] * 5, LLM_HAPPY, ['said: "We won!"'])
    assert swayed["emotion"] == "happy"


def test_no_evidence_gives_no_label():
    r = _reading([], None)
    validate(r)
    assert (r["emotion"], r["confidence"], r["scores"]) == (None, 0.0, {})
    assert r["abstained"] == "no face, no speech in this window"
    assert r["conflict"] is None and r["evidence"] == {"face": None, "llm": None}
    # A face the label set cannot speak to, and no LLM: no label either.
    open_vocab = reading_event(
        t_start=0, t_end=1, labels=["bored", "curious"], expressions=[_expr(1, FACE_HAPPY)],
        visual_clues=[], audio_clues=[], text_clues=[], llm_scores=None, explanation=None,
        latency_ms={}, backend={},
    )  # fmt: skip
    validate(open_vocab)
    assert (
        open_vocab["emotion"] is None
        and "do not map onto this label set" in (open_vocab["abstained"])
    )
