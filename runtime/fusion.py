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

How much each modality weighs is a ``FusionModel``: one exponent per modality (log-linear
pooling; a weight is an inverse temperature) and a threshold under which the fused top label
is ``uncertain`` (the reading then names no label and says why). A bundle may carry one fitted
on labelled data (its ``fusion`` file, written by ``emolive.calibrate.fusion``, with the data
it was fitted on); without one the weights are the hand-set ones above (face 1, LLM 1 bounded).

The conflict flag compares what the face shows with what the voice and words carry (the
LLM's scores, which weigh the acoustic and lexical clues): when both are confident and their
valence has opposite signs, the reading says so, e.g. "looks happy but sounds sad".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emolive.runtime.evidence import face_tracks
from emolive.runtime.names import fer_label_of
from emolive.runtime.readings import CIRCUMPLEX, SCHEMA, SCHEMA_VERSION, valence_arousal

FLOOR = 1e-3  # no modality may veto a label outright
LLM_MAX_RATIO = 10.0  # the most the LLM's label scores may favour one label over another


MODALITIES = ("face", "words", "voice", "llm")


@dataclass(frozen=True)
class FusionModel:
    """How the modalities pool. ``weights``: an exponent per modality (0: shown in the
    reading's evidence, but not pooled); ``llm_max_ratio``: the bound on the LLM's scores;
    ``threshold``: a fused top probability below it makes the reading ``uncertain`` (None:
    never); ``fitted_on``: what labelled data fitted it, as its fusion file says."""

    weights: Mapping[str, float] = field(
        default_factory=lambda: {"face": 1.0, "words": 1.0, "voice": 0.0, "llm": 1.0}
    )
    llm_max_ratio: float = LLM_MAX_RATIO
    threshold: float | None = None
    fitted_on: Mapping[str, Any] = field(default_factory=dict)

    def weight(self, modality: str) -> float:
        return float(self.weights.get(modality, 0.0))

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "fusion") -> FusionModel:
        """A model from its JSON form; a ``ValueError`` naming ``where`` and the field if a
        value is not what it must be."""
        weights = data.get("weights")
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"{where}: field 'weights' must map modalities to numbers")
        for name, w in weights.items():
            if name not in MODALITIES:
                raise ValueError(f"{where}: weights: unknown modality {name!r} ({MODALITIES})")
            if not isinstance(w, int | float) or not 0 <= w <= 10 or w != w:
                raise ValueError(f"{where}: weights.{name} must be a number in [0, 10], got {w!r}")
        threshold = data.get("threshold")
        if threshold is not None and not (isinstance(threshold, int | float) and 0 < threshold < 1):
            raise ValueError(
                f"{where}: field 'threshold' must be in (0, 1) or null, got {threshold!r}"
            )
        ratio = data.get("llm_max_ratio", LLM_MAX_RATIO)
        if not isinstance(ratio, int | float) or ratio < 1:
            raise ValueError(f"{where}: field 'llm_max_ratio' must be >= 1, got {ratio!r}")
        return cls(
            weights={k: float(v) for k, v in weights.items()},
            llm_max_ratio=float(ratio),
            threshold=None if threshold is None else float(threshold),
            fitted_on=dict(data.get("fitted_on") or {}),
        )

    @classmethod
    def from_bundle(cls, bundle) -> FusionModel:
        """The bundle's fitted model (its ``fusion`` file), or the hand-set default."""
        import json

        from emolive.runtime.bundle import BundleError
        from emolive.runtime.names import FUSION_FILE

        if FUSION_FILE not in bundle.manifest.get("files", {}):
            return cls()
        path = bundle.file(FUSION_FILE)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data, str(path))
        except (OSError, json.JSONDecodeError, ValueError, AttributeError) as e:
            raise BundleError(path, f"not a usable fusion model: {e}") from e

    def as_dict(self) -> dict:
        return {
            "weights": dict(self.weights),
            "llm_max_ratio": self.llm_max_ratio,
            "threshold": self.threshold,
            "fitted_on": dict(self.fitted_on),
        }


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


def pool(dists: Mapping[str, np.ndarray], model: FusionModel = FusionModel()) -> np.ndarray | None:
    """Log-linear pooling of the distributions with a positive weight (the LLM's already
    bounded); None when none has one."""
    logp = None
    for name, dist in dists.items():
        w = model.weight(name)
        if dist is None or w <= 0:
            continue
        term = w * np.log(np.clip(dist, FLOOR, 1.0))
        logp = term if logp is None else logp + term
    if logp is None:
        return None
    p = np.exp(logp - logp.max())
    return p / p.sum()


