"""A live session: sources → stages → events, as an iterator and a context manager.

    with Session(SessionConfig(bundle="bundle", source="clip.mp4", audio=False)) as s:
        for event in s:
            print(event["emotion"])

Capture runs in its own thread and is never blocked by inference for live sources (frames
keep-latest; drops are counted). File sources are processed frame by frame unless
``realtime`` asks for camera-like pacing. A stage that fails ends the session with a
``SessionError`` that names the stage, after every event already produced was delivered.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from emolive.runtime.bundle import Bundle
from emolive.runtime.media import SessionClock
from emolive.runtime.stage import StageFailure
from emolive.runtime.video import open_video, paced
from emolive.runtime.vision.analyzer import FaceAnalyzer, VisionConfig
from emolive.runtime.vision.stage import VisionStage

_DONE = object()


class SessionError(RuntimeError):
    """The session could not go on; the message names the stage or source and the cause."""


@dataclass(frozen=True)
class SessionConfig:
    bundle: Path
    source: str = "0"  # camera index, "camera:N", a file path, or "synthetic"
    video: bool = True
    audio: bool = True
    duration: float | None = None  # seconds of media (files) or of wall time (live)
    realtime: bool | None = None  # None: live sources real time, files every frame
    every: int = 1  # analyse every k-th frame
    vision: VisionConfig = field(default_factory=VisionConfig)


class Session:
    def __init__(self, config: SessionConfig) -> None:
        if not config.video and not config.audio:
            raise SessionError("nothing to run: both video and audio are switched off")
        if config.audio:
            raise SessionError(
                "the audio stage is not part of this build yet; run with audio off "
                "(--no-audio on the command line)"
            )
        self.config = config
        self.clock = SessionClock()
        self.bundle = Bundle.open(config.bundle)
        self.video = open_video(config.source, self.clock) if config.video else None
        self.realtime = self.video.live if config.realtime is None else config.realtime
        self.vision = VisionStage(
            FaceAnalyzer(self.bundle, config.vision),
            every=config.every,
            keep_latest=True,
            on_failure=self._on_failure,
        )
        self._out: queue.Queue = queue.Queue()
        self.vision.connect(self._out.put)
        self._stop = threading.Event()
        self._capture: threading.Thread | None = None
        self.failure: StageFailure | SessionError | None = None
        self.frames_captured = 0
        self.started_at: float | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.vision.start()
        self._capture = threading.Thread(target=self._capture_loop, name="capture", daemon=True)
        self._capture.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop capture, let the stages finish what they hold, and wait for them."""
        self._stop.set()
        if self._capture is not None:
            self._capture.join(timeout)
        self.vision.join(timeout)

    def _on_failure(self, failure: StageFailure) -> None:
        self.failure = failure
        self._stop.set()
        self._out.put(_DONE)

    def _capture_loop(self) -> None:
        frames = self.video.frames(self.clock)
        if self.realtime and not self.video.live:
            frames = paced(frames)
        limit = self.config.duration
        t_wall0 = time.monotonic()
        try:
            for frame in frames:
                if self._stop.is_set():
                    break
                t = frame.t if not self.video.live else time.monotonic() - t_wall0
                if limit is not None and t >= limit:
                    break
                self.frames_captured += 1
                if self.realtime:
                    self.vision.put(frame)
                elif not self.vision.put_wait(frame):
                    break
        except Exception as e:  # a source that fails mid-stream ends the session, reported
            self.failure = SessionError(f"source {self.video.name!r} failed: {e}")
        finally:
            self.vision.stop()
            self.vision.join()
            self._out.put(_DONE)

    # -- events -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        while True:
            item = self._out.get()
            if item is _DONE:
                break
            yield item
        # Deliver everything already produced before reporting why the session ended.
        while True:
            try:
                item = self._out.get_nowait()
            except queue.Empty:
                break
            if item is not _DONE:
                yield item
        if self.failure is not None:
            raise SessionError(str(self.failure))

    def stats(self) -> dict:
        v = self.vision
        return {
            "frames_captured": self.frames_captured,
            "frames_analysed": v.stats.processed,
            "frames_dropped": v.stats.dropped,
            "frames_rejected": v.rejected_frames,
            "last_rejection": v.last_rejection,
            "frames_with_faces": v.frames_with_faces,
            "vision_p50_ms": v.stats.as_dict()["p50_ms"],
            "wall_s": round(time.monotonic() - self.started_at, 3) if self.started_at else None,
            "precision": self.vision.analyzer.precisions,
        }
