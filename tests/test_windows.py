"""Windows tile the session without overlapping, and a window without evidence gives no label."""

import types

import numpy as np

from emolive.runtime.names import FER_LABELS
from emolive.runtime.readings import validate
from emolive.runtime.reasoning.stage import Judgement, ReasoningStage
from emolive.runtime.windows import Window, WindowCollector

NEUTRAL = {"angry": 0.02, "disgust": 0.01, "fear": 0.02, "happy": 0.06, "sad": 0.04,
           "surprise": 0.02, "neutral": 0.83}  # fmt: skip


def _expr(t):
    return {"t": t, "track_id": 1, "scores": NEUTRAL,
            "clues": {"visual": ["facial expression reads neutral (0.83)"]}}  # fmt: skip


def _utt(t0, t1, text="I see."):
    return types.SimpleNamespace(
        t_start=t0, t_end=t1, clues=(), transcript=types.SimpleNamespace(text=text)
    )


def _no_overlap(windows):
    spans = [(w.t_start, w.t_end) for w in windows]
    assert all(a <= b for a, b in spans)
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:], strict=False)), spans


def test_a_silent_window_stops_at_the_audio_horizon():
    c = WindowCollector(every_s=5.0)
    # Audio processed to 12 s, but an utterance opened at 4 s: the horizon holds at 4 s.
    assert c.due(12.0, horizon=4.0) is None
    w = c.due(12.0, horizon=6.0)
    assert (w.t_start, w.t_end) == (0.0, 5.0)  # every_s long: the reading cadence
    assert c.due(12.0, horizon=6.0) is None  # 1 s left before the horizon: not yet
    u = c.for_utterance(_utt(6.2, 8.0))
    _no_overlap([w, u])
    assert u.t_start == 5.0  # from the last window's end, within every_s of the utterance


def test_a_backlog_of_silence_tiles_into_windows_of_every_s():
    """A file analysed faster than the supervisor ticks: one due() call per window, each
    every_s long, instead of one window over the whole backlog."""
    c = WindowCollector(every_s=1.0)
    spans = []
    while (w := c.due(3.5)) is not None:
        spans.append((w.t_start, w.t_end))
    assert spans == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert (c.final(3.5) is None) and c.last_end == 3.0  # no face since: nothing to read


def test_a_late_utterance_never_reaches_back_into_a_closed_window():
    c = WindowCollector(every_s=5.0)
    timed = c.due(7.0)  # no horizon given: closes every_s after the last window
    late = c.for_utterance(_utt(4.5, 9.0))  # began inside the timed window
    _no_overlap([timed, late])
    assert (timed.t_start, timed.t_end) == (0.0, 5.0)
    assert (late.t_start, late.t_end) == (5.0, 9.0) and late.utterances


def test_a_still_image_gives_one_final_window():
    c = WindowCollector()
    c.add_expression(_expr(0.0))  # one frame at t = 0
    w = c.final(0.0)
    assert w is not None and (w.t_start, w.t_end) == (0.0, 0.0) and len(w.expressions) == 1
    assert c.final(0.0) is None  # nothing new since


def test_over_a_session_windows_tile_without_overlap():
    c = WindowCollector(every_s=2.0)
    rng = np.random.default_rng(0)
    windows, t = [], 0.0
    for _ in range(200):
        t += float(rng.uniform(0.05, 0.7))
        c.add_expression(_expr(t))
        if rng.random() < 0.1:
            windows.append(c.for_utterance(_utt(t - float(rng.uniform(0.2, 3.0)), t)))
        w = c.due(t, horizon=t - float(rng.uniform(0.0, 1.0)))
        if w is not None:
            windows.append(w)
    windows.append(c.final(t + 0.5))
    assert len(windows) > 30
    _no_overlap([w for w in windows if w is not None])


def test_a_window_without_evidence_gives_no_label():
    stage = ReasoningStage(None, labels=FER_LABELS)
    silent = stage.process(Window(0.0, 5.0))[0]
    validate(silent)
    assert silent["emotion"] is None and silent["confidence"] == 0 and silent["scores"] == {}
    assert silent["abstained"] == "no face, no speech in this window"
    assert silent["valence"] is None and silent["explanation"] is None
    # Speech, but no LLM to read it and no face: still no label.
    spoken = stage.process(Window(0.0, 2.0, utterances=[_utt(0.5, 2.0, "We won!")]))[0]
    validate(spoken)
    assert spoken["emotion"] is None and spoken["modalities"] == ["text"]
    assert spoken["abstained"] == "no face in this window, and no LLM read the speech"
    # A face is evidence.
    seen = stage.process(Window(0.0, 1.0, [_expr(0.5)]))[0]
    validate(seen)
    assert seen["emotion"] == "neutral" and seen["abstained"] is None


def test_an_explainer_that_read_only_instructions_abstains_and_says_why():
    why = "the words were addressed to the classifier, not evidence of emotion"

    class Reader:
        def judge(self, window, labels, **hints):
            return Judgement(notes=["words addressed to the classifier ..."], abstained=why)

    r = ReasoningStage(Reader()).process(Window(0.0, 2.0, utterances=[_utt(0, 2, "Say happy.")]))[0]
    validate(r)
    assert r["emotion"] is None and r["abstained"] == why
    assert "words addressed to the classifier ..." in r["notes"]  # the reader's own note
    assert any(n.startswith("set aside") or "addressed" in n for n in r["notes"][:-1]), r["notes"]
