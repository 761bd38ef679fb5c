"""Frames and audio kept for the windows, and sampled as AffectGPT was trained.

The window's span is known only when it closes, so the vision stage keeps each frame
(resized to 224×224, as AffectGPT decodes them: aspect not kept) for ``keep_s`` seconds and
the audio stage keeps the 16 kHz samples; the reasoner samples both over the window:
8 frames at ``arange(0, n, n / min(8, n))`` (the last repeated up to 8), 8 clips of 2 s
starting at ``k · max(D - 2, 0) / 8`` s, zero-padded to 2 s.
"""

from __future__ import annotations

import threading
from collections import deque

import cv2
import numpy as np

from emolive.runtime.affectgpt import spec
from emolive.runtime.audio.stage import AudioStage
from emolive.runtime.stage import Stage


def frame_indices(n: int, want: int = spec.FRAMES) -> np.ndarray:
    if n < 1:
        raise ValueError("no frames to sample")
    idx = np.arange(0, n, n / min(want, n)).astype(int)
    return np.concatenate([idx, np.full(want - len(idx), idx[-1])]).astype(int)


def clips_of(samples: np.ndarray, clips: int = spec.FRAMES, size: int = spec.CLIP_SAMPLES,
             rate: int = spec.SAMPLE_RATE) -> np.ndarray:  # fmt: skip
    """[clips, size] float32 from a mono 16 kHz signal."""
    x = np.asarray(samples, np.float32)
    if len(x) < size:
        x = np.concatenate([x, np.zeros(size - len(x), np.float32)])
    duration = len(x) / rate
    step = max(duration - size / rate, 0.0) / clips
    out = np.zeros((clips, size), np.float32)
    for k in range(clips):
        start = int(round(k * step * rate))
        piece = x[start : start + size]
        out[k, : len(piece)] = piece
    return out


class FrameStore(Stage):
    """The vision stage: keeps recent frames (224×224, BGR) and, with ``faces``, each frame's
    main-face crop (112×112 BGR, None where no face was found) for the reasoner; emits
    nothing. ``frames=False``: keep only the crops (a face-only model)."""

    def __init__(self, keep_s: float = 30.0, size: int = spec.IMAGE_SIZE, faces=None,
                 frames: bool = True, **options) -> None:  # fmt: skip
        options.setdefault("keep_latest", True)
        super().__init__("vision", **options)
        self.keep_s, self.size = keep_s, size
        self.faces, self.keep_frames = faces, frames
        self._frames: deque[tuple[float, np.ndarray | None, np.ndarray | None]] = deque()
        self._guard = threading.Lock()
        self.last_t = 0.0
        self.latest = None
        self.frames_with_faces = 0

    def process(self, frame):
        small = None
        if self.keep_frames:
            small = cv2.resize(frame.image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        crop = self.faces.crop(frame.image) if self.faces is not None else None
        self.frames_with_faces += crop is not None
        with self._guard:
            self._frames.append((frame.t, small, crop))
            while self._frames and self._frames[0][0] < frame.t - self.keep_s:
                self._frames.popleft()
        self.last_t = frame.t
        self.latest = (frame, [])
        return []

    def between(self, t0: float, t1: float) -> list[np.ndarray]:
        with self._guard:
            return [im for t, im, _ in self._frames if t0 <= t <= t1 and im is not None]

    def faces_between(self, t0: float, t1: float) -> tuple[list[np.ndarray], int]:
        """The face crops over [t0, t1], and how many frames were looked at."""
        with self._guard:
            kept = [crop for t, _, crop in self._frames if t0 <= t <= t1]
        return [c for c in kept if c is not None], len(kept)

    def sample(self, t0: float, t1: float) -> np.ndarray | None:
        """[8, 3, 224, 224] float32 pixels 0..255 (BGR) over [t0, t1]; None: no frame."""
        return _pixels(self.between(t0, t1))

    def sample_faces(self, t0: float, t1: float) -> np.ndarray | None:
        """8 of the window's face crops, resized to 224 as AffectGPT resizes its 112-px
        crops: [8, 3, 224, 224] float32 0..255 BGR; None: no face in the window."""
        crops, _ = self.faces_between(t0, t1)
        size = (spec.IMAGE_SIZE, spec.IMAGE_SIZE)
        return _pixels([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in crops])

    def session_stats(self) -> dict:
        stats = {"frames_analysed": self.stats.processed}
        if self.faces is not None:
            stats["frames_with_faces"] = self.frames_with_faces
        return stats


def _pixels(images: list[np.ndarray]) -> np.ndarray | None:
    if not images:
        return None
    picked = np.stack([images[i] for i in frame_indices(len(images))])
    return picked.transpose(0, 3, 1, 2).astype(np.float32)


class SampleBuffer:
    """The last ``keep_s`` seconds of 16 kHz audio, by session time."""

    def __init__(self, keep_s: float = 30.0) -> None:
        self.keep_s = keep_s
        self._chunks: deque = deque()
        self._guard = threading.Lock()

    def add(self, chunk) -> None:
        x = np.nan_to_num(np.asarray(chunk.samples, np.float32))
        with self._guard:
            self._chunks.append((chunk.t, x))
            while self._chunks and self._chunks[0][0] < chunk.end - self.keep_s:
                self._chunks.popleft()

    def between(self, t0: float, t1: float) -> np.ndarray:
        with self._guard:
            chunks = list(self._chunks)
        parts = []
        for t, x in chunks:
            a = int(round((t0 - t) * spec.SAMPLE_RATE))
            b = int(round((t1 - t) * spec.SAMPLE_RATE))
            piece = x[max(a, 0) : max(min(b, len(x)), 0)]
            if len(piece):
                parts.append(piece)
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class AudioStore(Stage):
    """The audio stage when the bundle has no VAD/ASR: keeps the 16 kHz samples; no
    utterances (windows close every ``every_s``), so the subtitle is empty."""

    def __init__(self, keep_s: float = 30.0, **options) -> None:
        super().__init__("audio", maxsize=64, **options)
        self.keep_s = keep_s
        self.samples = SampleBuffer(keep_s)
        self.processed_t = 0.0
        self.horizon = 0.0
        self.backend_info: dict = {}

    def process(self, chunk):
        self.samples.add(chunk)
        self.processed_t = self.horizon = chunk.end
        return []

    def between(self, t0: float, t1: float) -> np.ndarray:
        return self.samples.between(t0, t1)

    def session_stats(self) -> dict:
        return {"audio_chunks_analysed": self.stats.processed}


class SpeechAudio(AudioStage):
    """The audio stage when the bundle has the lite VAD + Whisper: the lite stage (utterances
    with their transcripts close the windows and write the subtitle) that also keeps the
    16 kHz samples for the audio encoder's clips."""

    def __init__(self, *args, keep_s: float = 30.0, **options) -> None:
        super().__init__(*args, **options)
        self.samples = SampleBuffer(keep_s)

    def process(self, chunk):
        self.samples.add(chunk)
        return super().process(chunk)

    def between(self, t0: float, t1: float) -> np.ndarray:
        return self.samples.between(t0, t1)
