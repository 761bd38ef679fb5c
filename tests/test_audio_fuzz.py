"""The audio stage on awkward input: very short, cut mid-speech, silent, at odd sample rates.

Every clip goes through the real chain (resampler, Silero VAD, segmenter, prosody) as a
file would; the assertions are that nothing crashes and that speech is found where there
is speech and nowhere else.
"""

from __future__ import annotations

import numpy as np
import pytest

from emolive.runtime.audio.analyzers import ProsodyAnalyzer
from emolive.runtime.audio.prosody import PitchTrack, _cycles, measure
from emolive.runtime.audio.stage import AudioStage
from emolive.runtime.audio.vad import SileroVad
from emolive.runtime.media import AUDIO_RATE
from emolive.runtime.sources.audio_files import FileSourceConfig, SyntheticAudioSource, WavSource
from emolive.runtime.sources.resample import resample
from emolive.runtime.sources.wav import write_wav
from tests.audio_speech import SENTENCES, speak, vad_path

RATES = [8000, 11025, 16000, 22050, 44100, 48000, 96000]


@pytest.fixture(scope="module")
def vad():
    return SileroVad(vad_path())


@pytest.fixture(scope="module")
def sentence():
    """espeak-ng speech at 16 kHz, trimmed to where it sounds."""
    x = speak(SENTENCES[0])
    nz = np.flatnonzero(np.abs(x) > 0.01)
    return x[nz[0] : nz[-1] + 1]


def run_stage(vad, samples, rate, chunk=1024):
    vad.reset()
    stage = AudioStage(vad, [ProsodyAnalyzer()])
    src = SyntheticAudioSource(samples, rate=rate, config=FileSourceConfig(chunk_samples=chunk))
    out = stage.run_inline(src)
    return stage, out


def check_sane(out, duration):
    for u in out:
        assert 0.0 <= u.t_start <= u.speech_start < u.speech_end <= u.t_end <= duration + 1e-6
        assert len(u.samples) == round((u.t_end - u.t_start) * AUDIO_RATE)
        assert np.isfinite(u.samples).all()
        m = u.prosody.measures
        assert m.duration_s == pytest.approx(u.t_end - u.t_start, abs=1e-3)
        assert m.f0_mean_hz is None or 50 < m.f0_mean_hz < 550


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("n", [0, 1, 100, "0.1s"])
def test_very_short_clips_give_nothing_and_do_not_crash(vad, sentence, rate, n):
    n = int(0.1 * rate) if n == "0.1s" else n
    x = resample(sentence, AUDIO_RATE, rate)[:n]  # speech, but far too short for an utterance
    stage, out = run_stage(vad, x, rate)
    assert out == []
    assert stage.audio_stats.frames == int(np.ceil(n * AUDIO_RATE / rate)) // 512


@pytest.mark.parametrize("rate", RATES)
def test_silence_gives_nothing(vad, rate):
    hiss = np.random.default_rng(rate).normal(0, 1e-3, 3 * rate).astype(np.float32)
    for x in (np.zeros(3 * rate, np.float32), hiss):
        assert run_stage(vad, x, rate)[1] == []


@pytest.mark.parametrize("rate", RATES)
def test_speech_between_silences_is_found_where_it_is(vad, sentence, rate):
    pad = np.zeros(rate // 2, np.float32)
    x = np.concatenate([pad, resample(sentence, AUDIO_RATE, rate), pad])
    duration = len(x) / rate
    speech_end = 0.5 + len(sentence) / AUDIO_RATE
    _, out = run_stage(vad, x, rate, chunk=777)
    assert len(out) >= 1
    check_sane(out, duration)
    assert out[0].speech_start == pytest.approx(0.5, abs=0.15)
    assert out[-1].speech_end == pytest.approx(speech_end, abs=0.3)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("cut_s", [0.6, 1.3, 2.4])
def test_speech_to_the_last_sample(vad, sentence, rate, cut_s, tmp_path):
    """Cut mid-word: the open utterance is closed at the end of the stream."""
    x = resample(sentence, AUDIO_RATE, rate)[: int(cut_s * rate)]
    duration = len(x) / rate
    path = write_wav(tmp_path / f"cut{rate}.wav", x, rate)  # through a file, as a user's clip
    vad.reset()
    stage = AudioStage(vad, [ProsodyAnalyzer()])
    out = stage.run_inline(WavSource(path))
    assert len(out) >= 1
    check_sane(out, duration)
    assert out[0].speech_start < 0.2
    # The last utterance runs to the last whole VAD frame of the stream.
    assert out[-1].t_end > duration - 512 / AUDIO_RATE - 1e-6
    assert out[-1].speech_end > duration - 0.3


@pytest.mark.parametrize("rate", [8000, 48000])
def test_speech_clipped_to_square_waves(vad, sentence, rate):
    """Speech driven into full-scale clipping: square-ish cycles, edge peaks in the cycle
    search (the case that crashed prosody with an empty cycle)."""
    x = np.clip(resample(sentence, AUDIO_RATE, rate) * 50, -1, 1)[: int(2.4 * rate)]
    _, out = run_stage(vad, x, rate)
    assert len(out) >= 1
    check_sane(out, len(x) / rate)
    assert all(any(c.startswith("audio clipped") for c in u.clues) for u in out)


def test_cycle_search_edge_is_not_a_cycle():
    """A square wave whose pitch track is off by 20-35%: the correlation's best lag sits at
    the edge of the search window on a straight slope. Parabolic interpolation there put the
    vertex at a negative lag, and the empty cycle crashed ``max()``."""
    nfr = 1 + (8000 - 640) // 160
    for f in (80.0, 120.0, 200.0):
        x = (0.5 * np.sign(np.sin(2 * np.pi * f * np.arange(8000) / AUDIO_RATE))).astype(np.float32)
        for ratio in (0.8, 1.275, 1.35):
            track = PitchTrack(np.full(nfr, f * ratio), np.ones(nfr), np.zeros(nfr), 160, 640)
            periods, amps = _cycles(x, track, 600)
            te = AUDIO_RATE / (f * ratio)
            for p in periods:  # every cycle found lies inside the search window
                assert (p >= int(te * 0.8) - 0.5).all() and (p <= np.ceil(te * 1.25) + 1.5).all()
        # With the right track, the cycles are the wave's own period.
        track = PitchTrack(np.full(nfr, f), np.ones(nfr), np.zeros(nfr), 160, 640)
        periods, _ = _cycles(x, track, 600)
        assert np.median(np.concatenate(periods)) == pytest.approx(AUDIO_RATE / f, rel=0.02)
    assert measure(np.sign(np.sin(np.arange(16000) * 0.05)).astype(np.float32)).duration_s == 1.0
