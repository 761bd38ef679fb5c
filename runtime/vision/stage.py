"""The vision stage: frames in (keep-latest), expression events out, in frame order.

With several analyzers, consecutive frames are observed in parallel (one analyzer, one
ONNX Runtime thread each; frame i goes to analyzer i mod n) while events leave in frame
order and one tracker assigns track ids. The stage keeps at most n frames in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from emolive.runtime.media import Frame
from emolive.runtime.sources.video import FrameError
from emolive.runtime.stage import Stage
from emolive.runtime.vision.analyzer import FaceAnalyzer, FrameObservation


class VisionStage(Stage):
    """Runs FaceAnalyzers per frame; a frame that cannot be analysed is counted, not fatal."""

    def __init__(
        self,
        analyzers: FaceAnalyzer | Sequence[FaceAnalyzer],
        every: int = 1,
        **stage_options,
    ) -> None:
        stage_options.setdefault("keep_latest", True)
        super().__init__("vision", **stage_options)
        if every < 1:
            raise ValueError(f"vision stage: every must be >= 1, got {every}")
        self.analyzers = [analyzers] if isinstance(analyzers, FaceAnalyzer) else list(analyzers)
        if not self.analyzers:
            raise ValueError("vision stage: at least one analyzer")
        self.analyzer = self.analyzers[0]  # its tracker numbers every face
        self.every = every
        self.rejected_frames = 0
        self.last_rejection: str | None = None
        self.frames_with_faces = 0
        self.last_t = 0.0  # media time of the last frame analysed (the session's progress)
        # The last analysed frame and its events, for a viewer on another thread (the overlay
        # draws it from the main thread: nothing of a viewer runs on the vision thread).
        self.latest: tuple[Frame, list[dict]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque[tuple[Frame, Future]] = deque()
        self._turn = 0

    @staticmethod
    def _observe(analyzer: FaceAnalyzer, frame: Frame) -> FrameObservation | FrameError:
        try:
            return analyzer.observe(frame)
        except FrameError as e:
            return e

    def _finish(self, frame: Frame, obs: FrameObservation | FrameError) -> list[dict]:
        self.last_t = frame.t
        if isinstance(obs, FrameError):
            # Bad input for this one frame (zero size, wrong dtype): counted and reported in
            # the session's stats; the session goes on with the next frame.
            self.rejected_frames += 1
            self.last_rejection = f"frame {frame.index}: {obs}"
            return []
        events = self.analyzer.events(obs)
        self.latest = (frame, events)  # one reference swap: readers see a whole pair
        if events:
            self.frames_with_faces += 1
        return events

    def process(self, frame: Frame):
        if frame.index % self.every:
            self.last_t = frame.t
            return None
        n = len(self.analyzers)
        if n == 1:
            return self._finish(frame, self._observe(self.analyzer, frame))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(n, thread_name_prefix="vision")
        analyzer = self.analyzers[self._turn % n]
        self._turn += 1
        self._in_flight.append((frame, self._pool.submit(self._observe, analyzer, frame)))
        out: list[dict] = []
        # Frame i reuses the analyzer of frame i-n, which this loop has already finished.
        while len(self._in_flight) >= n:
            done, future = self._in_flight.popleft()
            out.extend(self._finish(done, future.result()))
        return out

    def session_stats(self) -> dict:
        """This stage's part of a session's statistics line."""
        return {
            "frames_analysed": self.stats.processed,
            "frames_dropped": self.stats.dropped,
            "frames_rejected": self.rejected_frames,
            "last_rejection": self.last_rejection,
            "frames_with_faces": self.frames_with_faces,
            "vision_p50_ms": self.stats.as_dict()["p50_ms"],
            "precision": self.analyzer.precisions,
        }

    def close(self):
        out: list[dict] = []
        while self._in_flight:
            done, future = self._in_flight.popleft()
            out.extend(self._finish(done, future.result()))
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return out
