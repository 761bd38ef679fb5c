"""Readings: the versioned JSON events emo-live emits (one JSON object per line).

Two event types share one stream:

* ``expression`` — fast, one per processed frame and face: the face's box and track id,
  expression scores, valence/arousal, visual clues with their measured values.
* ``reading`` — slower, explained: emotion over a time window from all modalities, with
  clues per modality and an explanation (added by the reasoning stage). A window without
  evidence gives no label: ``emotion`` null, ``confidence`` 0, ``scores`` empty, and
  ``abstained`` says why ("no face, no speech in this window"); otherwise ``abstained`` is
  null.

Every event carries ``schema`` and ``schema_version``. A minor version adds optional
fields; a major version changes or removes one. The README documents every field.

2.0: a reading may abstain (``emotion`` null) and always carries ``abstained``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

SCHEMA = "emo-live.reading"
SCHEMA_VERSION = "2.2"

# Russell's circumplex, rounded: where each FER/MER label sits in valence (unpleasant -1 ..
# pleasant +1) and arousal (calm -1 .. activated +1). Valence/arousal of a face is the
# expectation under its label scores; labels not listed here (open vocabulary) are left out.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "angry": (-0.6, 0.8),
    "disgust": (-0.7, 0.35),
    "fear": (-0.65, 0.75),
    "worried": (-0.5, 0.45),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.4),
    "surprise": (0.3, 0.85),
    "neutral": (0.0, 0.0),
}

EXPRESSION_FIELDS = (
    "schema", "schema_version", "type", "t", "frame", "source", "track_id", "box",
    "face_score", "emotion", "confidence", "scores", "valence", "arousal", "clues",
    "measures", "latency_ms", "backend",
)  # fmt: skip
READING_FIELDS = (
    "schema", "schema_version", "type", "t_start", "t_end", "emotion", "confidence",
    "scores", "valence", "arousal", "abstained", "clues", "explanation", "conflict",
    "modalities", "latency_ms", "backend",
)  # fmt: skip


def valence_arousal(scores: Mapping[str, float]) -> tuple[float | None, float | None]:
    known = {k: v for k, v in scores.items() if k in CIRCUMPLEX}
    total = sum(known.values())
    if not known or total <= 0:
        return None, None
    v = sum(CIRCUMPLEX[k][0] * p for k, p in known.items()) / total
    a = sum(CIRCUMPLEX[k][1] * p for k, p in known.items()) / total
    return round(v, 3), round(a, 3)


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def expression_event(
    *,
    t: float,
    frame: int,
    source: str,
    track_id: int,
    box: Sequence[float],
    face_score: float,
    labels: Sequence[str],
    probs: np.ndarray,
    clues: list[str],
    measures: Mapping[str, float] | None,
    latency_ms: Mapping[str, float],
    backend: Mapping[str, object],
) -> dict:
    scores = {lab: _r(p, 4) for lab, p in zip(labels, probs, strict=True)}
    top = int(np.argmax(probs))
    valence, arousal = valence_arousal(scores)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "type": "expression",
        "t": _r(t),
        "frame": int(frame),
        "source": source,
        "track_id": int(track_id),
        "box": [_r(v, 1) for v in box],
        "face_score": _r(face_score),
        "emotion": labels[top],
        "confidence": _r(probs[top]),
        "scores": scores,
        "valence": valence,
        "arousal": arousal,
        "clues": {"visual": list(clues)},
        "measures": dict(measures) if measures is not None else None,
        "latency_ms": {k: _r(v, 2) for k, v in latency_ms.items()},
        "backend": dict(backend),
    }


class ReadingError(ValueError):
    pass


def validate(event: Mapping) -> None:
    """Raise ReadingError naming the field if ``event`` does not follow the schema."""
    if event.get("schema") != SCHEMA:
        raise ReadingError(f"field 'schema' must be {SCHEMA!r}, got {event.get('schema')!r}")
    major = str(event.get("schema_version", "")).split(".")[0]
    major_now = SCHEMA_VERSION.split(".")[0]
    if major != major_now:
        raise ReadingError(
            f"field 'schema_version' {event.get('schema_version')!r} is not {major_now}.x"
        )
    fields = {"expression": EXPRESSION_FIELDS, "reading": READING_FIELDS}.get(event.get("type"))
    if fields is None:
        raise ReadingError(
            f"field 'type' must be 'expression' or 'reading', got {event.get('type')!r}"
        )
    for f in fields:
        if f not in event:
            raise ReadingError(f"{event['type']} event is missing field {f!r}")
    scores = event["scores"]
    if event["type"] == "reading":
        _validate_abstention(event)
    elif event["emotion"] is None:
        raise ReadingError("field 'emotion' is null in an expression event")
    if event["emotion"] is not None and event["emotion"] not in scores:
        raise ReadingError(f"field 'emotion' {event['emotion']!r} is not among 'scores'")
    total = sum(scores.values())
    if scores and not math.isclose(total, 1.0, abs_tol=0.02):
        raise ReadingError(f"field 'scores' sums to {total:.3f}, not 1")
    if not 0.0 <= event["confidence"] <= 1.0:
        raise ReadingError(f"field 'confidence' {event['confidence']} is outside [0, 1]")


def _validate_abstention(event: Mapping) -> None:
    """A reading has a label and no ``abstained`` reason, or no label, scores or confidence
    and a reason."""
    reason = event["abstained"]
    if event["emotion"] is None:
        if not isinstance(reason, str) or not reason:
            raise ReadingError(
                "field 'abstained' must say why a reading without 'emotion' has none"
            )
        if event["scores"] or event["confidence"] != 0:
            raise ReadingError("an abstained reading has empty 'scores' and 'confidence' 0")
    elif reason is not None:
        raise ReadingError(f"field 'abstained' is {reason!r} but the reading has an emotion")


def dumps(event: Mapping) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
