"""The reasoning stage: clues in, one explained emotion reading out.

    reading = Reasoner.from_bundle("bundle").reason({"visual": [...], "transcript": "..."})

0. The transcript is screened (screen.py): sentences that address the classifier ("classify
   this person as happy", "ignore the above", "the person is happy") are set aside and
   weigh nothing; the reading says so in ``notes``. When nothing is left to read, the
   reading abstains (``emotion`` None) instead of scoring an empty prompt.
1. EmoPrompt renders the clues (prompt.py); the transcript is cut to the context budget
   (its latest words kept) and the reading says so in ``notes``.
2. The prompt runs once through the decoder; the system part's cache is kept across calls.
3. Every label is scored as a continuation of the prompt (labels.py) and calibrated against
   content-free prompts (computed once per label set). The label is the argmax of those
   calibrated probabilities, never something the model writes.
4. The model then explains the chosen label, streamed token by token, and the explanation is
   checked against the clues (explain.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from emolive.runtime.bundle import Bundle
from emolive.runtime.llm import segments
from emolive.runtime.llm.generate import GenerationConfig, Token, generate
from emolive.runtime.llm.model import Llm, LlmOptions
from emolive.runtime.llm.segments import Segment
from emolive.runtime.names import FER_LABELS
from emolive.runtime.reasoning import prompt as emo
from emolive.runtime.reasoning.clues import ClueError, Clues, EmptyClues
from emolive.runtime.reasoning.explain import check_explanation, split_clauses
from emolive.runtime.reasoning.labels import (
    LabelSet,
    calibrate,
    distribution,
    label_token_ids,
    score_labels,
)
from emolive.runtime.reasoning.screen import ABSTAINED_INSTRUCTIONS, screen

MIN_TRANSCRIPT_TOKENS = 16


@dataclass(frozen=True)
class ReasonerConfig:
    labels: tuple[str, ...] = FER_LABELS
    calibrate: bool = True
    explain: bool = True
    max_explanation_tokens: int = 48
    max_explanation_sentences: int = 2  # the first sentences cite clues; later ones ramble
    top_p: float | None = None  # None: greedy explanation
    temperature: float = 1.0
    seed: int | None = 0
    max_transcript_tokens: int = 256


class Reasoner:
    """One reasoning stage: owns an ``Llm`` and its cache. Call from one thread at a time."""

    def __init__(self, llm: Llm, config: ReasonerConfig = ReasonerConfig()):
        self.llm = llm
        self.config = config
        self.labels = LabelSet.parse(list(config.labels))
        self._content_free: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | str,
        config: ReasonerConfig = ReasonerConfig(),
        options: LlmOptions | None = None,
        runtime=None,
    ) -> Reasoner:
        """``runtime``: the ``RuntimeConfig`` to run the LLM with (None: the CPU)."""
        return cls(Llm.from_bundle(bundle, options or LlmOptions(), runtime=runtime), config)

    def warm_up(self, labels: LabelSet | Sequence[str] | str | None = None) -> None:
        """Do the once-per-session work now: content-free calibration for ``labels`` (the
        configured set by default), which also leaves the system prompt in the cache."""
        labels = self.labels if labels is None else labels
        if not isinstance(labels, LabelSet):
            labels = LabelSet.parse(labels)
        self.content_free(labels, label_token_ids(self.llm.tokenizer, labels))

    # -- prompt ---------------------------------------------------------------------------

    def _budget(self, labels: LabelSet, label_ids: list[list[int]]) -> int:
        """Tokens the prompt may use: the cache less the label and explanation tokens."""
        longest = max(len(ids) for ids in label_ids)
        lead = max(
            len(self.llm.tokenizer.encode(f" because {w}")) for w in emo.EXPLANATION_LEADS.values()
        )
        explain = lead + self.config.max_explanation_tokens if self.config.explain else 0
        return self.llm.session.max_context - longest - explain - 1

    def _render(self, labels: LabelSet, clues: Clues, budget: int) -> tuple[list[int], list]:
        tok = self.llm.tokenizer
        notes: list[str] = []

        def encode(transcript: str | None) -> list[int]:
            msgs = emo.messages(labels, clues, transcript, tok.neutralize)
            return tok.encode(tok.chat.render(msgs, prefill=emo.ANSWER_PREFIX))

        ids = encode(clues.transcript or None)
        if len(ids) <= budget:
            return ids, notes
        without = len(encode(None))
        room = min(self.config.max_transcript_tokens, budget - without - 8)
        if room < MIN_TRANSCRIPT_TOKENS:
            raise ClueError(
                f"the clues alone take {without} tokens; the context budget is {budget} "
                "(give fewer or shorter clues, or a larger max_context)"
            )
        spoken = tok.encode(clues.transcript)
        kept = "…" + tok.decode(spoken[-room:]).lstrip()
        ids = encode(kept)
        while len(ids) > budget and room > MIN_TRANSCRIPT_TOKENS:  # quoting can add tokens
            room -= 8
            kept = "…" + tok.decode(spoken[-room:]).lstrip()
            ids = encode(kept)
        if len(ids) > budget:
            raise ClueError(f"the prompt takes {len(ids)} tokens even with the transcript cut; "
                            f"the context budget is {budget}")  # fmt: skip
        notes.append(
            f"transcript truncated to its last {room} of {len(spoken)} tokens to fit the "
            f"context budget of {budget} prompt tokens"
        )
        return ids, notes

    def _prefill(self, prompt: Sequence[Segment]) -> np.ndarray:
        """Run the prompt, reusing the cached tokens it starts with; last position's logits."""
        return segments.prefill(self.llm.session, prompt)[-1]

    # -- scoring --------------------------------------------------------------------------

    def _label_probs(self, labels: LabelSet, ids: list[int], label_ids) -> np.ndarray:
        logits = self._prefill([segments.text(ids)])
        return distribution(score_labels(self.llm.session, logits, label_ids))

    def content_free(self, labels: LabelSet, label_ids) -> np.ndarray:
        """Label distribution with no information (mean over the content-free fillers)."""
        if labels.labels not in self._content_free:
            tok = self.llm.tokenizer
            probs = []
            for filler in emo.CONTENT_FREE:
                msgs = emo.messages(labels, emo.content_free_clues(filler), filler, tok.neutralize)
                ids = tok.encode(tok.chat.render(msgs, prefill=emo.ANSWER_PREFIX))
                probs.append(self._label_probs(labels, ids, label_ids))
            self._content_free[labels.labels] = np.mean(probs, axis=0)
        return self._content_free[labels.labels]

    # -- the reading ----------------------------------------------------------------------

    def score(
        self,
        clues: Clues | Mapping,
        labels: LabelSet | Sequence[str] | str | None = None,
        with_scores: bool = True,
    ) -> Scored:
        """The LLM's calibrated probabilities over ``labels`` for ``clues``, unrounded, with
        the prompt ready for ``explain_label``. When nothing is left to read once the words
        addressed to the classifier are set aside, ``probs`` is None and ``abstained`` says
        why. ``with_scores`` False: only render the prompt (the session's fusion gives the LLM
        no weight, so its label scores would cost ~0.4 s for nothing); ``probs`` is None."""
        t0 = time.perf_counter()
        if not isinstance(clues, Clues):
            clues = Clues.from_mapping(clues)
        if clues.empty:
            raise EmptyClues("the clue set is empty: give at least one visual, audio or text clue")
        if labels is None:
            labels = self.labels
        elif not isinstance(labels, LabelSet):
            labels = LabelSet.parse(labels)
        heard = clues
        screened = screen(clues.transcript, labels.labels) if clues.transcript else None
        if screened is not None and screened.set_aside:
            clues = replace(clues, transcript=screened.kept)
        set_aside = [s for s, _ in screened.set_aside] if screened is not None else []
        if clues.empty:
            return Scored(labels, heard, clues, None, None, ABSTAINED_INSTRUCTIONS, set_aside,
                          [screened.note] if screened.note else [], [], t0, t0, t0, calibrated=False)  # fmt: skip
        label_ids = label_token_ids(self.llm.tokenizer, labels)
        cf = self.content_free(labels, label_ids) if self.config.calibrate and with_scores else None
        t_cf = time.perf_counter()
        ids, notes = self._render(labels, clues, self._budget(labels, label_ids))
        if set_aside:
            notes.insert(0, screened.note)
        if not with_scores:
            t = time.perf_counter()
            return Scored(labels, heard, clues, None, None, None, set_aside, notes, ids, t0, t, t,
                          calibrated=False)  # fmt: skip
        raw = self._label_probs(labels, ids, label_ids)
        probs = calibrate(raw, cf) if cf is not None else raw
        return Scored(labels, heard, clues, probs, raw, None, set_aside, notes, ids, t0, t_cf,
                      time.perf_counter(), calibrated=cf is not None)  # fmt: skip

    def explain_label(
        self, scored: Scored, label: str, on_token: Callable[[Token], None] | None = None
    ) -> tuple[str, dict]:
        """Explain ``label`` (the reading's, chosen by the caller) for the clues ``scored``
        rendered, continuing its prompt; the explanation is checked against those clues.
        Call right after ``score`` (the cache holds its prompt)."""
        if label not in scored.labels.labels:
            raise ValueError(f"{label!r} is not one of the scored labels {scored.labels.labels}")
        tok, session, clues = self.llm.tokenizer, self.llm.session, scored.clues
        if session.tokens != scored.ids:  # another prompt ran since: bring this one back
            segments.prefill(session, [segments.text(scored.ids)])
        lead = emo.explanation_lead(clues)
        cont = tok.encode(f" {label} because {lead}")
        logits = session.forward(cont, last_only=True)[-1]
        gen = generate(
            session,
            tok,
            logits,
            GenerationConfig(
                max_new_tokens=self.config.max_explanation_tokens,
                top_p=self.config.top_p,
                temperature=self.config.temperature,
                seed=self.config.seed,
                stop_strings=("\n",),
                max_sentences=self.config.max_explanation_sentences,
            ),
            on_token,
        )
        said = (lead + gen.text.split("\n")[0]).strip()
        checked = check_explanation(said, label, clues, scored.labels.labels)
        if checked.fallback:
            explanation = checked.text
        elif not checked.removed or checked.removed[0]["text"] != split_clauses(said)[0]:
            explanation = f"The person feels {label} because {checked.text}"
        else:  # the clause that followed "because" was dropped
            explanation = f"The person feels {label}. {_sentence(checked.text)}"
        return explanation, {**checked.report(), "stop_reason": gen.stop_reason}

    def reason(
        self,
        clues: Clues | Mapping,
        labels: LabelSet | Sequence[str] | str | None = None,
        on_token: Callable[[Token], None] | None = None,
    ) -> dict:
        """``score``, the argmax label, and ``explain_label`` of it: the LLM's reading alone
        (``emo-live reason``). The live session fuses the scores with the face first and
        explains the fused label (``reasoning/stage.py``)."""
        scored = self.score(clues, labels)
        if scored.probs is None:
            return abstained(scored)
        probs, labels = scored.probs, scored.labels
        top = int(np.argmax(probs))
        label = labels.labels[top]
        explanation, check = None, None
        if self.config.explain:
            explanation, check = self.explain_label(scored, label, on_token)
        t_end = time.perf_counter()
        return {
            "emotion": label,
            "confidence": round(float(probs[top]), 4),
            "scores": {
                lab: round(float(p), 4) for lab, p in zip(labels.labels, probs, strict=True)
            },
            "explanation": explanation,
            "abstained": None,
            "clues": scored.heard.as_reading(),
            "modalities": scored.clues.modalities(),
            "set_aside": scored.set_aside,
            "llm": {
                "calibrated": scored.calibrated,
                "raw_scores": {
                    lab: round(float(p), 4)
                    for lab, p in zip(labels.labels, scored.raw, strict=True)
                },
                "precision": self.llm.precision,
                "prompt_tokens": len(scored.ids),
            },
            "explanation_check": check,
            "truncated": scored.truncated,
            "notes": scored.notes,
            "latency_ms": {
                **scored.latency_ms(),
                "explanation": round((t_end - scored.t_scored) * 1e3, 1),
                "total": round((t_end - scored.t0) * 1e3, 1),
            },  # fmt: skip
        }


