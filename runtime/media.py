"""Timestamped media on one clock: video frames and audio chunks.

Every source stamps what it yields with seconds on the session clock. Live sources stamp
at capture (monotonic time since the session started); file sources stamp with the media's
own presentation time, so an utterance lines up with the frames it was spoken over either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

AUDIO_RATE = 16_000  # every audio chunk is resampled to 16 kHz mono float32 in [-1, 1]


class SessionClock:
    """Monotonic seconds since the session started; shared by every source of a session."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def restart(self) -> None:
        """Zero the clock when capture starts (model loading happens before)."""
        self._t0 = time.monotonic()


@dataclass(frozen=True)
class Frame:
    t: float  # seconds on the session clock
    index: int  # frame number within its source
    image: np.ndarray  # HxWx3 uint8, BGR
    source: str = ""


@dataclass(frozen=True)
class AudioChunk:
    t: float  # session-clock time of the first sample
    samples: np.ndarray  # float32 mono at AUDIO_RATE
    source: str = ""

    @property
    def duration(self) -> float:
        return len(self.samples) / AUDIO_RATE

    @property
    def end(self) -> float:
        return self.t + self.duration
