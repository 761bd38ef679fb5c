"""Silero VAD with carried state, and the utterance segmenter's rules."""

from __future__ import annotations

import numpy as np
import pytest

from emolive.runtime.audio.utterances import SegmenterConfig, UtteranceSegmenter
from emolive.runtime.audio.vad import FRAME, FRAME_S, SileroVad
from emolive.runtime.media import AUDIO_RATE
from tests.audio_speech import speak, vad_path


@pytest.fixture(scope="module")
def vad():
    return SileroVad(vad_path())


def test_speech_scores_high_and_silence_low(vad):
    speech = speak("This is a test of the voice activity detector.")
    x = np.concatenate([np.zeros(AUDIO_RATE, np.float32), speech, np.zeros(AUDIO_RATE, np.float32)])
    vad.reset()
    p = vad.scores(x)
    lead = int(1.0 / FRAME_S)
    assert p[: lead - 2].max() < 0.2
    assert np.mean(p[lead + 3 : lead + len(speech) // FRAME - 3] > 0.5) > 0.6
    assert p[-(lead - 12) :].max() < 0.2  # silence again, after the model's decay


def test_state_is_carried_across_frames(vad):
    speech = speak("Carry the state from one call to the next.")
    vad.reset()
    carried = vad.scores(speech)
    fresh = []
    for i in range(len(carried)):
        vad.reset()  # forget everything between frames
        fresh.append(vad.score(speech[i * FRAME : (i + 1) * FRAME]))
    assert np.mean(np.abs(carried - np.array(fresh))) > 0.05
    assert np.mean(carried > 0.5) > np.mean(np.array(fresh) > 0.5)


def test_wrong_frame_size_is_refused(vad):
    with pytest.raises(ValueError, match="512 samples"):
        vad.score(np.zeros(480, np.float32))


def test_not_a_vad_graph_is_refused(tmp_path):
    from tests.helpers import tiny_onnx

    with pytest.raises(ValueError, match="not a Silero VAD graph"):
        SileroVad(tiny_onnx(tmp_path / "x.onnx"))


# -- segmenter on scripted probabilities --------------------------------------------------
def run(probs, config=None, flush=True):
    seg = UtteranceSegmenter(config or SegmenterConfig())
    out = []
    for i, p in enumerate(probs):
        frame = np.full(FRAME, i, np.float32)  # frame i holds the value i: traceable
        out += seg.push(i * FRAME_S, frame, p)
    if flush:
        out += seg.flush(len(probs) * FRAME_S)
    return seg, out


def frames(seconds):
    return int(round(seconds / FRAME_S))


def test_one_utterance_with_padding_and_end_decision():
    probs = [0.0] * 20 + [0.9] * 30 + [0.0] * 20
    cfg = SegmenterConfig(min_silence_ms=250, speech_pad_ms=96)
    _, out = run(probs, cfg, flush=False)
    assert len(out) == 1
    u = out[0]
    assert u.speech_start == pytest.approx(20 * FRAME_S)
    assert u.speech_end == pytest.approx(50 * FRAME_S)
    assert u.t_start == pytest.approx(17 * FRAME_S)  # 3 frames (96 ms) of pre-roll
    assert u.t_end == pytest.approx(53 * FRAME_S)
    assert u.samples[0] == 17 and u.samples[-1] == 52
    assert len(u.samples) == 36 * FRAME
    # Decided after 8 silent frames (250 ms rounded up to whole frames).
    assert u.decided_at == pytest.approx(58 * FRAME_S)


def test_short_pauses_do_not_split_and_short_blips_are_dropped():
    probs = [0.9] * 20 + [0.1] * 5 + [0.9] * 20 + [0.0] * 20 + [0.9] * 3 + [0.0] * 20
    seg, out = run(probs, SegmenterConfig(min_silence_ms=250, min_speech_ms=250))
    assert len(out) == 1  # the 5-frame (160 ms) pause is inside; the 96 ms blip is dropped
    assert out[0].speech_end == pytest.approx(45 * FRAME_S)
    assert seg.discarded_short == 1


def test_hysteresis_between_thresholds_keeps_speech_going():
    probs = [0.9] * 10 + [0.4] * 30 + [0.0] * 12
    _, out = run(probs, SegmenterConfig(threshold=0.5, min_silence_ms=250), flush=False)
    assert len(out) == 1 and out[0].speech_end == pytest.approx(40 * FRAME_S)


def test_long_speech_is_split_not_dropped():
    n = frames(25.0)
    _, out = run([0.9] * n + [0.0] * 10, SegmenterConfig(max_utterance_s=10.0))
    assert [u.split for u in out] == [True, True, False]
    assert [u.continued for u in out] == [False, True, True]
    total = sum(len(u.samples) for u in out)
    assert total >= n * FRAME  # every speech sample is in some utterance
    assert out[1].t_start == pytest.approx(out[0].t_end)


def test_minutes_of_silence_hold_only_the_preroll():
    seg = UtteranceSegmenter(SegmenterConfig(speech_pad_ms=96))
    z = np.zeros(FRAME, np.float32)
    for i in range(frames(180.0)):
        assert seg.push(i * FRAME_S, z, 0.01) == []
    assert len(seg._preroll) == 3 and not seg.in_speech
    assert seg.flush(180.0) == []


def test_open_utterance_is_flushed_at_end_of_stream():
    _, out = run([0.0] * 5 + [0.9] * 20)
    assert len(out) == 1 and out[0].speech_end == pytest.approx(25 * FRAME_S)


def test_config_is_checked():
    with pytest.raises(ValueError, match="threshold"):
        SegmenterConfig(threshold=1.5)
    with pytest.raises(ValueError, match="min_silence_ms"):
        SegmenterConfig(min_silence_ms=10)
