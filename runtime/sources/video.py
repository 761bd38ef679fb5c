"""Video sources: a camera, a video file, a still image, or a synthetic clip.

Each yields ``Frame`` objects stamped on the session clock (live) or with the media's own
time (files). Opening problems raise ``SourceError`` naming the path or device; a frame that
cannot be decoded mid-stream ends a file source, and a camera that stops delivering is
reopened with backoff by the session (issue: live session).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolive.runtime.media import Frame, SessionClock, file_damage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SourceError(RuntimeError):
    """A media source could not be opened or read; the message names it."""


class FrameError(ValueError):
    """A frame that cannot be analysed (empty, wrong shape or dtype); the message says why."""


def check_frame(image, field: str = "frame", convert: bool = True) -> np.ndarray:
    """The frame as HxWx3 uint8 BGR, or a FrameError naming ``field`` and what is wrong.

    With ``convert``, gray and BGRA frames are converted (a camera may deliver either);
    without it they are refused, for callers that promise BGR in (the detector's API).
    """
    if image is None:
        raise FrameError(f"{field} is None (the source returned no image)")
    if not isinstance(image, np.ndarray):
        raise FrameError(f"{field} is a {type(image).__name__}, expected a numpy array")
    if image.dtype != np.uint8:
        raise FrameError(f"{field} has dtype {image.dtype}, expected uint8")
    if image.ndim < 2 or image.size == 0 or min(image.shape[:2]) == 0:
        raise FrameError(f"{field} is empty (zero size, shape {image.shape})")
    gray_or_bgra = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 4)
    if gray_or_bgra and convert:
        code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_BGRA2BGR
        return cv2.cvtColor(image, code)
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameError(
            f"{field} has shape {image.shape}, expected HxWx3 BGR "
            "(convert gray or BGRA frames with cv2.cvtColor first)"
        )
    return image


@dataclass
class VideoFile:
    """Frames of a video file, stamped with their presentation time."""

    path: Path
    live: bool = False  # files are not live: the session may process every frame

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise SourceError(f"video file not found: {self.path}")
        if not self.path.is_file():
            raise SourceError(f"not a file: {self.path}")
        damage = file_damage(self.path)
        if damage is not None and damage.startswith("is empty"):
            raise SourceError(f"video file {self.path} {damage}")
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened()
        first = cap.read()[0] if ok else False
        cap.release()
        if not ok or not first:
            if damage is not None:
                raise SourceError(f"cannot decode video {self.path}: the file {damage}")
            raise SourceError(
                f"cannot decode video {self.path}: OpenCV could not open it or read its first "
                f"frame (unknown container or unsupported codec?)"
            )
        self.name = str(self.path)

    def frames(self, clock: SessionClock | None = None) -> Iterator[Frame]:
        """Frames stamped with their presentation time (the container's timestamps, from the
        stream's start), not index / rate: in a variable-frame-rate file (phones, screen
        recorders) the average rate puts later frames seconds away from their audio."""
        cap = cv2.VideoCapture(str(self.path))
        step = 1.0 / (cap.get(cv2.CAP_PROP_FPS) or 30.0)
        index, prev = 0, None
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    return
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1e3
                if prev is not None and not (math.isfinite(t) and t > prev):
                    # No timestamp (OpenCV reports 0), a repeated one, or one going back:
                    # a nominal frame after the last, so frame times stay increasing.
                    t = prev + step
                elif prev is None and not (math.isfinite(t) and t >= 0):
                    t = 0.0
                yield Frame(t=t, index=index, image=image, source=self.name)
                index += 1
                prev = t
        finally:
            cap.release()

    @property
    def fps(self) -> float:
        cap = cv2.VideoCapture(str(self.path))
        try:
            return cap.get(cv2.CAP_PROP_FPS) or 30.0
        finally:
            cap.release()


@dataclass
class StillImage:
    """One image file as a one-frame source."""

    path: Path
    live: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.is_file():
            raise SourceError(f"image file not found: {self.path}")
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image {self.path} (corrupt or unsupported format)")
        self.image = image
        self.name = str(self.path)

    def frames(self, clock: SessionClock | None = None) -> Iterator[Frame]:
        yield Frame(t=0.0, index=0, image=self.image, source=self.name)


@dataclass
class Camera:
    """A camera by index (OpenCV). Frames are stamped on the session clock at capture."""

    index: int = 0
    width: int = 640
    height: int = 480
    live: bool = True

    def __post_init__(self) -> None:
        self.name = f"camera:{self.index}"
        self._cap = self._open()

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            raise SourceError(
                f"cannot open camera {self.index}; run `emo-live doctor` to list the cameras "
                f"found, or pass --source FILE / --source synthetic"
            )
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap

    def reopen(self) -> Camera:
        """The same camera opened again (after it was unplugged); SourceError if still gone."""
        return Camera(self.index, self.width, self.height)

    def frames(self, clock: SessionClock | None = None) -> Iterator[Frame]:
        clock = clock or SessionClock()
        index = 0
        try:
            while True:
                ok, image = self._cap.read()
                if not ok:
                    raise SourceError(f"camera {self.index} stopped delivering frames")
                yield Frame(t=clock.now(), index=index, image=image, source=self.name)
                index += 1
        finally:
            self._cap.release()


@dataclass
class SyntheticVideo:
    """A generated clip: a face image drifting over a background, or a plain pattern.

    With ``image`` given (for example a photo of a face), the image is moved a few pixels
    per frame so trackers and detectors see motion; without it, frames hold no face.
    """

    image: np.ndarray | None = None
    fps: float = 30.0
    seconds: float = 5.0
    width: int = 640
    height: int = 480
    live: bool = False

    def __post_init__(self) -> None:
        self.name = "synthetic"
        if self.image is not None:
            self.image = check_frame(self.image)

    def frames(self, clock: SessionClock | None = None) -> Iterator[Frame]:
        n = int(round(self.fps * self.seconds))
        base = np.full((self.height, self.width, 3), 96, np.uint8)
        face = None
        if self.image is not None:
            scale = min(self.width / self.image.shape[1], self.height / self.image.shape[0]) * 0.8
            face = cv2.resize(self.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for index in range(n):
            frame = base.copy()
            if face is None:
                cv2.circle(frame, (40 + (index * 7) % (self.width - 80), self.height // 2), 30,
                           (0, 180, 255), -1)  # fmt: skip
            else:
                fh, fw = face.shape[:2]
                dx = int(10 * np.sin(index / 10.0))
                x = max(0, min(self.width - fw, (self.width - fw) // 2 + dx))
                y = (self.height - fh) // 2
                frame[y : y + fh, x : x + fw] = face
            yield Frame(t=index / self.fps, index=index, image=frame, source=self.name)


def open_video(spec: str, clock: SessionClock | None = None):
    """A video source from a CLI spec: ``camera:N`` / ``N``, ``synthetic``, or a file path."""
    if spec == "synthetic":
        return SyntheticVideo()
    if spec.isdigit() or spec.startswith("camera:"):
        return Camera(int(spec.split(":")[-1]))
    path = Path(spec)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return StillImage(path)
    return VideoFile(path)
