"""The audio stage: 16 kHz chunks in, analysed ``Utterance`` s out.

Per chunk: check the samples, score each 32 ms frame with Silero VAD, cut utterances; per
finished utterance: run the analyzers (prosody clues, transcript, and whatever a profile
adds) and emit one ``Utterance``. Feeding: ``stage.put(chunk)`` from any source (its queue
is deep enough for seconds of audio, since dropped audio would break utterances); reading:
``stage.connect(callback)``.

Live (queue empty), the pure analyzers (ASR) start on a worker thread as soon as an
utterance's samples are final, while the VAD still waits out the pause that ends it
(speculation.py); prosody runs when the end is decided. When chunks are waiting in the queue
(a file read faster than real time, or a backlog), finished utterances are held and analysed
together, up to ``max_batch``, and the ASR batches them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emolive.runtime.audio.analyzers import (
    PROSODY,
    TRANSCRIPT,
    ProsodyAnalyzer,
    TranscriptAnalyzer,
    UtteranceAnalyzer,
)
from emolive.runtime.audio.asr import AsrConfig, Transcript, WhisperTranscriber
from emolive.runtime.audio.clues import ProsodyClues
from emolive.runtime.audio.prosody import ProsodyConfig
from emolive.runtime.audio.speculation import Speculator
from emolive.runtime.audio.utterances import SegmenterConfig, SpeechSegment, UtteranceSegmenter
from emolive.runtime.audio.vad import FRAME, SileroVad
from emolive.runtime.media import AUDIO_RATE, AudioChunk, SessionClock
from emolive.runtime.stage import Stage


@dataclass(frozen=True)
class AudioStageConfig:
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    max_batch: int = 4  # utterances analysed together when there is a backlog
    gap_tolerance_s: float = 0.1  # a jump in chunk times beyond this closes the utterance
    queue_chunks: int = 512  # ~16 s of 32 ms chunks
    start_early: bool = True  # run pure analyzers (ASR) before the end is decided

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")


@dataclass(frozen=True)
class Utterance:
    index: int
    t_start: float  # session seconds, padding included
    t_end: float
    speech_start: float  # first and last VAD speech frame
    speech_end: float
    samples: np.ndarray  # float32 16 kHz mono
    source: str
    split: bool  # cut at max_utterance_s; the speech continues in the next utterance
    continued: bool  # the continuation of a split utterance
    analyses: Mapping[str, Any]  # analyzer name -> result
    latency_ms: Mapping[str, float]
    warnings: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    @property
    def prosody(self) -> ProsodyClues | None:
        return self.analyses.get(PROSODY)

    @property
    def transcript(self) -> Transcript | None:
        return self.analyses.get(TRANSCRIPT)

    @property
    def clues(self) -> tuple[str, ...]:
        return self.prosody.clues if self.prosody is not None else ()

    def as_dict(self) -> dict:
        """JSON-ready, without the samples and without array-valued analyses."""
        d = {
            "index": self.index,
            "t_start": round(self.t_start, 3),
            "t_end": round(self.t_end, 3),
            "speech_start": round(self.speech_start, 3),
            "speech_end": round(self.speech_end, 3),
            "source": self.source,
            "split": self.split,
            "continued": self.continued,
            "latency_ms": {k: round(v, 1) for k, v in self.latency_ms.items()},
            "warnings": list(self.warnings),
        }
        for name, result in self.analyses.items():
            if hasattr(result, "as_dict"):
                d[name] = result.as_dict()
            elif isinstance(result, np.ndarray):
                d[name] = {"shape": list(result.shape)}
        return d


@dataclass
class AudioStats:
    frames: int = 0
    vad_ms: float = 0.0
    utterances: int = 0
    nonfinite_samples: int = 0
    gaps: int = 0
    batches: int = 0
    early_started: int = 0  # ASR runs begun before the utterance's end was decided
    early_wasted: int = 0  # of which speech resumed and the result was dropped

    def as_dict(self) -> dict:
        d = dict(vars(self))
        d["vad_ms"] = round(self.vad_ms, 1)
        d["vad_ms_per_frame"] = round(self.vad_ms / self.frames, 4) if self.frames else None
        return d


class AudioStage(Stage):
    def __init__(
        self,
        vad: SileroVad,
        analyzers: Sequence[UtteranceAnalyzer],
        config: AudioStageConfig = AudioStageConfig(),
        clock: SessionClock | None = None,
        **stage_options,
    ) -> None:
        stage_options.setdefault("maxsize", config.queue_chunks)
        super().__init__("audio", **stage_options)
        names = [a.name for a in analyzers]
        if len(set(names)) != len(names):
            raise ValueError(f"audio stage: analyzer names must be unique, got {names}")
        self.vad = vad
        self.analyzers = list(analyzers)
        self.config = config
        self.clock = clock  # when given, latency is also measured on the session clock
        self.segmenter = UtteranceSegmenter(config.segmenter)
        self.audio_stats = AudioStats()
        self._buf = np.zeros(0, np.float32)
        self._buf_t: float | None = None  # session time of _buf[0]
        self._source = ""
        self._pending: list[tuple[SpeechSegment, float, tuple[str, ...]]] = []
        self._warnings: list[tuple[float, float, str]] = []  # (chunk start, end, what)
        self._count = 0
        self._early = Speculator(self.analyzers) if config.start_early else None
        # Progress on the session clock, read by the scheduler: the audio processed so far,
        # and the horizon before which no utterance still to come can start.
        self.processed_t = 0.0
        self.horizon = 0.0

    # -- factories ------------------------------------------------------------------------
    @classmethod
    def from_paths(
        cls,
        vad_path,
        whisper_dir=None,
        config: AudioStageConfig = AudioStageConfig(),
        asr: AsrConfig | None = None,
        prosody: ProsodyConfig | None = None,
        extra: Sequence[UtteranceAnalyzer] = (),
        **stage_options,
    ) -> AudioStage:
        """Silero graph + Whisper folder (None: no transcript) -> a ready stage."""
        analyzers: list[UtteranceAnalyzer] = [ProsodyAnalyzer(prosody)]
        if whisper_dir is not None:
            analyzers.append(
                TranscriptAnalyzer(WhisperTranscriber(whisper_dir, asr or AsrConfig()))
            )
        return cls(SileroVad(vad_path), [*analyzers, *extra], config, **stage_options)

    @classmethod
    def from_bundle(
        cls,
        bundle,
        config: AudioStageConfig = AudioStageConfig(),
        asr: AsrConfig | None = None,
        with_asr: bool = True,
        prosody: ProsodyConfig | None = None,
        extra: Sequence[UtteranceAnalyzer] = (),
        runtime=None,
        **stage_options,
    ) -> AudioStage:
        """``runtime``: the session's ``RuntimeConfig`` (None: the CPU) for the VAD and ASR."""
        analyzers: list[UtteranceAnalyzer] = [ProsodyAnalyzer(prosody)]
        if with_asr:
            transcriber = WhisperTranscriber.from_bundle(bundle, asr or AsrConfig(), runtime)
            analyzers.append(TranscriptAnalyzer(transcriber))
        vad = SileroVad.from_bundle(bundle, runtime=runtime)
        return cls(vad, [*analyzers, *extra], config, **stage_options)

    @property
    def backend_info(self) -> dict[str, dict]:
        """Graph (or model) name -> what ran it: the VAD's and the ASR's runner info."""
        info = dict(getattr(self.vad, "backend_info", {}))
        for a in self.analyzers:
            info.update(getattr(getattr(a, "transcriber", None), "backend_info", {}))
        return info

    # -- the hook -------------------------------------------------------------------------
    def _check(self, chunk: AudioChunk) -> np.ndarray:
        x = chunk.samples
        if not isinstance(x, np.ndarray) or x.ndim != 1:
            raise ValueError(
                f"audio chunk from {chunk.source!r} at t={chunk.t:.3f}: samples must be a 1-D "
                f"16 kHz mono array, got {type(x).__name__} {getattr(x, 'shape', '')}"
            )
        if x.dtype != np.float32:
            if not np.issubdtype(x.dtype, np.floating):
                raise ValueError(
                    f"audio chunk from {chunk.source!r}: samples must be float in [-1, 1], "
                    f"got {x.dtype} (sources convert integer PCM)"
                )
            x = x.astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            # A NaN would poison the VAD's recurrent state for the rest of the stream.
            n = int(bad.sum())
            self.audio_stats.nonfinite_samples += n
            what = f"{n} non-finite samples at t={chunk.t:.2f} s set to 0"
            self._warnings.append((chunk.t, chunk.end, what))
            x = np.where(bad, np.float32(0), x)
        return x

    def process(self, chunk: AudioChunk):
        out = self._process(chunk)
        self.processed_t = chunk.end
        # An open utterance, one waiting to be transcribed (batched behind a backlog) or one
        # being delivered now holds the horizon where it is; otherwise the next utterance
        # starts at the earliest one speech pad before the audio processed.
        if not (out or self.holding_speech):
            pad_s = self.segmenter.config.speech_pad_ms / 1e3
            self.horizon = max(self.horizon, chunk.end - pad_s)
        return out

    def _process(self, chunk: AudioChunk):
        t_in = time.perf_counter()
        x = self._check(chunk)
        self._source = chunk.source
        done: list[SpeechSegment] = []
        if self._buf_t is not None:
            expected = self._buf_t + len(self._buf) / AUDIO_RATE
            if abs(chunk.t - expected) > self.config.gap_tolerance_s:
                # Lost audio (overflow, dropped chunks) or a new stream: the open utterance
                # ends where its audio ends rather than spanning the hole.
                self.audio_stats.gaps += 1
                done += self.segmenter.flush(expected)
                self._buf = np.zeros(0, np.float32)
        if not len(self._buf):
            self._buf_t = chunk.t
        self._buf = np.concatenate([self._buf, x])
        n = len(self._buf) // FRAME
        t0 = time.perf_counter()
        seg = self.segmenter
        for i in range(n):
            frame = self._buf[i * FRAME : (i + 1) * FRAME]
            t = self._buf_t + i * FRAME / AUDIO_RATE
            finished = seg.push(t, frame, self.vad.score(frame))
            done += finished
            if self._early is not None and not finished and seg.pause_frames == seg.pad_frames:
                # Samples are final from here unless speech resumes; a backlog batches instead.
                if self._queue.qsize() == 0:
                    self._early.offer(seg.peek())
        self.audio_stats.vad_ms += (time.perf_counter() - t0) * 1e3
        self.audio_stats.frames += n
        self._buf = self._buf[n * FRAME :].copy()
        self._buf_t += n * FRAME / AUDIO_RATE
        self._pending += [(s, t_in, self._claim_warnings(s)) for s in done]
        backlog = self._queue.qsize() > 0
        if self._pending and (not backlog or len(self._pending) >= self.config.max_batch):
            return self._analyze()
        return None

    def close(self):
        if self._buf_t is not None:
            end = self._buf_t + len(self._buf) / AUDIO_RATE
            now = time.perf_counter()
            self._pending += [(s, now, self._claim_warnings(s)) for s in self.segmenter.flush(end)]
        try:
            return self._analyze() if self._pending else None
        finally:
            if self._early is not None:
                self._early.close()

    @property
    def holding_speech(self) -> bool:
        """Whether an utterance is still open or waiting to be transcribed and delivered."""
        return self.segmenter.in_speech or bool(self._pending)

    def _claim_warnings(self, seg: SpeechSegment) -> tuple[str, ...]:
        """Warnings about audio inside this utterance; older ones stay in the stats only."""
        mine = tuple(w for a, b, w in self._warnings if a < seg.t_end and b > seg.t_start)
        self._warnings = [(a, b, w) for a, b, w in self._warnings if b > seg.t_end]
        return mine

    def _analyze(self) -> list[Utterance]:
        pending, self._pending = self._pending, []
        segments = [p[0] for p in pending]
        early = [self._early.take(s) if self._early else None for s in segments]
        results: dict[str, list[Any]] = {}
        step_ms: dict[str, list[float]] = {}
        for a in self.analyzers:
            res: list[Any] = [None] * len(segments)
            ms = [0.0] * len(segments)
            for k, e in enumerate(early):
                if e is not None and a.name in e:
                    res[k], ms[k] = e[a.name]
            todo = [k for k, e in enumerate(early) if e is None or a.name not in e]
            if todo:
                t0 = time.perf_counter()
                out = a.analyze([segments[k] for k in todo])
                dt = (time.perf_counter() - t0) * 1e3
                if len(out) != len(todo):
                    raise RuntimeError(
                        f"audio analyzer {a.name!r} returned {len(out)} results for "
                        f"{len(todo)} utterances"
                    )
                for k, r in zip(todo, out, strict=True):
                    res[k], ms[k] = r, dt
            results[a.name] = res
            step_ms[a.name] = ms
        if self._early is not None:
            self.audio_stats.early_started = self._early.started
            self.audio_stats.early_wasted = self._early.wasted
        self.audio_stats.batches += 1
        done_at = time.perf_counter()
        now = self.clock.now() if self.clock is not None else None
        utterances = []
        for k, (seg, t_in, warnings) in enumerate(pending):
            end_detect = (seg.decided_at - seg.speech_end) * 1e3
            # Each step's own compute time (a batch's, for a batch; early runs included).
            latency = {f"{name}_ms": ms[k] for name, ms in step_ms.items()}
            latency["end_detect_ms"] = end_detect
            latency["processing_ms"] = (done_at - t_in) * 1e3
            # Speech end -> ready: the silence the VAD waited for, then the work. With a
            # clock it is measured directly (queue waits included).
            latency["ready_after_end_ms"] = (
                (now - seg.speech_end) * 1e3
                if now is not None
                else end_detect + latency["processing_ms"]
            )
            w = list(warnings)
            if seg.split:
                w.append(f"utterance cut at {self.config.segmenter.max_utterance_s:.0f} s")
            utterances.append(
                Utterance(
                    index=self._count,
                    t_start=seg.t_start,
                    t_end=seg.t_end,
                    speech_start=seg.speech_start,
                    speech_end=seg.speech_end,
                    samples=seg.samples,
                    source=self._source,
                    split=seg.split,
                    continued=seg.continued,
                    analyses={name: res[k] for name, res in results.items()},
                    latency_ms=latency,
                    warnings=tuple(w),
                )
            )
            self._count += 1
        self.audio_stats.utterances += len(utterances)
        return utterances

    def session_stats(self) -> dict:
        """This stage's part of a session's statistics line."""
        return {"audio": self.audio_stats.as_dict(), "audio_dropped": self.stats.dropped}
