"""Starting the slow analysis of an utterance before its end is decided.

The segmenter ends an utterance after ``min_silence_ms`` of pause (250 ms by default), but
its samples are fixed as soon as the pause covers the trailing pad (96 ms). From then on
the ASR can run on a worker thread while the VAD waits out the rest of the pause: when the
end is decided, the transcript is already there or nearly so. If speech resumes, the early
result is thrown away (counted as wasted).

Only analyzers marked ``pure`` run early: their result depends on the samples alone.
Prosody is not pure (it reads and updates the speaker's baseline) and costs little, so it
runs when the utterance is final.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from emolive.runtime.audio.analyzers import UtteranceAnalyzer
from emolive.runtime.audio.utterances import SpeechSegment

# name -> (result, milliseconds it took)
EarlyResults = dict[str, tuple[Any, float]]


def _key(seg: SpeechSegment) -> tuple[float, float, int]:
    return (seg.t_start, seg.speech_end, len(seg.samples))


def _run(analyzers: list[UtteranceAnalyzer], seg: SpeechSegment) -> EarlyResults:
    out: EarlyResults = {}
    for a in analyzers:
        t0 = time.perf_counter()
        result = a.analyze([seg])[0]
        out[a.name] = (result, (time.perf_counter() - t0) * 1e3)
    return out


class Speculator:
    def __init__(self, analyzers: list[UtteranceAnalyzer]) -> None:
        self.analyzers = [a for a in analyzers if getattr(a, "pure", False)]
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="audio-early") if self.analyzers else None
        )
        self._key: tuple | None = None
        self._future: Future | None = None
        self.started = 0
        self.used = 0

    @property
    def wasted(self) -> int:
        return self.started - self.used - (1 if self._future is not None else 0)

    def offer(self, seg: SpeechSegment | None) -> None:
        """Start the pure analyzers on ``seg`` unless already running on the same samples."""
        if self._pool is None or seg is None or _key(seg) == self._key:
            return
        # A previous early run on samples that grew since is dropped (speech resumed).
        self._key = _key(seg)
        self._future = self._pool.submit(_run, self.analyzers, seg)
        self.started += 1

    def take(self, seg: SpeechSegment) -> EarlyResults | None:
        """The early results for exactly this segment (waiting for them), or None."""
        if self._future is None:
            return None
        future, self._future, key, self._key = self._future, None, self._key, None
        if _key(seg) != key:
            return None  # speech resumed after the early start: that run is wasted
        self.used += 1
        return future.result()  # an analyzer's error surfaces here, in the stage

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
