"""Timestamped media on one clock: video frames and audio chunks.

Every source stamps what it yields with seconds on the session clock. Live sources stamp
at capture (monotonic time since the session started); file sources stamp with the media's
own presentation time, so an utterance lines up with the frames it was spoken over either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")
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


def paced(items: Iterable[T], clock: SessionClock, due: Callable[[T], float]) -> Iterator[T]:
    """Replay timestamped media no faster than the session clock: each item is released
    when the clock reaches ``due(item)``, as a live camera or microphone would deliver it."""
    for item in items:
        wait = due(item) - clock.now()
        if wait > 0:
            time.sleep(wait)
        yield item


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
