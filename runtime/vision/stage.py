"""The vision stage: frames in (keep-latest), expression events out."""

from __future__ import annotations

from emolive.runtime.media import Frame
from emolive.runtime.stage import Stage
from emolive.runtime.video import FrameError
from emolive.runtime.vision.analyzer import FaceAnalyzer


class VisionStage(Stage):
    """Runs a FaceAnalyzer per frame; a frame that cannot be analysed is counted, not fatal."""

    def __init__(
        self, analyzer: FaceAnalyzer, every: int = 1, on_frame=None, **stage_options
    ) -> None:
        stage_options.setdefault("keep_latest", True)
        super().__init__("vision", **stage_options)
        if every < 1:
            raise ValueError(f"vision stage: every must be >= 1, got {every}")
        self.analyzer = analyzer
        self.every = every
        self.rejected_frames = 0
        self.last_rejection: str | None = None
        self.frames_with_faces = 0
        self.last_t = 0.0  # media time of the last frame analysed (the session's progress)
        self.on_frame = on_frame  # (frame, events) after each analysed frame, e.g. an overlay

    def process(self, frame: Frame):
        if frame.index % self.every:
            self.last_t = frame.t
            return None
        try:
            events = self.analyzer.analyze(frame)
        except FrameError as e:
            # Bad input for this one frame (zero size, wrong dtype): counted and reported in
            # the session's stats; the session goes on with the next frame.
            self.rejected_frames += 1
            self.last_rejection = f"frame {frame.index}: {e}"
            self.last_t = frame.t
            return None
        self.last_t = frame.t
        if self.on_frame is not None:
            self.on_frame(frame, events)
        if events:
            self.frames_with_faces += 1
        return events
