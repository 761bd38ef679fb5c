"""From a window of evidence to one explained ``reading``: label fusion and conflict.

The small reasoning LLM judges labels poorly on its own (FACTS.md: 4 of 6 with calibration),
so the label is decided by log-linear pooling of the modalities that give a distribution over
the active label set: the face's expression probabilities (averaged over the window, mapped
onto the label set by name and synonym, ``names.EMOTION_WORDS``) and the LLM's calibrated label scores over all clues.
A modality that says nothing about a label contributes a flat factor for it.

The LLM's evidence is bounded: its calibrated scores are overconfident (one sentence can
drive a label to 0.97), and the 135M model picks the right label in 4 of 6 clear cases
(FACTS.md). A judge that is right with probability a = 4/6 among K = 6 labels, wrong evenly
otherwise, makes its pick at most a (K - 1) / (1 - a) = 10 times likelier than another label,
so the LLM's distribution is clipped to at most ``LLM_MAX_RATIO`` = 10 between any two
labels before pooling. Alone it then claims at most 10 / (10 + K - 1) (0.625 over FER's 7),
and its words cannot overturn a face that is more than 10 times surer of its label.

No evidence, no label: a window where no modality gives a distribution over the label set
(no face, no speech the LLM read, or no LLM) reads ``emotion`` None with a reason.

The conflict flag compares what the face shows with what the voice and words carry (the
LLM's scores, which weigh the acoustic and lexical clues): when both are confident and their
valence has opposite signs, the reading says so, e.g. "looks happy but sounds sad".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emolive.runtime.evidence import face_tracks
from emolive.runtime.names import fer_label_of
from emolive.runtime.readings import CIRCUMPLEX, SCHEMA, SCHEMA_VERSION, valence_arousal

FLOOR = 1e-3  # no modality may veto a label outright
LLM_MAX_RATIO = 10.0  # the most the LLM's label scores may favour one label over another


@dataclass(frozen=True)
class FusionWeights:
    face: float = 1.0
    llm: float = 1.0
    llm_max_ratio: float = LLM_MAX_RATIO


def bounded(p: np.ndarray, max_ratio: float) -> np.ndarray:
    """``p`` with no label more than ``max_ratio`` times likelier than another."""
    p = np.asarray(p, dtype=np.float64)
    q = np.maximum(p, p.max() / max_ratio)
    return q / q.sum()


@dataclass(frozen=True)
class ConflictRule:
    min_confidence: float = 0.4  # both sides must be at least this sure
    min_valence_gap: float = 0.6  # and their valences this far apart, with opposite signs


def map_face_scores(face: Mapping[str, float], labels: Sequence[str]) -> np.ndarray | None:
    """Face probabilities carried over to ``labels``; None when no label is known to the face."""
    out = np.full(len(labels), np.nan)
    for i, lab in enumerate(labels):
        fer = fer_label_of(lab)
        if fer is not None:
            out[i] = face.get(fer, 0.0)
    if np.isnan(out).all():
        return None
    known = ~np.isnan(out)
    # Labels the face cannot speak to get the average mass of the known ones: no evidence.
    out[~known] = out[known].mean()
    return out / out.sum()


def window_face_scores(expressions: Sequence[Mapping]) -> dict[str, float] | None:
    """Mean expression scores over the window, of the face seen most (the main speaker)."""
    faces = face_tracks(expressions)
    return dict(faces[0].probabilities) if faces else None


def fuse(
    labels: Sequence[str],
    face: np.ndarray | None,
    llm: np.ndarray | None,
    weights: FusionWeights = FusionWeights(),
) -> np.ndarray:
    """Log-linear pooling of the distributions that are present (the LLM's bounded); uniform
    if none is (``reading_event`` abstains then)."""
    if llm is not None:
        llm = bounded(llm, weights.llm_max_ratio)
    logp = np.zeros(len(labels))
    for dist, w in ((face, weights.face), (llm, weights.llm)):
        if dist is not None:
            logp += w * np.log(np.clip(dist, FLOOR, 1.0))
    p = np.exp(logp - logp.max())
    return p / p.sum()


@dataclass(frozen=True)
class Fused:
    """The one fusion of a window: each modality's distribution over the labels (``face``
    mapped onto them, ``llm`` bounded) and their pooled ``probs`` (None: no evidence)."""

    labels: tuple[str, ...]
    face: np.ndarray | None
    llm: np.ndarray | None
    probs: np.ndarray | None

    @property
    def label(self) -> str | None:
        return None if self.probs is None else self.labels[int(np.argmax(self.probs))]


def fuse_evidence(
    labels: Sequence[str],
    face_scores: Mapping[str, float] | None,
    llm_scores: np.ndarray | None,
    weights: FusionWeights = FusionWeights(),
) -> Fused:
    """Fuse the face's mean expression probabilities and the LLM's calibrated label scores
    (unrounded) over ``labels``, once; the reading, its label and its explanation all use it."""
    face = map_face_scores(face_scores, labels) if face_scores else None
    llm = None if llm_scores is None else bounded(llm_scores, weights.llm_max_ratio)
    probs = None if face is None and llm is None else fuse(labels, face, llm_scores, weights)
    return Fused(tuple(labels), face, llm, probs)


def _top(labels: Sequence[str], p: np.ndarray) -> tuple[str, float]:
    i = int(np.argmax(p))
    return labels[i], float(p[i])


def conflict(
    face_scores: Mapping[str, float] | None,
    llm_labels: Sequence[str] | None,
    llm_scores: np.ndarray | None,
    rule: ConflictRule = ConflictRule(),
) -> dict | None:
    """A description when the face and the voice/words point to opposite valence."""
    if not face_scores or llm_scores is None or llm_labels is None:
        return None
    face_label, face_conf = max(face_scores.items(), key=lambda kv: kv[1])
    llm_label, llm_conf = _top(llm_labels, llm_scores)
    if face_conf < rule.min_confidence or llm_conf < rule.min_confidence:
        return None
    fv = CIRCUMPLEX.get(face_label, (None,))[0]
    lv = _valence_of(llm_label)
    if fv is None or lv is None or fv * lv >= 0 or abs(fv - lv) < rule.min_valence_gap:
        return None
    return {
        "face": face_label,
        "voice_and_words": llm_label,
        "description": f"looks {face_label} but sounds {llm_label}",
    }


def _valence_of(label: str) -> float | None:
    key = label.lower().strip()
    if key in CIRCUMPLEX:
        return CIRCUMPLEX[key][0]
    fer = fer_label_of(key)
    return CIRCUMPLEX[fer][0] if fer is not None else None


def abstain_reason(expressions: Sequence[Mapping], spoke: bool, face_unmapped: bool) -> str:
    """Why a window without a distribution over the labels gives no label."""
    if not expressions and not spoke:
        return "no face, no speech in this window"
    if face_unmapped and not spoke:
        return "the face's expressions do not map onto this label set, and nothing else was read"
    if face_unmapped:
        return "the face's expressions do not map onto this label set, and no LLM read the speech"
    return "no face in this window, and no LLM read the speech"


def reading_event(
    *,
    t_start: float,
    t_end: float,
    labels: Sequence[str],
    expressions: Sequence[Mapping],
    visual_clues: Sequence[str],
    audio_clues: Sequence[str],
    text_clues: Sequence[str],
    llm_scores: np.ndarray | None,
    explanation: str | None,
    latency_ms: Mapping[str, float],
    backend: Mapping[str, object],
    notes: Sequence[str] = (),
    weights: FusionWeights = FusionWeights(),
    face_scores: Mapping[str, float] | None = None,
    abstain: str | None = None,
    fused: Fused | None = None,
) -> dict:
    """One explained reading over [t_start, t_end] from the evidence gathered in it.

    ``face_scores``: ``window_face_scores(expressions)`` if the caller has it already.
    Without a face distribution and LLM scores the reading abstains: ``emotion`` None,
    ``confidence`` 0, no scores, and ``abstained`` says why (``abstain``, if the caller
    knows better, e.g. the words were all addressed to the classifier). ``fused``: the
    window's fusion when the caller made it (the reasoning stage does, to explain its label);
    otherwise it is made here from ``face_scores`` and ``llm_scores``."""
    if face_scores is None:
        face_scores = window_face_scores(expressions)
    if fused is None:
        fused = fuse_evidence(labels, face_scores, llm_scores, weights)
    face, llm = fused.face, fused.llm
    modalities = [
        m for m, present in (("visual", bool(expressions)), ("audio", bool(audio_clues)),
                             ("text", bool(text_clues))) if present
    ]  # fmt: skip
    if fused.probs is None:
        reason = abstain or abstain_reason(
            expressions, bool(audio_clues or text_clues), face_unmapped=bool(face_scores)
        )
        emotion, confidence, scores = None, 0.0, {}
        valence = arousal = None
        explanation = None
    else:
        reason = None
        emotion, confidence = _top(labels, fused.probs)
        scores = {lab: round(float(p), 4) for lab, p in zip(labels, fused.probs, strict=True)}
        valence, arousal = valence_arousal(scores)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "type": "reading",
        "t_start": round(t_start, 3),
        "t_end": round(t_end, 3),
        "emotion": emotion,
        "confidence": round(confidence, 3),
        "scores": scores,
        "valence": valence,
        "arousal": arousal,
        "abstained": reason,
        "clues": {
            "visual": list(visual_clues),
            "audio": list(audio_clues),
            "text": list(text_clues),
        },
        "explanation": explanation,
        "conflict": None if reason else conflict(face_scores, labels, llm_scores),
        "modalities": modalities,
        "evidence": {
            "face": None if face is None else [round(float(x), 4) for x in face],
            "llm": None if llm is None else [round(float(x), 4) for x in llm],
        },
        "notes": list(notes),
        "latency_ms": {k: round(float(v), 1) for k, v in latency_ms.items()},
        "backend": dict(backend),
    }
