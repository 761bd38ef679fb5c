"""Reasoning windows: when to explain, over what evidence, and the stage that explains.

A window closes at the end of each utterance, or every ``every_s`` seconds without one
(video only, or silence). It carries the expression events and utterances of its span.
Windows never overlap: each starts where the last one ended, and a silent window never
closes past the audio horizon (the earliest time an utterance still being heard or
transcribed may start), so it cannot take the span of speech that is yet to come. The
reasoning stage holds at most one window waiting: when a new one arrives while one waits
(reasoning slower than real time), the two merge into one window over both spans, and the
merge is counted. Nothing is silently lost.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emolive.runtime.fusion import fuse, map_face_scores, reading_event, window_face_scores
from emolive.runtime.names import FER_LABELS
from emolive.runtime.stage import Stage


@dataclass
class Window:
    t_start: float
    t_end: float
    expressions: list[dict] = field(default_factory=list)
    utterances: list[Any] = field(default_factory=list)  # audio Utterance objects
    closed_at: float = field(default_factory=time.monotonic)  # wall time, for latency
    merged: int = 0
    notes: list[str] = field(default_factory=list)
    _derived: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def t(self) -> float:
        return self.t_end

    def _once(self, what: str, compute: Callable[[], Any]) -> Any:
        # Keyed by the expression list itself: the session may swap in a fuller span.
        key = (what, id(self.expressions), len(self.expressions))
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    @property
    def face_scores(self) -> dict[str, float] | None:
        """Mean expression scores over the window's frames (the clues, the LLM's decision and
        the reading all use them: computed once per expression list)."""
        return self._once("face", lambda: window_face_scores(self.expressions))

    @property
    def visual_clues(self) -> list[str]:
        return self._once("visual", lambda: visual_clues(self.expressions, self.face_scores))

    def merge(self, newer: Window) -> Window:
        return Window(
            t_start=min(self.t_start, newer.t_start),
            t_end=max(self.t_end, newer.t_end),
            expressions=self.expressions + newer.expressions,
            utterances=self.utterances + newer.utterances,
            closed_at=newer.closed_at,
            merged=self.merged + newer.merged + 1,
            notes=self.notes + [n for n in newer.notes if n not in self.notes],
        )


def visual_clues(expressions: Sequence[dict], scores: dict[str, float] | None = None) -> list[str]:
    """The window's face in words: its mean expression, then the latest frame's other clues.

    ``scores``: the expressions' mean scores if already computed (``Window.face_scores``)."""
    if scores is None:
        scores = window_face_scores(expressions)
    if not scores:
        return []
    top = max(scores, key=scores.get)
    out = [f"facial expression over {len(expressions)} frames reads {top} ({scores[top]:.2f})"]
    latest = expressions[-1]["clues"]["visual"]
    return out + [c for c in latest if not c.startswith("facial expression reads")]


