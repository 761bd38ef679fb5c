"""Voice clues read against a speaker's own baseline only once it exists, and the voice's
distribution for fusion is None unless a model fitted on labelled speech supports one."""

from __future__ import annotations

import types

import numpy as np
import pytest

from emolive.runtime.audio.clues import ClueThresholds, ProsodyDescriber
from emolive.runtime.audio.prosody import measure
from emolive.runtime.audio.voice_evidence import (
    FEATURES,
    VoiceModel,
    voice_distribution,
    voice_features,
)
from emolive.runtime.evidence import Evidence
from emolive.runtime.names import FER_LABELS
from tests.audio_speech import speak

TEXT = "We are going to the market later this afternoon."


def window(*prosody):
    return Evidence(utterances=tuple(types.SimpleNamespace(prosody=p) for p in prosody))


def test_first_utterances_say_there_is_no_baseline_and_give_no_voice_evidence():
    describe = ProsodyDescriber()
    # An expressive first utterance (high, a little fast) used to read as evidence.
    expressive = describe(measure(speak(TEXT, 190, pitch=75)))
    assert expressive.clues == () and expressive.relative == {}
    assert not expressive.baseline_ready and expressive.baseline_utterances == 0
    assert expressive.notes == (
        "no voice baseline yet for this speaker (1 of 3 utterances): pitch, loudness, "
        "intonation and voice quality not compared",
    )
    notes = [describe(measure(speak(TEXT, pitch=40))).notes for _ in range(2)]
    assert [n[0].split("(")[1][:6] for n in notes] == ["2 of 3", "3 of 3"]
    high = describe(measure(speak(TEXT, pitch=90)))
    assert high.baseline_ready and high.notes == () and high.baseline_utterances == 3
    assert any("above this speaker's baseline" in c for c in high.clues)
    assert high.as_dict()["notes"] == [] and high.as_dict()["baseline_ready"] is True


def test_no_rate_clue_on_a_voice_too_low_for_the_syllable_counter():
    m = measure(speak(TEXT, 130, pitch=5))
    assert m.f0_mean_hz < ClueThresholds().min_rate_f0_hz
    fast = ProsodyDescriber()(measure(speak("The weather is lovely today and I feel great.", 340)))
    assert any(c.startswith("speaking fast") for c in fast.clues)  # a normal voice: rate read
    assert not any(c.startswith("speaking") for c in ProsodyDescriber()(m).clues)


def _ready_clues(describe, pitch, amp=1.0):
    return describe(measure(speak(TEXT, pitch=pitch) * amp))


def test_voice_distribution_is_none_without_a_fitted_model_or_a_ready_baseline():
    describe = ProsodyDescriber()
    early = [_ready_clues(describe, 50) for _ in range(3)]
    late = _ready_clues(describe, 85, 2.0)
    assert voice_features(window(*early)) is None
    x = voice_features(window(*early, late))
    assert x is not None and x[FEATURES.index("f0_mean_hz")] > 15
    assert x[FEATURES.index("loudness_db")] > 4  # twice the amplitude: +6 dB, give or take
    assert voice_distribution(window(*early, late)) is None  # nothing fitted: no say

    # A model (here fitted on constructed features: higher and louder -> "happy", lower and
    # quieter -> "sad") gives a distribution over the asked labels, in their order.
    rng = np.random.default_rng(0)
    up = rng.normal([20, 2, 5, 0, 0, 0, 0, 0], 3, (30, len(FEATURES)))
    down = rng.normal([-20, -2, -5, 0, 0, 0, 0, 0], 3, (30, len(FEATURES)))
    model = VoiceModel.fit(
        np.vstack([up, down]), ["happy"] * 30 + ["sad"] * 30, ("happy", "sad"), "constructed"
    )
    p = voice_distribution(window(*early, late), model=model)
    assert p.shape == (2,) and p.sum() == pytest.approx(1) and p[0] > 0.9
    q = voice_distribution(window(*early, late), labels=["sad", "happy"], model=model)
    assert q[1] == pytest.approx(p[0])
    assert voice_distribution(window(*early, late), labels=FER_LABELS, model=model) is None
    assert voice_distribution(window(*early), model=model) is None
    with pytest.raises(ValueError, match="labels not in the label set"):
        VoiceModel.fit(up, ["calm"] * 30, ("happy", "sad"), "constructed")
    with pytest.raises(ValueError, match="must be"):
        VoiceModel.fit(up[:, :3], ["happy"] * 30, ("happy", "sad"), "constructed")
