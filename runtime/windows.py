"""Reasoning windows: when to read, and over what evidence.

A window closes at the end of each utterance, or every ``every_s`` seconds without one
(video only, or silence). It carries the expression events and utterances of its span, and
their typed ``Evidence`` (``evidence.py``). Windows never overlap: each starts where the last
one ended, and a silent window never closes past the audio horizon (the earliest time an
utterance still being heard or transcribed may start), so it cannot take the span of speech
that is yet to come.

The collector also knows how far vision has got (``vision_at``): for files, where audio runs
ahead of vision, a window for an utterance waits (``wait_for_vision``) until the frames of
its span are analysed, so the session itself never waits on a stage.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emolive.runtime.evidence import Evidence, face_tracks


@dataclass
class Window:
    t_start: float
    t_end: float
    expressions: list[dict] = field(default_factory=list)
    utterances: list[Any] = field(default_factory=list)  # audio Utterance objects
    closed_at: float = field(default_factory=time.monotonic)  # wall time, for latency
    merged: int = 0
    notes: list[str] = field(default_factory=list)
    embeddings: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    _evidence: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def t(self) -> float:
        return self.t_end

    @property
    def evidence(self) -> Evidence:
        """The window's typed evidence (computed once per expression list: the collector may
        swap in a fuller span)."""
        key = (id(self.expressions), len(self.expressions), len(self.utterances))
        if self._evidence is None or self._evidence[0] != key:
            faces = tuple(face_tracks(self.expressions))
            self._evidence = (key, Evidence(faces, tuple(self.utterances), self.embeddings))
        return self._evidence[1]

    @property
    def face_scores(self) -> dict[str, float] | None:
        """Mean expression scores of the main face over the window."""
        return self.evidence.face_scores

    def merge(self, newer: Window) -> Window:
        return Window(
            t_start=min(self.t_start, newer.t_start),
            t_end=max(self.t_end, newer.t_end),
            expressions=self.expressions + newer.expressions,
            utterances=self.utterances + newer.utterances,
            closed_at=newer.closed_at,
            merged=self.merged + newer.merged + 1,
            notes=self.notes + [n for n in newer.notes if n not in self.notes],
            embeddings={
                k: self.embeddings.get(k, ()) + newer.embeddings.get(k, ())
                for k in {*self.embeddings, *newer.embeddings}
            },
        )


class WindowCollector:
    """Keeps recent expression events and turns utterances and silences into windows."""

    def __init__(self, every_s: float = 5.0, keep_s: float = 30.0) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self.every_s = every_s
        self.keep_s = keep_s
        self._expressions: deque[dict] = deque()
        self._lock = threading.Lock()
        self.last_end = 0.0
        self._closed = False  # has any window closed yet
        self._vision = threading.Condition(self._lock)
        self._vision_t = -math.inf  # media time of the last frame vision analysed
        self._vision_done = True  # no vision running (the session says when one starts)

    # -- vision's progress ------------------------------------------------------------------
    def expect_vision(self) -> None:
        """A vision stage runs: windows for utterances wait for it (``wait_for_vision``)."""
        with self._lock:
            self._vision_done = False

    def vision_at(self, t: float) -> None:
        """Vision has analysed every frame up to media time ``t``."""
        with self._vision:
            self._vision_t = max(self._vision_t, t)
            self._vision.notify_all()

    def vision_done(self) -> None:
        """Vision ended (its source ended, or it failed): nothing more to wait for."""
        with self._vision:
            self._vision_done = True
            self._vision.notify_all()

    @property
    def vision_t(self) -> float:
        return self._vision_t

    def wait_for_vision(self, window: Window, stop: threading.Event | None = None) -> Window:
        """``window`` with every expression of its span, once vision has analysed its last
        frame (or ended, or ``stop`` is set). Files only: live, nothing waits."""
        with self._vision:
            while (
                not self._vision_done
                and self._vision_t < window.t_end
                and not (stop is not None and stop.is_set())
            ):
                self._vision.wait(0.05)  # wakes on progress; the timeout only rechecks ``stop``
        window.expressions = self.span(window.t_start, window.t_end)
        return window

    def add_expression(self, event: dict) -> None:
        with self._lock:
            self._expressions.append(event)
            while self._expressions and event["t"] - self._expressions[0]["t"] > self.keep_s:
                self._expressions.popleft()

    def span(self, t0: float, t1: float) -> list[dict]:
        with self._lock:
            return [e for e in self._expressions if t0 <= e["t"] <= t1]

    def _close(self, t0: float, t1: float) -> tuple[float, float]:
        """The next window's span: from the last window's end (never before), to ``t1``."""
        t0 = max(t0, self.last_end)
        t1 = max(t1, t0)
        self.last_end, self._closed = t1, True
        return t0, t1

    def for_utterance(self, utterance: Any) -> Window:
        # From the last window's end (faces seen in between count), at most every_s back.
        t0, t1 = self._close(utterance.t_start - self.every_s, utterance.t_end)
        return Window(t0, t1, self.span(t0, t1), [utterance])

    def due(self, now_t: float, horizon: float = math.inf) -> Window | None:
        """A silent window of ``every_s`` once that much has passed since the last one ended
        (before ``now_t`` and the audio ``horizon``). A caller that fell behind (a file read
        faster than the clock ticks) gets one window per call until it has caught up, so
        silent stretches tile into windows of ``every_s`` however fast they were analysed."""
        end = min(now_t, horizon)
        if end - self.last_end < self.every_s:
            return None
        t0, t1 = self._close(self.last_end, self.last_end + self.every_s)
        return Window(t0, t1, self.span(t0, t1))

    def final(self, now_t: float) -> Window | None:
        """What is left at the end of a session, if a face was seen since the last window (or
        at all, before the first: a still image is one frame at t = 0)."""
        with self._lock:
            fresh = [
                e
                for e in self._expressions
                if e["t"] > self.last_end or (not self._closed and e["t"] >= self.last_end)
            ]
        if not fresh:
            return None
        t0, t1 = self._close(self.last_end, max(now_t, fresh[-1]["t"]))
        return Window(t0, t1, self.span(t0, t1))
