"""Prosody measures against synthetic signals with known answers, and speech from espeak-ng."""

from __future__ import annotations

import numpy as np
import pytest

from emolive.runtime.audio.clues import ProsodyDescriber, SpeakerBaseline
from emolive.runtime.audio.prosody import measure
from emolive.runtime.media import AUDIO_RATE as SR
from tests.audio_speech import speak


def tone(freq, seconds=2.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def voice(f0=200.0, seconds=2.0, jitter=0.0, shimmer=0.0, seed=0):
    """A pulse train through two fixed formant resonances, like a glottal source and a vowel.

    Returns the signal and the true local jitter and shimmer (%) of the pulses it was made of.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    pos, periods, amps, p = [], [], [], 100
    while p < n - 400:
        period = max(2, round(SR / f0 * (1 + jitter * rng.standard_normal())))
        pos.append(p)
        periods.append(period)
        amps.append(1 + shimmer * rng.standard_normal())
        p += period
    x = np.zeros(n)
    x[pos] = amps
    t = np.arange(int(0.02 * SR)) / SR
    h = np.exp(-np.pi * 300 * t) * np.sin(2 * np.pi * 700 * t)
    h += 0.5 * np.exp(-np.pi * 400 * t) * np.sin(2 * np.pi * 1200 * t)
    y = np.convolve(x, h)[:n]
    periods, amps = np.array(periods[:-1], float), np.array(amps)
    true_jitter = np.mean(np.abs(np.diff(periods))) / periods.mean() * 100
    true_shimmer = np.mean(np.abs(np.diff(amps))) / amps.mean() * 100
    return (0.5 * y / np.abs(y).max()).astype(np.float32), true_jitter, true_shimmer


@pytest.mark.parametrize("freq", [110.0, 220.0, 330.0])
def test_tone_pitch_is_its_frequency(freq):
    m = measure(tone(freq))
    assert m.f0_mean_hz == pytest.approx(freq, rel=0.002)
    assert m.f0_range_st < 0.1
    assert m.voiced_s > 1.9


def test_harmonic_rich_voice_has_the_fundamental_not_a_harmonic():
    t = np.arange(2 * SR) / SR
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11)) * 0.2
    assert measure(x.astype(np.float32)).f0_mean_hz == pytest.approx(150, rel=0.005)


def test_pitch_range_of_a_glide():
    t = np.arange(2 * SR) / SR
    f = 150 * 2 ** (t / 2.0)  # one octave up over 2 s
    x = 0.5 * np.sin(2 * np.pi * np.cumsum(f) / SR)
    m = measure(x.astype(np.float32))
    assert m.f0_range_st == pytest.approx(12 * 0.9, abs=0.6)  # 5th..95th percentile of 12 st


def test_loudness_in_db_and_a_louder_copy():
    quiet, loud = measure(tone(220, amp=0.25)), measure(tone(220, amp=0.5))
    assert quiet.loudness_db == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.05)
    assert loud.loudness_db - quiet.loudness_db == pytest.approx(6.02, abs=0.05)


def test_clipping_is_measured():
    x = np.clip(tone(220, amp=2.0), -1, 1)
    assert measure(x).clipped_ratio > 0.3
    assert measure(tone(220)).clipped_ratio == 0.0


def test_pure_voice_has_no_jitter_or_shimmer():
    x, _, _ = voice(200)
    m = measure(x)
    assert m.jitter_pct < 0.05 and m.shimmer_pct < 0.5 and m.voice_cycles > 300


@pytest.mark.parametrize(("f0", "jitter"), [(200, 0.01), (200, 0.02), (120, 0.01)])
def test_jitter_matches_the_pulse_train(f0, jitter):
    x, true_jitter, _ = voice(f0, jitter=jitter)
    assert measure(x).jitter_pct == pytest.approx(true_jitter, rel=0.15)


@pytest.mark.parametrize("shimmer", [0.05, 0.10])
def test_shimmer_matches_the_pulse_train(shimmer):
    x, _, true_shimmer = voice(200, shimmer=shimmer)
    assert measure(x).shimmer_pct == pytest.approx(true_shimmer, rel=0.1)


def test_frequency_and_amplitude_modulation_raise_jitter_and_shimmer():
    t = np.arange(2 * SR) / SR
    plain = measure(tone(220))
    fm = 0.5 * np.sin(2 * np.pi * np.cumsum(220 * (1 + 0.03 * np.sin(2 * np.pi * 6 * t))) / SR)
    am = 0.5 * (1 + 0.4 * np.sin(2 * np.pi * 5 * t)) * np.sin(2 * np.pi * 220 * t)
    assert measure(fm.astype(np.float32)).jitter_pct > plain.jitter_pct + 0.1
    assert measure(am.astype(np.float32)).shimmer_pct > plain.shimmer_pct + 1.0


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_hnr_follows_the_signal_to_noise_ratio(snr_db):
    x = tone(220)
    noise = np.random.default_rng(1).standard_normal(len(x))
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    assert measure((x + noise).astype(np.float32)).hnr_db == pytest.approx(snr_db, abs=2.0)


def test_syllable_nuclei_count_and_rate():
    burst, gap = int(0.15 * SR), int(0.05 * SR)
    env = np.hanning(burst)
    one = np.concatenate(
        [0.5 * env * np.sin(2 * np.pi * 200 * np.arange(burst) / SR), np.zeros(gap)]
    )
    m = measure(np.tile(one, 10).astype(np.float32))
    assert m.syllables == 10
    assert m.pauses == 0  # 50 ms dips are not pauses
    assert 5.0 <= m.rate_syl_s <= 7.0  # 10 nuclei over ~1.6-2 s of sounding time


def test_pauses_are_found_and_timed():
    x = np.concatenate([tone(200, 1.0), np.zeros(SR // 2, np.float32), tone(200, 1.0)])
    m = measure(x)
    assert m.pauses == 1 and m.pause_s == pytest.approx(0.5, abs=0.05)


def test_silence_and_tiny_inputs_measure_without_errors():
    for x in (np.zeros(SR, np.float32), np.zeros(10, np.float32), np.zeros(0, np.float32)):
        m = measure(x)
        assert m.f0_mean_hz is None and m.jitter_pct is None and m.rate_syl_s is None


def test_faster_speech_has_a_higher_rate_and_higher_voice_has_higher_pitch():
    text = "I really did not expect to see all of you here tonight."
    slow, fast = measure(speak(text, 120)), measure(speak(text, 260))
    assert fast.rate_syl_s > slow.rate_syl_s * 1.5
    low, high = measure(speak(text, pitch=30)), measure(speak(text, pitch=80))
    assert high.f0_mean_hz > low.f0_mean_hz * 1.2


def test_clues_read_relative_to_the_speakers_baseline():
    describe = ProsodyDescriber()
    text = "We are going to the market later this afternoon."
    for _ in range(3):
        first = describe(measure(speak(text, pitch=40)))
        assert not any("baseline" in c for c in first.clues)  # no baseline yet
    high = describe(measure(speak(text, pitch=90)))
    assert high.relative["f0_mean_hz"] > 15
    assert any(c.startswith("pitch ") and "above this speaker's baseline" in c for c in high.clues)
    louder = describe(measure(speak(text, pitch=40) * 3.0))
    assert louder.relative["loudness_db"] == pytest.approx(20 * np.log10(3.0), abs=0.5)
    assert any(c.startswith("louder than this speaker's baseline (+9") for c in louder.clues)


def test_rate_reads_absolutely_but_tremor_and_breathiness_only_against_the_baseline():
    """Rate has a population norm; jitter and HNR in running speech do not (they depend on
    the voice, the microphone and the room): on a first utterance they stay silent."""
    describe = ProsodyDescriber(baseline=SpeakerBaseline())
    fast = describe(measure(speak("The weather is lovely today and I feel great.", 340)))
    assert any(c.startswith("speaking fast (") for c in fast.clues)
    assert fast.notes and fast.notes[0].startswith("no voice baseline yet for this speaker (1 of 3")
    shaky, _, _ = voice(180, seconds=2.0, jitter=0.03)
    first = describe(measure(shaky))
    assert measure(shaky).jitter_pct >= 2.0  # what used to read "voice trembling" at once
    assert not any(c.startswith("voice trembling") for c in first.clues)
    x = tone(200)
    noise = np.random.default_rng(0).standard_normal(len(x))
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (3 / 10))  # SNR 3 dB
    noisy = (x + noise).astype(np.float32)
    assert not any(c.startswith("breathi") for c in describe(measure(noisy)).clues)

    # Once the baseline has heard three steady voices, the same signals read relative to it.
    describe = ProsodyDescriber()
    for seed in range(3):
        steady = describe(measure(voice(180, seconds=2.0, jitter=0.002, seed=seed)[0]))
        assert not steady.baseline_ready
        assert all(c.startswith("speaking slowly") for c in steady.clues)  # one long vowel
    shaky_clues = describe(measure(shaky))
    assert shaky_clues.baseline_ready and not shaky_clues.notes
    assert any(c.startswith("voice trembling (jitter ") for c in shaky_clues.clues)
    describe = ProsodyDescriber()
    for _ in range(3):
        describe(measure(tone(200)))
    clues = describe(measure(noisy)).clues
    assert any(c.startswith("breathier or hoarser than usual (HNR ") for c in clues)