def audio_clues(utterances: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for u in utterances:
        out.extend(c for c in u.clues if c not in out)
    return out


def transcript(utterances: Sequence[Any]) -> str:
    texts = [u.transcript.text.strip() for u in utterances if u.transcript is not None]
    return " ".join(t for t in texts if t)


def text_clues(utterances: Sequence[Any]) -> list[str]:
    """The transcript, quoted: it is data for the reasoner, never instructions."""
    text = transcript(utterances)
    return ["said: " + json.dumps(text, ensure_ascii=False)] if text else []


def explainer_from_bundle(bundle, config=None, options=None):
    """The reasoning LLM of a bundle as the ``explain`` callable of a ReasoningStage."""
    from emolive.runtime.reasoning.clues import Clues
    from emolive.runtime.reasoning.reasoner import Reasoner, ReasonerConfig

    config = config or ReasonerConfig()
    reasoner = Reasoner.from_bundle(bundle, config, options)
    # Warm up at load, not on the first utterance: the content-free label scores (once per
    # label set) and ONNX Runtime's first runs of prefill and decode cost ~1 s together.
    reasoner.warm_up(list(config.labels))
    reasoner.reason(Clues(visual=("a face",)), labels=list(config.labels))

    def explain(window: Window, labels: Sequence[str]):
        clues = Clues(
            visual=tuple(window.visual_clues),
            audio=tuple(audio_clues(window.utterances)),
            transcript=transcript(window.utterances),
        )
        if clues.empty:  # the reading abstains or rests on the face: nothing to explain
            return None, None, {}
        face_scores = window.face_scores
        face = map_face_scores(face_scores, labels) if face_scores else None

        def decide(llm_probs: np.ndarray) -> int:
            # Explain the label the reading will carry: the LLM's scores fused with the face.
            return int(np.argmax(fuse(labels, face, llm_probs)))

        r = reasoner.reason(clues, labels=list(labels), decide=decide)
        info = {
            "notes": list(r.get("notes", [])),
            "latency_ms": {f"llm_{k}": v for k, v in r["latency_ms"].items()},
        }
        if r["emotion"] is None:  # nothing left to read once the words were screened
            return None, None, {**info, "abstained": r["abstained"]}
        info["backend"] = {"llm": r["llm"]["precision"]}
        scores = np.array([r["scores"][lab] for lab in labels], dtype=np.float64)
        return scores / scores.sum(), r["explanation"], info

    explain.load_notes = list(reasoner.llm.notes)  # how the LLM's form was loaded here
    return explain


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
        """A silent window when ``every_s`` has passed since the last one ended; it ends at
        ``now_t`` or at the audio ``horizon``, whichever is earlier."""
        end = min(now_t, horizon)
        if end - self.last_end < self.every_s:
            return None
        t0, t1 = self._close(self.last_end, end)
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


class ReasoningStage(Stage):
    """Windows in, explained ``reading`` events out. One window waits at most; later ones merge."""

    def __init__(
        self,
        explain: Callable[[Window, Sequence[str]], tuple[Any, str | None, dict]] | None,
        labels: Sequence[str] = FER_LABELS,
        backend: dict | None = None,
        **stage_options,
    ) -> None:
        stage_options["maxsize"] = 1
        stage_options["keep_latest"] = False
        super().__init__("reasoning", **stage_options)
        self.explain = explain
        self.labels = tuple(labels)
        self.backend = dict(backend or {})
        self.merged = 0
        self.degraded_notes: list[str] = []

    def add_note(self, note: str) -> None:
        """A degradation every later reading carries (e.g. the reasoning LLM failed)."""
        self.degraded_notes.append(note)

    def offer(self, window: Window) -> None:
        """Queue a window; if one is already waiting, merge into it (latest wins, nothing lost)."""
        with self._lock:
            self.stats.received += 1
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                waiting = None
            if waiting is not None:
                if not isinstance(waiting, Window):
                    raise RuntimeError("reasoning stage: a window was offered after stop()")
                window = waiting.merge(window)
                self.merged += 1
            self._queue.put_nowait(window)

    def process(self, window: Window):
        t0 = time.perf_counter()
        llm_scores, explanation, info = (None, None, {})
        if self.explain is not None:
            llm_scores, explanation, info = self.explain(window, self.labels)
        reason_ms = (time.perf_counter() - t0) * 1e3
        notes = list(window.notes) + list(self.degraded_notes) + list(info.get("notes", []))
        if window.merged:
            notes.append(f"{window.merged + 1} windows merged: reasoning was slower than real time")
        event = reading_event(
            t_start=window.t_start,
            t_end=window.t_end,
            labels=self.labels,
            expressions=window.expressions,
            face_scores=window.face_scores,
            visual_clues=window.visual_clues,
            audio_clues=audio_clues(window.utterances),
            text_clues=text_clues(window.utterances),
            llm_scores=llm_scores,
            explanation=explanation,
            latency_ms={
                "reason": reason_ms,
                "since_window_end": (time.monotonic() - window.closed_at) * 1e3,
                **{k: v for k, v in info.get("latency_ms", {}).items()},
            },
            backend={**self.backend, **info.get("backend", {})},
            notes=notes,
            abstain=info.get("abstained"),
        )
        return [event]
