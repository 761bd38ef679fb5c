"""The reasoning stage: windows of evidence in, explained ``reading`` events out.

Per window, in this order (fusion happens once):

1. ``WindowReasoner.judge`` reads the window (the lite profile: the LLM scores the labels over
   the clues in words made here from the typed evidence) and returns calibrated,
   unrounded probabilities over the labels, or none.
2. ``fusion.fuse_evidence`` pools them with the face's expression probabilities; the label is
   the argmax of that pooled distribution.
3. The judgement explains that label: the explanation is always of the reading's own label.

The stage holds at most one window waiting: when a new one arrives while one waits
(reasoning slower than real time), the two merge into one window over both spans, and the
merge is counted. Nothing is silently lost.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from emolive.runtime.evidence import Evidence
from emolive.runtime.fusion import FusionModel, fuse_evidence, reading_event
from emolive.runtime.names import FER_LABELS
from emolive.runtime.reasoning.screen import ABSTAINED_INSTRUCTIONS, screen
from emolive.runtime.stage import Stage
from emolive.runtime.vision.clues import FaceMeasures, measure_clues
from emolive.runtime.windows import Window

HAND_SET = FusionModel()  # without a bundle's fitted model


# -- clues in words, made from the evidence for the prompt and the reading ----------------------
def visual_clues(evidence: Evidence) -> list[str]:
    """The main face in words: its mean expression over the window, then its latest
    measures (smiling, brows raised, ...), each with the value it rests on."""
    face = evidence.main_face
    if face is None:
        return []
    top, p = face.top
    out = [f"facial expression over {evidence.frames} frames reads {top} ({p:.2f})"]
    if face.measures:
        out += measure_clues(FaceMeasures(**face.measures))
    return out


def audio_clues(evidence: Evidence) -> list[str]:
    out: list[str] = []
    for u in evidence.utterances:
        out.extend(c for c in u.clues if c not in out)
    return out


def text_clues(evidence: Evidence) -> list[str]:
    """The transcript, quoted: it is data for the reasoner, never instructions."""
    text = evidence.transcript
    return ["said: " + json.dumps(text, ensure_ascii=False)] if text else []


# -- the reasoner a profile provides ------------------------------------------------------------
@dataclass
class Judgement:
    """A reasoner's reading of one window: ``probs`` over the labels (calibrated, unrounded;
    None: it read nothing it could judge, ``abstained`` may say why), and ``explain``, which
    explains a label the stage chose (None: this reasoner does not explain)."""

    probs: np.ndarray | None = None
    abstained: str | None = None
    notes: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    backend: dict = field(default_factory=dict)
    explain: Callable[[str], str | None] | None = None


class WindowReasoner(Protocol):
    """What the reasoning stage asks of a profile's reasoner (call from one thread).

    ``transcript``: the window's words with the sentences addressed to the classifier set
    aside (the stage screens once, for every reader of the words); ``score``: whether the
    fusion weighs the reasoner's probabilities at all (when not, a reasoner may skip making
    them and only prepare its explanation)."""

    def judge(
        self, window: Window, labels: Sequence[str], transcript: str | None = None,
        score: bool = True,
    ) -> Judgement: ...  # fmt: skip


class WordsReader(Protocol):
    """A words model: ``read(text, labels).probabilities`` is a distribution over
    ``labels`` (``runtime/words``)."""

    def read(self, text: str, labels: Sequence[str]): ...


class LlmReasoner:
    """The lite profile's reasoner: the bundle's LLM over the window's clues in words."""

    def __init__(self, reasoner, labels: Sequence[str], scores: bool = True) -> None:
        """``scores``: whether the session's fusion weighs the LLM's label scores; when it
        does not, only the explanation path is warmed up (no content-free calibration)."""
        from emolive.runtime.reasoning.clues import Clues

        self.reasoner = reasoner
        # Warm up at load, not on the first utterance: the content-free label scores (once per
        # label set) and ONNX Runtime's first runs of prefill and decode cost ~1 s together.
        face = Clues(visual=("a face",))
        if scores:
            reasoner.warm_up(list(labels))
            reasoner.reason(face, labels=list(labels))
        else:
            scored = reasoner.score(face, labels=list(labels), with_scores=False)
            reasoner.explain_label(scored, scored.labels.labels[0])
        self.load_notes = list(reasoner.llm.notes)  # how the LLM's form was loaded here

    @classmethod
    def from_bundle(
        cls, bundle, config=None, options=None, runtime=None, scores: bool = True
    ) -> LlmReasoner:
        from emolive.runtime.reasoning.reasoner import Reasoner, ReasonerConfig

        config = config or ReasonerConfig()
        reasoner = Reasoner.from_bundle(bundle, config, options, runtime)
        return cls(reasoner, config.labels, scores)

    @property
    def backend_info(self) -> dict:
        return dict(getattr(self.reasoner.llm, "backend_info", {}) or {})

    def judge(
        self, window: Window, labels: Sequence[str], transcript: str | None = None,
        score: bool = True,
    ) -> Judgement:  # fmt: skip
        from emolive.runtime.reasoning.clues import Clues

        evidence = window.evidence
        clues = Clues(
            visual=tuple(visual_clues(evidence)),
            audio=tuple(audio_clues(evidence)),
            transcript=evidence.transcript if transcript is None else transcript,
        )
        if clues.empty:  # the reading abstains or rests on the face: nothing to read
            return Judgement()
        t0 = time.perf_counter()
        scored = self.reasoner.score(clues, labels=list(labels), with_scores=score)
        latency = {f"llm_{k}": v for k, v in scored.latency_ms().items()} if score else {}
        if scored.abstained is not None:  # nothing left to read once the words were screened
            return Judgement(abstained=scored.abstained, notes=scored.notes, latency_ms=latency)

        def explain(label: str) -> str | None:
            if not self.reasoner.config.explain:
                return None
            t = time.perf_counter()
            text, _ = self.reasoner.explain_label(scored, label)
            latency["llm_explanation"] = round((time.perf_counter() - t) * 1e3, 1)
            latency["llm_total"] = round((time.perf_counter() - t0) * 1e3, 1)
            return text

        return Judgement(
            probs=scored.probs,
            notes=list(scored.notes),
            latency_ms=latency,
            backend={"llm": self.reasoner.llm.precision},
            explain=explain,
        )


