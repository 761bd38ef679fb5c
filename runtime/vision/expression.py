"""Facial expression probabilities from face boxes: a square crop, 64x64 gray, mini-Xception.

Two crops: fer's own (the box squared, +10 px each side, never turned), and the aligned one
(the box's long side plus ``margin`` of it on every side, turned about the box centre so the
eye line is horizontal, as FER2013's faces are). ``flip`` also classifies every face
mirrored and averages the two: the network is not mirror-symmetric, the expressions are.
benchmarks/faces.py measures the three against each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from emolive.runtime.names import EXPRESSION_INPUT, EXPRESSION_OUTPUT, FER_LABELS

SIZE = 64
# fer's crop: the box squared around its centre, then 10 px added on every side; parts that
# fall outside the image take the mean gray of the image's bottom two rows (fer pads the
# whole image with that value; we fill only the crop, which is the same and far cheaper).
OFFSET = 10


def square_box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    """fer's ``tosquare`` + offsets: square the box around its centre, add OFFSET each side."""
    x, y = int(round(x0)), int(round(y0))
    w, h = int(round(x1 - x0)), int(round(y1 - y0))
    if w > h:
        y -= (w - h) // 2
        h = w
    elif h > w:
        x -= (h - w) // 2
        w = h
    return x - OFFSET, y - OFFSET, x + w + OFFSET, y + h + OFFSET


def crop_padded(
    image: np.ndarray, x0: int, y0: int, x1: int, y1: int, fill: float = 0
) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` where out-of-image parts take ``fill``, without padding the frame."""
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    out = np.full((y1 - y0, x1 - x0) + image.shape[2:], fill, dtype=image.dtype)
    if cx1 > cx0 and cy1 > cy0:
        out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = image[cy0:cy1, cx0:cx1]
    return out


def border_fill(gray: np.ndarray) -> float:
    return float(gray[-2:].mean())


def face_tensor(gray: np.ndarray, box: Sequence[float], fill: float | None = None) -> np.ndarray:
    """One face as the classifier's input row: [1, 64, 64] float32 in [-1, 1]."""
    x0, y0, x1, y1 = square_box(*box[:4])
    crop = crop_padded(gray, x0, y0, x1, y1, border_fill(gray) if fill is None else fill)
    face = cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return ((face.astype(np.float32) / 255.0 - 0.5) * 2.0)[None]


def aligned_tensor(
    gray: np.ndarray, box: Sequence[float], angle: float, margin: float, fill: float
) -> np.ndarray:
    """One face as the classifier's input row, [1, 64, 64] float32 in [-1, 1]: a square of
    side ``long side x (1 + 2 margin)`` about the box centre, turned by ``angle`` (radians,
    the eye line's angle in the frame; 0 = not turned), resampled once."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    if not side > 0:
        raise ValueError(f"face box {tuple(box[:4])} has no area")
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    k = side / SIZE
    c, s = np.cos(angle) * k, np.sin(angle) * k
    # crop pixel (u, v) centre -> frame point: centre + R(angle) @ (uv + 0.5 - SIZE/2) * k
    a = np.array([[c, -s], [s, c]])
    b = np.array([cx, cy]) + a @ np.array([0.5 - SIZE / 2, 0.5 - SIZE / 2]) - 0.5
    face = cv2.warpAffine(
        gray,
        np.hstack([a, b[:, None]]),
        (SIZE, SIZE),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    return ((face.astype(np.float32) / 255.0 - 0.5) * 2.0)[None]


def eye_angle(points: np.ndarray) -> float:
    """The eye line's angle in the frame (radians) from FaceMesh's 468 points: outer corner
    of the person's right eye (33) to their left eye's (263)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[0] < 264 or pts.shape[1] < 2:
        raise ValueError(f"eye_angle needs FaceMesh's 468 points, got shape {pts.shape}")
    (rx, ry), (lx, ly) = pts[33, :2], pts[263, :2]
    return float(np.arctan2(ly - ry, lx - rx))


class ExpressionClassifier:
    """Runs the bundle's expression graph on every face of a frame in one batch.

    ``margin`` None: fer's crop (what the network's authors fed it); a number: the aligned
    crop with that margin (``classify`` turns it by the angles it is given). ``flip``:
    average each face's probabilities with its mirror image's (one batch of 2n faces).
    """

    labels = FER_LABELS

    def __init__(self, runner, margin: float | None = None, flip: bool = False) -> None:
        if margin is not None and not 0.0 <= margin <= 1.0:
            raise ValueError(f"expression crop margin must be in [0, 1] or None, got {margin}")
        self.runner = runner
        self.margin = margin
        self.flip = flip

    def tensors(
        self,
        gray: np.ndarray,
        boxes: Sequence[Sequence[float]],
        angles: Sequence[float] | None = None,
    ) -> np.ndarray:
        """The graph's input batch [n, 1, 64, 64] (without the mirrored half)."""
        if angles is not None and len(angles) != len(boxes):
            raise ValueError(f"{len(angles)} eye angles for {len(boxes)} face boxes")
        fill = border_fill(gray)
        if self.margin is None:
            return np.stack([face_tensor(gray, b, fill) for b in boxes])
        turns = angles if angles is not None else [0.0] * len(boxes)
        return np.stack(
            [
                aligned_tensor(gray, b, a, self.margin, fill)
                for b, a in zip(boxes, turns, strict=True)
            ]
        )

    def classify(
        self,
        gray: np.ndarray,
        boxes: Sequence[Sequence[float]],
        angles: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Probabilities [n_faces, 7] for boxes (x0, y0, x1, y1) in ``gray``'s pixels;
        ``angles``: each face's eye-line angle (radians) for the aligned crop."""
        if not len(boxes):
            return np.zeros((0, len(self.labels)), np.float32)
        batch = self.tensors(gray, boxes, angles)
        if not self.flip:
            return self.runner.run({EXPRESSION_INPUT: batch})[EXPRESSION_OUTPUT]
        both = np.concatenate([batch, batch[..., ::-1]])
        probs = self.runner.run({EXPRESSION_INPUT: np.ascontiguousarray(both)})[EXPRESSION_OUTPUT]
        n = len(boxes)
        return (probs[:n] + probs[n:]) / 2
