"""Whisper tiny.en through faster-whisper's CTranslate2 model, on espeak-ng speech."""

from __future__ import annotations

import numpy as np
import pytest

from emolive.runtime.audio.asr import AsrConfig, WhisperTranscriber, split_for_asr
from emolive.runtime.media import AUDIO_RATE
from tests.audio_speech import SENTENCES, speak, whisper_dir, word_error_rate

pytest.importorskip("faster_whisper", reason="needs emo-live[audio]")


@pytest.fixture(scope="module")
def transcriber():
    return WhisperTranscriber(whisper_dir())


def test_sentences_are_transcribed(transcriber):
    for s in SENTENCES[1:]:
        t = transcriber.transcribe(speak(s))
        assert word_error_rate(s, t.text) <= 0.2, t.text
        assert t.pieces == 1 and t.window_s <= 8.0  # fitted, not Whisper's 30 s


def test_fitted_window_agrees_with_the_full_window(transcriber):
    full = WhisperTranscriber(whisper_dir(), AsrConfig(window="full"))
    x = speak(SENTENCES[2])
    assert transcriber.window_frames(len(x) / AUDIO_RATE) <= 800
    assert full.window_frames(len(x) / AUDIO_RATE) == 3000
    assert word_error_rate(full.transcribe(x).text, transcriber.transcribe(x).text) <= 0.2


def test_a_batch_gives_each_utterance_the_text_it_gets_alone(transcriber):
    xs = [speak(s) for s in SENTENCES[1:]]
    xs.append(xs[0] * 0.5)  # same length as the first: shares its window, so one batch
    batch = transcriber.transcribe_batch(xs)
    alone = [transcriber.transcribe(x) for x in xs]
    assert [t.text for t in batch] == [t.text for t in alone]
    assert word_error_rate(SENTENCES[1], batch[0].text) <= 0.2


def test_utterance_longer_than_the_window_is_split_not_dropped(transcriber):
    gap = np.zeros(AUDIO_RATE // 2, np.float32)
    parts = [speak(SENTENCES[1]), gap, speak(SENTENCES[2]), gap] * 5  # ~35 s
    x = np.concatenate(parts)
    assert len(x) / AUDIO_RATE > 30
    t = transcriber.transcribe(x)
    assert t.pieces == 2
    reference = " ".join([SENTENCES[1], SENTENCES[2]] * 5)
    assert word_error_rate(reference, t.text) <= 0.25


def test_split_cuts_in_the_quietest_place():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 70 * AUDIO_RATE).astype(np.float32)
    x[25 * AUDIO_RATE : 25 * AUDIO_RATE + 3200] = 0.0  # a 200 ms pause at 25 s
    pieces = split_for_asr(x, 28.0)
    assert sum(len(p) for p in pieces) == len(x)
    assert all(len(p) <= 28 * AUDIO_RATE for p in pieces)
    assert abs(len(pieces[0]) - (25 * AUDIO_RATE + 1600)) < 1600


def test_silence_has_no_text(transcriber):
    assert transcriber.transcribe(np.zeros(2 * AUDIO_RATE, np.float32)).text == ""


def test_bad_inputs_are_named(tmp_path, transcriber):
    with pytest.raises(FileNotFoundError, match="lacks.*model.bin"):
        WhisperTranscriber(tmp_path)
    with pytest.raises(ValueError, match="mono"):
        transcriber.transcribe(np.zeros((100, 2), np.float32))
    with pytest.raises(ValueError, match="window"):
        AsrConfig(window="short")