@dataclass(frozen=True)
class Fused:
    """The one fusion of a window: each modality's distribution over the labels (``face``
    mapped onto them, ``llm`` bounded), their pooled ``probs`` (None: no evidence), and
    ``uncertain`` when the pooled top probability is under the model's threshold."""

    labels: tuple[str, ...]
    dists: Mapping[str, np.ndarray]
    probs: np.ndarray | None
    uncertain: dict | None = None
    # What the voice and words say, for the conflict flag: the words' own distribution where
    # there is one, else the LLM's scores over the clues (unbounded).
    voice_and_words: np.ndarray | None = None

    @property
    def label(self) -> str | None:
        """The label the reading names (None: no evidence, or uncertain)."""
        if self.probs is None or self.uncertain is not None:
            return None
        return self.labels[int(np.argmax(self.probs))]


def fuse_evidence(
    labels: Sequence[str],
    face_scores: Mapping[str, float] | None,
    llm_scores: np.ndarray | None = None,
    model: FusionModel = FusionModel(),
    *,
    words: np.ndarray | None = None,
    voice: np.ndarray | None = None,
) -> Fused:
    """Fuse what the window gives over ``labels``, once: the face's mean expression
    probabilities, the words' and the voice's distributions, and the LLM's calibrated label
    scores (unrounded); the reading, its label and its explanation all use it."""
    dists = {
        "face": map_face_scores(face_scores, labels) if face_scores else None,
        "words": None if words is None else np.asarray(words, dtype=np.float64),
        "voice": None if voice is None else np.asarray(voice, dtype=np.float64),
        "llm": None if llm_scores is None else bounded(llm_scores, model.llm_max_ratio),
    }
    dists = {k: v for k, v in dists.items() if v is not None}
    probs = pool(dists, model)
    uncertain = None
    if probs is not None and model.threshold is not None:
        top = int(np.argmax(probs))
        if probs[top] < model.threshold:
            uncertain = {
                "label": labels[top],
                "confidence": round(float(probs[top]), 3),
                "threshold": model.threshold,
            }
    other = dists.get("words", None if llm_scores is None else np.asarray(llm_scores))
    return Fused(tuple(labels), dists, probs, uncertain, other)


def _top(labels: Sequence[str], p: np.ndarray) -> tuple[str, float]:
    i = int(np.argmax(p))
    return labels[i], float(p[i])


def conflict(
    face_scores: Mapping[str, float] | None,
    other_labels: Sequence[str] | None,
    other_scores: np.ndarray | None,
    rule: ConflictRule = ConflictRule(),
) -> dict | None:
    """A description when the face and the voice/words (``other_scores`` over
    ``other_labels``: the words' distribution, else the LLM's scores) point to opposite
    valence."""
    if not face_scores or other_scores is None or other_labels is None:
        return None
    face_label, face_conf = max(face_scores.items(), key=lambda kv: kv[1])
    other_label, other_conf = _top(other_labels, other_scores)
    if face_conf < rule.min_confidence or other_conf < rule.min_confidence:
        return None
    fv = CIRCUMPLEX.get(face_label, (None,))[0]
    lv = _valence_of(other_label)
    if fv is None or lv is None or fv * lv >= 0 or abs(fv - lv) < rule.min_valence_gap:
        return None
    return {
        "face": face_label,
        "voice_and_words": other_label,
        "description": f"looks {face_label} but sounds {other_label}",
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
    model: FusionModel = FusionModel(),
    face_scores: Mapping[str, float] | None = None,
    abstain: str | None = None,
    fused: Fused | None = None,
    hesitancy: dict | None = None,
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
        fused = fuse_evidence(labels, face_scores, llm_scores, model)
    modalities = [
        m for m, present in (("visual", bool(expressions)), ("audio", bool(audio_clues)),
                             ("text", bool(text_clues))) if present
    ]  # fmt: skip
    if fused.probs is None or fused.uncertain is not None:
        if fused.uncertain is not None:
            u = fused.uncertain
            reason = (
                f"uncertain: the evidence leans to {u['label']} at {u['confidence']:.2f}, "
                f"under the calibrated threshold {u['threshold']:.2f}"
            )
        else:
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
        "conflict": None if reason else conflict(face_scores, labels, fused.voice_and_words),
        "hesitancy": hesitancy,
        "uncertain": fused.uncertain,
        "modalities": modalities,
        "evidence": {
            name: None
            if fused.dists.get(name) is None
            else [round(float(x), 4) for x in fused.dists[name]]
            for name in ("face", "llm", *(m for m in ("words", "voice") if m in fused.dists))
        },  # fmt: skip
        "notes": list(notes),
        "latency_ms": {k: round(float(v), 1) for k, v in latency_ms.items()},
        "backend": dict(backend),
    }
