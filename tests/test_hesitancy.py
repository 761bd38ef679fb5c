"""The hesitancy flag: pauses measured on synthesized speech, fillers and restarts in
constructed transcripts, gaze aversion from expression events."""

from __future__ import annotations

import types

import numpy as np
import pytest

from emolive.runtime.audio.clues import ProsodyDescriber
from emolive.runtime.audio.prosody import measure
from emolive.runtime.evidence import Evidence, face_tracks
from emolive.runtime.media import AUDIO_RATE
from emolive.runtime.reasoning.hesitancy import fillers, hesitancy, restarts
from emolive.runtime.vision.clues import YAW_AWAY_DEG
from tests.audio_speech import speak


def test_fillers_are_told_from_the_same_words_used_plainly():
    assert fillers("Um, I think, uh, maybe. Hmm.") == ["um", "uh", "hmm"]
    assert fillers("So, like, it was, you know, fine. I mean, really.") == [
        "like",
        "you know",
        "i mean",
    ]
    for plain in ("I like it a lot.", "She was like, no way.", "I mean it.", "Do you know him?"):
        assert fillers(plain) == [], plain


def test_restarts_are_cut_offs_and_repeated_runs_but_not_doubling_on_purpose():
    assert restarts("I- I think so.") == ["i- i"]
    assert restarts("I was, I was going to ask.") == ["i was, i was"]
    assert restarts("Wh- what did the the man say?") == ["wh- what", "the, the"]
    for plain in ("It was very very good.", "No, no, it's fine.", "I know that that is true."):
        assert restarts(plain) == [], plain


def halting(pieces, gap_s=0.6):
    """Synthesized speech with ``gap_s`` of silence between its pieces."""
    gap = np.zeros(int(gap_s * AUDIO_RATE), np.float32)
    out = []
    for p in pieces:
        out += [speak(p), gap]
    return np.concatenate(out[:-1])


def utterance(samples, text, describe=None):
    prosody = (describe or ProsodyDescriber())(measure(samples))
    return types.SimpleNamespace(
        prosody=prosody, transcript=types.SimpleNamespace(text=text), clues=prosody.clues
    )


def gaze_events(n, away, track_id=1):
    """``n`` frames of one face, the first ``away`` of them turned past the threshold."""
    base = {"mouth_corner_lift": 0.0, "mouth_open": 0.0, "eye_openness": 0.3,
            "brow_raise": 0.35, "brow_gap": 0.42, "pitch_ratio": 0.65}  # fmt: skip
    return [
        {"track_id": track_id, "scores": {"neutral": 0.9, "happy": 0.1},
         "measures": {**base, "yaw_deg": YAW_AWAY_DEG + 10 if i < away else 3.0}}
        for i in range(n)
    ]  # fmt: skip


def test_pauses_fillers_and_restarts_flag_a_halting_answer_and_not_a_fluent_one():
    text = "Um, I think, uh, maybe we could, we could go there tomorrow."
    halt = utterance(halting(["I think", "maybe we could", "we could", "go there tomorrow"]), text)
    m = halt.prosody.measures
    assert m.pauses >= 2 and m.pause_s >= 1.0  # measured on the speech, not set
    flag = hesitancy(Evidence(utterances=(halt,)))
    assert flag is not None and flag["score"] >= 0.6
    cues = {c["cue"]: c for c in flag["cues"]}
    assert set(cues) == {"pauses", "fillers", "restarts"}
    assert cues["pauses"]["value"] == m.pauses and cues["fillers"]["value"] == 2
    assert cues["restarts"]["detail"] == "1 restart ('we could, we could')"
    assert flag["description"].startswith(f"hesitant: {m.pauses} pauses (")
    assert "2 fillers ('um', 'uh')" in flag["description"]

    fluent_text = "I think we could go there tomorrow."
    fluent = utterance(speak(fluent_text), fluent_text)
    assert hesitancy(Evidence(utterances=(fluent,))) is None
    # Pauses alone (a slow, careful reader) are not enough.
    paused = utterance(halting(["I think", "we could go", "there tomorrow"]), fluent_text)
    assert paused.prosody.measures.pauses >= 2
    assert hesitancy(Evidence(utterances=(paused,))) is None


def test_gaze_aversion_counts_per_frame_and_only_with_another_cue():
    events = gaze_events(10, away=4)
    faces = tuple(face_tracks(events))
    said = types.SimpleNamespace(
        prosody=None, transcript=types.SimpleNamespace(text="Um, well, I- I suppose so."), clues=()
    )
    flag = hesitancy(Evidence(faces=faces, utterances=(said,)), expressions=events)
    gaze = next(c for c in flag["cues"] if c["cue"] == "gaze")
    assert gaze["value"] == pytest.approx(0.4)
    assert gaze["detail"] == "looking away 40% of 10 frames"
    assert flag["score"] >= 0.4
    # Without the per-frame events only the latest frame is seen (looking ahead): one filler
    # and one restart stay below the flag's threshold; the gaze was what tipped it.
    assert hesitancy(Evidence(faces=faces, utterances=(said,))) is None
    # Looking away all the time, saying nothing hesitant: no flag.
    events = gaze_events(10, away=10)
    quiet = types.SimpleNamespace(
        prosody=None, transcript=types.SimpleNamespace(text="Yes."), clues=()
    )
    assert (
        hesitancy(Evidence(faces=tuple(face_tracks(events)), utterances=(quiet,)), events) is None
    )
    assert hesitancy(Evidence()) is None