# -- the stage ------------------------------------------------------------------------------------
class ReasoningStage(Stage):
    """Windows in, explained ``reading`` events out. One window waits at most; later ones merge."""

    def __init__(
        self,
        reasoner: WindowReasoner | None,
        labels: Sequence[str] = FER_LABELS,
        backend: dict | None = None,
        words: WordsReader | None = None,
        model: FusionModel = HAND_SET,
        hesitancy: Callable | None = None,
        **stage_options,
    ) -> None:
        """``words``: the profile's words model (None: the words weigh in only through the
        reasoner); ``model``: how the modalities pool (the bundle's fitted one);
        ``hesitancy``: ``(evidence, expressions) -> dict | None``, the hesitancy flag."""
        stage_options["maxsize"] = 1
        stage_options["keep_latest"] = False
        super().__init__("reasoning", **stage_options)
        self.reasoner = reasoner
        self.words = words
        self.model = model
        self.hesitancy = hesitancy
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
        evidence = window.evidence
        notes = list(window.notes) + list(self.degraded_notes) + evidence.voice_notes
        # The words are screened once, for every reader of them: sentences addressed to the
        # classifier weigh nothing, for the words model as for the LLM.
        heard = evidence.transcript
        screened = screen(heard, self.labels) if heard else None
        kept = screened.kept if screened is not None else heard
        if screened is not None and screened.set_aside:
            notes.append(screened.note)
        latency: dict[str, float] = {}
        words = None
        if self.words is not None and kept.strip():
            t = time.perf_counter()
            words = self.words.read(kept, self.labels)
            latency["words"] = (time.perf_counter() - t) * 1e3
        judged = Judgement()
        if self.reasoner is not None:
            judged = self.reasoner.judge(
                window, self.labels, transcript=kept, score=self.model.weight("llm") > 0
            )
        fused = fuse_evidence(
            self.labels, evidence.face_scores, judged.probs, self.model,
            words=None if words is None else words.probabilities,
        )  # fmt: skip
        explanation = None
        if fused.label is not None and judged.explain is not None:
            explanation = judged.explain(fused.label)  # the reading's own label
        reason_ms = (time.perf_counter() - t0) * 1e3
        notes += [n for n in judged.notes if n not in notes]
        if window.merged:
            notes.append(f"{window.merged + 1} windows merged: reasoning was slower than real time")
        abstain = judged.abstained
        if abstain is None and screened is not None and screened.set_aside and not kept.strip():
            abstain = ABSTAINED_INSTRUCTIONS
        event = reading_event(
            t_start=window.t_start,
            t_end=window.t_end,
            labels=self.labels,
            expressions=window.expressions,
            face_scores=evidence.face_scores,
            visual_clues=visual_clues(evidence),
            audio_clues=audio_clues(evidence),
            text_clues=text_clues(evidence),
            llm_scores=judged.probs,
            explanation=explanation,
            latency_ms={
                "reason": reason_ms,
                "since_window_end": (time.monotonic() - window.closed_at) * 1e3,
                **latency,
                **judged.latency_ms,
            },
            backend={**self.backend, **judged.backend},
            notes=notes,
            model=self.model,
            abstain=abstain,
            fused=fused,
            hesitancy=self.hesitancy(evidence, window.expressions) if self.hesitancy else None,
        )
        return [event]
