"""Facial expression probabilities from face boxes: fer's crop, 64x64 gray, mini-Xception."""

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


class ExpressionClassifier:
    """Runs the bundle's expression graph on every face of a frame in one batch."""

    labels = FER_LABELS

    def __init__(self, runner) -> None:
        self.runner = runner

    def classify(self, gray: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """Probabilities [n_faces, 7] for boxes (x0, y0, x1, y1) in ``gray``'s pixels."""
        if not len(boxes):
            return np.zeros((0, len(self.labels)), np.float32)
        fill = border_fill(gray)
        batch = np.stack([face_tensor(gray, b, fill) for b in boxes])
        return self.runner.run({EXPRESSION_INPUT: batch})[EXPRESSION_OUTPUT]
