"""The one Stage base class: a thread, a bounded input queue, a ``process()`` hook.

A stage never blocks whoever feeds it: when its queue is full it drops (the oldest item when
``keep_latest``, else the new one) and counts the drop. A stage whose ``process`` raises stops
and hands a ``StageFailure`` to the scheduler's ``on_failure`` callback; nothing is logged
and skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_STOP = object()


@dataclass(frozen=True)
class StageFailure:
    stage: str
    error: BaseException
    item_t: float | None  # timestamp of the item being processed, if it had one

    def __str__(self) -> str:
        return f"stage {self.stage!r} failed: {type(self.error).__name__}: {self.error}"


@dataclass
class StageStats:
    received: int = 0
    processed: int = 0
    dropped: int = 0
    busy_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        lat = sorted(self.latencies_ms)
        p50 = lat[len(lat) // 2] if lat else None
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped": self.dropped,
            "busy_s": round(self.busy_s, 3),
            "p50_ms": None if p50 is None else round(p50, 2),
        }


class Stage:
    """Subclass and implement ``process(item) -> iterable of outputs`` (or None)."""

    def __init__(
        self,
        name: str,
        maxsize: int = 4,
        keep_latest: bool = False,
        on_failure: Callable[[StageFailure], None] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"stage {name!r}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.keep_latest = keep_latest
        self.on_failure = on_failure
        self.stats = StageStats()
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._subscribers: list[Callable[[Any], None]] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failure: StageFailure | None = None
        # Keep a bounded history of latencies: a long session must not grow without limit.
        self._max_latencies = 2048
        # Media time up to which every item was processed and its outputs delivered, for
        # stages that know it (vision: the last frame's time); None: this stage does not say.
        self.last_t: float | None = None
        self._progress: list[Callable[[float], None]] = []

    # -- wiring ---------------------------------------------------------------------------
    def connect(self, sink: Callable[[Any], None]) -> None:
        self._subscribers.append(sink)

    def emit(self, out: Any) -> None:
        for sink in self._subscribers:
            sink(out)

    # -- feeding (never blocks) --------------------------------------------------------------
    def put(self, item: Any) -> bool:
        """Offer an item; returns False when an item was dropped to make room or refused."""
        if self.failure is not None:
            return False
        with self._lock:
            self.stats.received += 1
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                self.stats.dropped += 1
                if not self.keep_latest:
                    return False
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._queue.put_nowait(item)
                return False

    def put_wait(self, item: Any, timeout: float = 0.1) -> bool:
        """Hand over an item, waiting for room: for file sources that must lose no frame.

        Returns False (item not taken) only when the stage has failed or stopped.
        """
        self.stats.received += 1
        while self.failure is None:
            try:
                self._queue.put(item, timeout=timeout)
                return True
            except queue.Full:
                if self._thread is not None and not self._thread.is_alive():
                    break
        return False

    # -- the hook -----------------------------------------------------------------------------
    def process(self, item: Any) -> Iterable[Any] | None:
        raise NotImplementedError

    def close(self) -> Iterable[Any] | None:
        """Called once after the last item: flush what is pending (e.g. an open utterance)."""
        return None

    def on_progress(self, listener: Callable[[float], None]) -> None:
        """``listener(t)`` after each item whose outputs were all delivered, with the stage's
        ``last_t`` (the window collector waits on vision's for files)."""
        self._progress.append(listener)

    def emitted(self) -> None:
        """Called after the outputs of each item were handed to every subscriber: tells the
        progress listeners how far the stage has got."""
        if self.last_t is not None:
            for listener in self._progress:
                listener(self.last_t)

    # -- thread -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"stage-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the stage to finish what is queued, flush, and end."""
        while True:
            try:
                self._queue.put(_STOP, timeout=0.1)
                return
            except queue.Full:
                if self._thread is None or not self._thread.is_alive():
                    return

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _emit_all(self, outs: Iterable[Any] | None) -> None:
        if outs is not None:
            for out in outs:
                self.emit(out)

    def fail(self, error: BaseException, item: Any = None) -> None:
        """Report this stage as failed, as its own thread does when ``process`` raises; the
        scheduler (its input's owner, e.g. a source that died) may call it too."""
        self.failure = StageFailure(self.name, error, getattr(item, "t", None))
        if self.on_failure is not None:
            self.on_failure(self.failure)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            t0 = time.perf_counter()
            try:
                self._emit_all(self.process(item))
                self.emitted()
            except Exception as e:  # handed to the scheduler, which decides; never swallowed
                self.fail(e, item)
                return
            dt = time.perf_counter() - t0
            self.stats.processed += 1
            self.stats.busy_s += dt
            lat = self.stats.latencies_ms
            lat.append(dt * 1e3)
            if len(lat) > self._max_latencies:
                del lat[: len(lat) - self._max_latencies // 2]
        try:
            self._emit_all(self.close())
        except Exception as e:
            self.fail(e)

    def run_inline(self, items: Iterable[Any]) -> list[Any]:
        """Process items on the caller's thread (tests, batch tools); returns all outputs."""
        outs: list[Any] = []
        self.connect(outs.append)
        try:
            for item in items:
                self._emit_all(self.process(item))
            self._emit_all(self.close())
        finally:
            self._subscribers.remove(outs.append)
        return outs
