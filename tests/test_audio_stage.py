"""The audio stage end to end: chunks in, utterances with clues and transcripts out."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from emolive.runtime.audio.analyzers import (
    AudioEmbeddingAnalyzer,
    ProsodyAnalyzer,
    TranscriptAnalyzer,
)
from emolive.runtime.audio.asr import WhisperTranscriber
from emolive.runtime.audio.stage import AudioStage, AudioStageConfig
from emolive.runtime.audio.vad import SileroVad
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.media import AUDIO_RATE, AudioChunk
from emolive.runtime.sources.audio_files import FileSourceConfig, SyntheticAudioSource, WavSource
from emolive.runtime.sources.wav import write_wav
from tests.audio_speech import SENTENCES, speak, vad_path, whisper_dir, word_error_rate

pytest.importorskip("faster_whisper", reason="needs emo-live[audio]")


@pytest.fixture(scope="module")
def transcriber():
    return WhisperTranscriber(whisper_dir())


@pytest.fixture(scope="module")
def talk():
    """Three sentences with silences between; returns (signal, [(start_s, end_s, text)])."""
    parts, spans, t = [np.zeros(AUDIO_RATE, np.float32)], [], 1.0
    for s in SENTENCES[1:] + SENTENCES[2:]:
        x = speak(s)
        nz = np.flatnonzero(np.abs(x) > 0.01)
        spans.append((t + nz[0] / AUDIO_RATE, t + nz[-1] / AUDIO_RATE, s))
        parts += [x, np.zeros(int(1.2 * AUDIO_RATE), np.float32)]
        t += (len(x) + int(1.2 * AUDIO_RATE)) / AUDIO_RATE
    return np.concatenate(parts), spans


def make_stage(transcriber=None, extra=(), **kw):
    analyzers = [ProsodyAnalyzer()]
    if transcriber is not None:
        analyzers.append(TranscriptAnalyzer(transcriber))
    return AudioStage(SileroVad(vad_path()), [*analyzers, *extra], **kw)


def test_utterances_line_up_with_the_speech_and_carry_clues_and_text(talk, transcriber):
    x, spans = talk
    stage = make_stage(transcriber)
    out = stage.run_inline(
        SyntheticAudioSource(x, config=FileSourceConfig(chunk_samples=800, t0=10.0))
    )
    assert len(out) == len(spans)
    for u, (a, b, text) in zip(out, spans, strict=True):
        assert u.speech_start == pytest.approx(10.0 + a, abs=0.15)
        assert u.speech_end == pytest.approx(10.0 + b, abs=0.25)
        assert u.t_start <= u.speech_start < u.speech_end <= u.t_end
        assert word_error_rate(text, u.transcript.text) <= 0.2
        assert u.prosody.measures.f0_mean_hz is not None
        assert len(u.samples) == pytest.approx((u.t_end - u.t_start) * AUDIO_RATE, abs=1)
        for key in (
            "prosody_ms",
            "transcript_ms",
            "end_detect_ms",
            "processing_ms",
            "ready_after_end_ms",
        ):
            assert u.latency_ms[key] >= 0
        d = u.as_dict()
        assert d["transcript"]["text"] == u.transcript.text and "samples" not in d
    assert [u.index for u in out] == [0, 1, 2]
    assert stage.audio_stats.utterances == 3 and stage.audio_stats.frames > 0


def test_threaded_stage_with_backlog_batches_and_reports(talk, transcriber):
    x, spans = talk
    stage = make_stage(transcriber)
    got = []
    stage.connect(got.append)
    stage.start()
    for chunk in SyntheticAudioSource(x, config=FileSourceConfig(chunk_samples=512)):
        stage.put(chunk)  # far faster than real time: the queue backs up
    stage.stop()
    assert stage.join(60)
    assert stage.failure is None
    assert [
        word_error_rate(s, u.transcript.text) <= 0.2
        for u, (_, _, s) in zip(got, spans, strict=True)
    ] == [True] * 3
    assert stage.stats.dropped == 0  # the queue holds seconds of audio
    assert stage.audio_stats.batches <= len(got)


def test_nan_and_inf_samples_are_zeroed_counted_and_reported(talk):
    x, spans = talk
    x = x.copy()
    mid = int((spans[0][0] + 0.5) * AUDIO_RATE)
    x[mid : mid + 10] = np.nan
    x[mid + 20] = np.inf
    stage = make_stage()
    out = stage.run_inline(SyntheticAudioSource(x))
    assert stage.audio_stats.nonfinite_samples == 11
    assert len(out) == 3  # the VAD's state survived: later utterances still found
    assert any("11 non-finite samples" in w for w in out[0].warnings)
    assert all(np.isfinite(u.samples).all() for u in out)


def test_clipped_speech_gets_a_clue(talk):
    x, _ = talk
    stage = make_stage()
    out = stage.run_inline(SyntheticAudioSource(np.clip(x * 20, -1, 1)))
    assert out and all(any(c.startswith("audio clipped") for c in u.clues) for u in out)


def test_minutes_of_silence_give_nothing():
    stage = make_stage()
    silence = np.zeros(120 * AUDIO_RATE, np.float32)
    hiss = np.random.default_rng(0).normal(0, 1e-3, len(silence)).astype(np.float32)
    assert (
        stage.run_inline(SyntheticAudioSource(silence + hiss, config=FileSourceConfig(4096))) == []
    )
    assert stage.audio_stats.frames == 120 * AUDIO_RATE // 512


def test_a_gap_in_time_closes_the_open_utterance(talk):
    x, spans = talk
    cut = int((spans[0][0] + 0.8) * AUDIO_RATE)  # inside the first sentence
    stage = make_stage()
    out = stage.run_inline([AudioChunk(0.0, x[:cut]), AudioChunk(cut / AUDIO_RATE + 5.0, x[cut:])])
    assert stage.audio_stats.gaps == 1
    assert out[0].speech_end <= cut / AUDIO_RATE + 0.05  # ended at the hole, not after it
    assert out[1].t_start >= cut / AUDIO_RATE + 5.0


def test_48k_stereo_file_through_the_stage(tmp_path, transcriber):
    from emolive.runtime.sources.resample import resample

    speech = resample(speak(SENTENCES[2]), AUDIO_RATE, 48_000)
    pad = np.zeros(24_000, np.float32)
    mono = np.concatenate([pad, speech, pad])
    path = write_wav(tmp_path / "stereo48k.wav", np.stack([mono, mono * 0.5], 1), 48_000)
    out = make_stage(transcriber).run_inline(WavSource(path))
    assert len(out) == 1 and word_error_rate(SENTENCES[2], out[0].transcript.text) <= 0.2


def test_bad_chunk_is_a_failure_for_the_scheduler():
    failures = []
    stage = make_stage(on_failure=failures.append)
    stage.start()
    stage.put(AudioChunk(0.0, np.zeros((512, 2), np.float32), "mic:test"))
    assert stage.join(10)
    assert len(failures) == 1 and "1-D 16 kHz mono" in str(failures[0].error)
    assert failures[0].stage == "audio"
    with pytest.raises(ValueError, match="float"):
        make_stage().process(AudioChunk(0.0, np.zeros(512, np.int16)))


class Broken:
    name = "broken"

    def analyze(self, segments):
        raise RuntimeError("analyzer exploded")


def test_a_failing_analyzer_is_not_swallowed(talk):
    x, _ = talk
    failures = []
    stage = make_stage(extra=[Broken()], on_failure=failures.append)
    stage.start()
    for c in SyntheticAudioSource(x[: 6 * AUDIO_RATE]):
        stage.put(c)
    stage.stop()
    assert stage.join(30)
    assert failures and "analyzer exploded" in str(failures[0].error)


def _tiny_encoder(path):
    """input_values [1, n] -> hidden [1, 2, 3]: (max, min) x W. Stands in for HuBERT."""
    w = numpy_helper.from_array(np.array([[1.0, 2.0, 3.0]], np.float32), "W")
    nodes = [
        helper.make_node("ReduceMax", ["input_values"], ["mx"], axes=[1], keepdims=1),
        helper.make_node("ReduceMin", ["input_values"], ["mn"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["mx", "mn"], ["both"], axis=0),
        helper.make_node("MatMul", ["both", "W"], ["h"]),
        helper.make_node("Unsqueeze", ["h", "zero"], ["hidden"]),
    ]
    zero = numpy_helper.from_array(np.array([0], np.int64), "zero")
    graph = helper.make_graph(
        nodes,
        "tiny_audio_encoder",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, 2, 3])],
        initializer=[w, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_an_audio_encoder_graph_plugs_in_as_an_analyzer(tmp_path, talk):
    x, _ = talk
    graph = OrtGraph(_tiny_encoder(tmp_path / "enc.onnx"), "fp32")
    enc = AudioEmbeddingAnalyzer(graph, "input_values", "hidden")
    out = make_stage(extra=[enc]).run_inline(SyntheticAudioSource(x))
    assert len(out) == 3
    for u in out:
        emb = u.analyses["audio_embedding"]
        z = (u.samples - u.samples.mean()) / np.sqrt(u.samples.var() + 1e-7)
        expected = np.array([[z.max()], [z.min()]], np.float32) @ np.array(
            [[1.0, 2.0, 3.0]], np.float32
        )
        np.testing.assert_allclose(emb, expected, rtol=1e-5)
        assert u.as_dict()["audio_embedding"] == {"shape": [2, 3]}
        assert "prosody_ms" in u.latency_ms and "audio_embedding_ms" in u.latency_ms


def test_config_is_checked():
    with pytest.raises(ValueError, match="max_batch"):
        AudioStageConfig(max_batch=0)
    with pytest.raises(ValueError, match="unique"):
        make_stage(extra=[ProsodyAnalyzer()])


class CountingTranscript:
    """A pure analyzer that records what it was run on."""

    name = "transcript"
    pure = True

    def __init__(self):
        self.seen = []

    def analyze(self, segments):
        self.seen += [len(s.samples) for s in segments]
        return [f"{len(s.samples)} samples" for s in segments]


def test_pure_analyzers_start_before_the_end_is_decided(talk, transcriber):
    x, _ = talk
    early = make_stage(transcriber)
    late = make_stage(transcriber, config=AudioStageConfig(start_early=False))
    a = early.run_inline(SyntheticAudioSource(x))
    b = late.run_inline(SyntheticAudioSource(x))
    assert [u.transcript.text for u in a] == [u.transcript.text for u in b]
    assert early.audio_stats.early_started >= 3 and late.audio_stats.early_started == 0
    assert early.audio_stats.early_wasted == early.audio_stats.early_started - 3


def test_an_early_run_is_dropped_when_speech_resumes():
    from emolive.runtime.audio.speculation import Speculator
    from emolive.runtime.audio.utterances import SegmenterConfig, UtteranceSegmenter
    from emolive.runtime.audio.vad import FRAME, FRAME_S

    counting = CountingTranscript()
    spec = Speculator([ProsodyAnalyzer(), counting])
    assert [a.name for a in spec.analyzers] == ["transcript"]  # prosody is not pure
    seg = UtteranceSegmenter(SegmenterConfig(min_silence_ms=250, speech_pad_ms=96))
    probs = [0.9] * 20 + [0.0] * 4 + [0.9] * 10 + [0.0] * 10  # a 128 ms pause, then more
    finished = []
    for i, p in enumerate(probs):
        finished += seg.push(i * FRAME_S, np.zeros(FRAME, np.float32), p)
        if seg.pause_frames == seg.pad_frames:
            spec.offer(seg.peek())
    assert spec.started == 2 and len(finished) == 1
    got = spec.take(finished[0])
    assert got["transcript"][0] == f"{len(finished[0].samples)} samples"
    assert spec.used == 1 and spec.wasted == 1
    spec.close()
    assert counting.seen == [(20 + 3) * FRAME, len(finished[0].samples)]