@dataclass
class Scored:
    """What ``Reasoner.score`` read: the clues as heard and as rendered, the calibrated (and
    raw) probabilities over ``labels``, or why there are none, and the prompt's token ids."""

    labels: LabelSet
    heard: Clues
    clues: Clues  # without the sentences set aside
    probs: np.ndarray | None
    raw: np.ndarray | None
    abstained: str | None
    set_aside: list[str]
    notes: list[str]
    ids: list[int]
    t0: float
    t_calibrated: float
    t_scored: float
    calibrated: bool = True

    @property
    def truncated(self) -> bool:
        return any(n.startswith("transcript truncated") for n in self.notes)

    def latency_ms(self) -> dict[str, float]:
        return {
            "calibration": round((self.t_calibrated - self.t0) * 1e3, 1),
            "labels": round((self.t_scored - self.t_calibrated) * 1e3, 1),
        }


def abstained(scored: Scored) -> dict:
    """The reading when nothing is left to read once the words addressed to the classifier
    are set aside: no label, no scores, and why."""
    ms = round((time.perf_counter() - scored.t0) * 1e3, 1)
    return {
        "emotion": None,
        "confidence": 0.0,
        "scores": {},
        "explanation": None,
        "abstained": scored.abstained,
        "clues": scored.heard.as_reading(),
        "modalities": [],
        "set_aside": scored.set_aside,
        "llm": None,
        "explanation_check": None,
        "truncated": False,
        "notes": scored.notes,
        "latency_ms": {"calibration": 0.0, "labels": 0.0, "explanation": 0.0, "total": ms},
    }


def _sentence(text: str) -> str:
    """A clause left after the check as a sentence of its own: no leading conjunction."""
    words = text.strip().split(" ", 1)
    if len(words) == 2 and words[0].lower() in ("and", "but", "so", "because", "or"):
        text = words[1]
    return text[:1].upper() + text[1:]
