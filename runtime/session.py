"""A live session: sources → stages → events, as an iterator and a context manager.

    with Session(SessionConfig(bundle="bundle", source="clip.mp4")) as s:
        for event in s:
            print(event["type"], event["emotion"] or f"no label: {event.get('abstained')}")

Capture runs in its own threads and is never blocked by inference for live sources (frames
keep-latest; drops are counted). File sources are processed frame by frame and chunk by
chunk unless ``realtime`` asks for camera-like pacing. Expression events flow out as frames
are analysed; each utterance end (or ``every_s`` seconds without one) closes a window that
the reasoning stage turns into an explained ``reading``.

An image file is a one-frame video without audio: the session runs it video-only by itself
(stats and readings say so) and gives one reading.

Windows never overlap. A silent window closes no later than the audio horizon: the audio the
audio stage has processed, held back while an utterance is open or waits to be transcribed,
so a timed window cannot take the span of an utterance that has not been delivered yet.

A stage or source that fails is reported: the session degrades when another modality is
still running (readings then carry a note such as "audio lost at 12.3 s: ...") and ends with
a ``SessionError`` naming the stage when nothing is left, after delivering every event
already produced.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emolive.runtime import profiles
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle
from emolive.runtime.media import SessionClock, paced
from emolive.runtime.names import FER_LABELS
from emolive.runtime.sources import open_sources
from emolive.runtime.sources.errors import AudioSourceError
from emolive.runtime.sources.video import SourceError
from emolive.runtime.stage import StageFailure
from emolive.runtime.windows import Window, WindowCollector

_DONE = object()


class SessionError(RuntimeError):
    """The session could not go on; the message names the stage or source and the cause."""


@dataclass(frozen=True)
class SessionConfig:
    bundle: Path
    source: str = "0"  # camera index, "camera:N", a file path, or "synthetic"
    video: bool = True
    audio: bool = True
    audio_source: str | None = None  # default: the video file's track, or the default mic
    duration: float | None = None  # seconds of media (files) or of wall time (live)
    realtime: bool | None = None  # None: live sources real time, files every frame
    every: int = 1  # analyse every k-th frame
    every_s: float = 5.0  # a reading at least this often without speech
    labels: tuple[str, ...] = FER_LABELS
    reason: bool = True  # use the bundle's LLM to explain (when it has one)
    explanation_tokens: int = 32  # the explanation's budget: one sentence, on time
    camera_reopen_s: float = 20.0  # keep trying to reopen a lost camera this long
    # The profile's vision options (lite: ``vision.analyzer.VisionConfig``); None: its defaults.
    vision: Any = None
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # backend, device, precision


class Session:
    def __init__(self, config: SessionConfig, reasoner=None) -> None:
        """``reasoner``: a ``WindowReasoner`` (``reasoning/stage.py``) to read the windows
        instead of the bundle's (default: the profile's, e.g. the bundle's LLM)."""
        if not config.video and not config.audio:
            raise SessionError("nothing to run: both video and audio are switched off")
        self.config = config
        self.clock = SessionClock()
        self.bundle = Bundle.open(config.bundle)
        self._out: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.failures: list[str] = []
        self.notes: list[str] = []  # degradations, carried by every later reading
        self.outages: list[tuple[float, float]] = []  # camera lost .. reopened, session clock
        self.frames_captured = 0
        self.chunks_captured = 0
        self.started_at: float | None = None
        self._threads: list[threading.Thread] = []
        self._live_modalities: set[str] = set()

        try:
            opened = open_sources(
                config.source, video=config.video, audio=config.audio,
                audio_source=config.audio_source, duration=config.duration,
                realtime=config.realtime, clock=self.clock,
            )  # fmt: skip
        except AudioSourceError as e:
            raise SessionError(str(e)) from e
        self.video, self.audio_source, self.realtime = opened.video, opened.audio, opened.realtime
        self.notes += opened.notes
        self._source_done = {"video": self.video is None, "audio": self.audio_source is None}

        self.windows = WindowCollector(every_s=config.every_s)
        pipeline = profiles.build(
            self.bundle,
            config,
            profiles.BuildContext(
                clock=self.clock,
                video=self.video is not None,
                audio=self.audio_source is not None,
                on_failure=self._on_failure,
                reasoner=reasoner,
            ),
        )
        self.vision, self.audio, self.reasoning = (
            pipeline.vision,
            pipeline.audio,
            pipeline.reasoning,
        )
        self.backend = pipeline.backend
        # How graphs were loaded here (int8 forms, parity-gate fallbacks): every reading
        # carries it, so a reading made by fp32 instead of int8 says so.
        self.notes += [n for n in pipeline.notes if n not in self.notes]
        if self.vision is not None:
            self.vision.connect(self._on_expression)
            self.vision.on_progress(self.windows.vision_at)
            self.windows.expect_vision()
            self._live_modalities.add("video")
        if self.audio is not None:
            self.audio.connect(self._on_utterance)
            self._live_modalities.add("audio")
        self.reasoning.connect(self._out.put)

    # -- construction helpers -------------------------------------------------------------------
    def _horizon(self) -> float:
        if self.audio is None or self._source_done["audio"]:
            return float("inf")
        return self.audio.horizon

    # -- events from the stages ----------------------------------------------------------------------
    def _on_expression(self, event: dict) -> None:
        self.windows.add_expression(event)
        self._out.put(event)

    def _on_utterance(self, utterance) -> None:
        self._dispatch(self.windows.for_utterance(utterance), wait_for_video=True)

    def _dispatch(self, window: Window, wait_for_video: bool = False) -> None:
        if wait_for_video and not self.realtime:
            # Files: audio runs ahead of vision; the collector waits for the span's frames.
            window = self.windows.wait_for_vision(window, self._stop)
        window.notes = list(self.notes) + [
            f"video lost from {a:.1f} s to {b:.1f} s"
            for a, b in self.outages
            if a < window.t_end and b > window.t_start
        ]
        if self.realtime:
            self.reasoning.offer(window)
        else:
            self.reasoning.put_wait(window)

    def _on_failure(self, failure: StageFailure) -> None:
        with self._lock:
            self.failures.append(str(failure))
            modality = {"vision": "video", "audio": "audio"}.get(failure.stage)
            at = f" at {failure.item_t:.1f} s" if failure.item_t is not None else ""
            if modality is not None:
                self._live_modalities.discard(modality)
                self._source_done[modality] = True
                if modality == "video":
                    self.windows.vision_done()
                self.notes.append(f"{modality} lost{at}: {failure.error}")
            else:
                self.reasoning.add_note(f"reasoning failed{at}: {failure.error}")
            if not self._live_modalities or modality is None:
                self._stop.set()

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _thread(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.clock.restart()
        self.reasoning.start()
        if self.vision is not None:
            self.vision.start()
            self._thread(self._capture_video, "capture-video")
        if self.audio is not None:
            self.audio.start()
            self._thread(self._capture_audio, "capture-audio")
        self._thread(self._supervise, "session")

    def stop(self) -> None:
        """Ask for a clean stop (SIGINT/SIGTERM): capture ends, pending work is finished."""
        self._stop.set()

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    def _media_t(self, t: float) -> bool:
        """True while ``t`` is within the configured duration."""
        return self.config.duration is None or t < self.config.duration

    def _capture_video(self) -> None:
        stage = self.vision
        frames = self.video.frames(self.clock)
        if self.realtime and not self.video.live:
            frames = paced(frames, self.clock, due=lambda f: f.t)
        try:
            while not self._stop.is_set():
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except SourceError as e:
                    if not self.video.live:
                        raise
                    frames = self._reopen_camera(e)
                    if frames is None:
                        break
                    continue
                if not self._media_t(frame.t):
                    break
                self.frames_captured += 1
                if self.realtime:
                    stage.put(frame)
                elif not stage.put_wait(frame):
                    break
        except Exception as e:  # a file that fails mid-stream: reported, the session degrades
            stage.fail(SourceError(f"video source {self.video.name!r} failed: {e}"))
        finally:
            stage.stop()
            stage.join()
            self._source_done["video"] = True
            self.windows.vision_done()

    def _reopen_camera(self, error: Exception):
        """A lost camera is reopened with backoff. While it is lost, readings say so; once it
        is back, the readings whose window overlaps the outage say from when to when."""
        lost_at = self.clock.now()
        note = f"video lost at {lost_at:.1f} s: {error}"
        self.notes.append(note)
        deadline = time.monotonic() + self.config.camera_reopen_s
        delay = 0.25
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(delay)
            delay = min(delay * 2, 4.0)
            try:
                self.video = self.video.reopen()
            except SourceError:
                continue
            self.notes.remove(note)
            self.outages.append((lost_at, self.clock.now()))
            return self.video.frames(self.clock)
        return None

    def _capture_audio(self) -> None:
        stage = self.audio
        try:
            for chunk in self.audio_source:
                if self._stop.is_set() or not self._media_t(chunk.t):
                    break
                self.chunks_captured += 1
                if self.realtime:
                    stage.put(chunk)
                elif not stage.put_wait(chunk):
                    break
        except Exception as e:
            stage.fail(RuntimeError(f"audio source failed: {e}"))
        finally:
            close = getattr(self.audio_source, "close", None)
            if close is not None:
                close()
            stage.stop()
            stage.join()
            self._source_done["audio"] = True

    def _supervise(self) -> None:
        """Silent windows on a timer, the final window, and the end of the stream."""
        try:
            while not all(self._source_done.values()):
                time.sleep(0.02)
                window = self.windows.due(self._now_t(), self._horizon())
                if window is not None:
                    self._dispatch(window)
            # Sources ended: silent stretches not yet tiled into windows are, then the rest.
            while (window := self.windows.due(self._now_t())) is not None:
                self._dispatch(window)
            final = self.windows.final(self._now_t())
            if final is not None and not self.reasoning.failure:
                self._dispatch(final)
        finally:
            self.reasoning.stop()
            self.reasoning.join()
            self._out.put(_DONE)

    def _now_t(self) -> float:
        """Where the session is on its clock: media time for files, wall time live."""
        if self.realtime and (self.video is None or self.video.live):
            return self.clock.now()
        vision_t = max(self.windows.vision_t, 0.0) if self.vision is not None else 0.0
        if self.vision is not None and not self._source_done["video"]:
            return vision_t  # files: vision is the slower stream; windows follow it
        return max(vision_t, self.audio.processed_t if self.audio is not None else 0.0)

    def latest_frame(self):
        """The last analysed frame and its expression events (None before the first, or
        without video): for a viewer, which draws it on its own thread."""
        return self.vision.latest if self.vision is not None else None

    # -- events -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        while True:
            item = self._out.get()
            if item is _DONE:
                break
            yield item
        if not self._live_modalities or self.reasoning.failure is not None:
            raise SessionError("; ".join(self.failures) or "session ended with no running stage")

    def stats(self) -> dict:
        out = {
            "frames_captured": self.frames_captured,
            "audio_chunks_captured": self.chunks_captured,
            "wall_s": round(time.monotonic() - self.started_at, 3) if self.started_at else None,
            "failures": list(self.failures),
            "notes": list(self.notes),
            "video_outages": [[round(a, 2), round(b, 2)] for a, b in self.outages],
            "readings_merged": self.reasoning.merged,
            "readings": self.reasoning.stats.processed,
        }
        for stage in (self.vision, self.audio):
            if stage is not None:
                out.update(stage.session_stats())
        return out
