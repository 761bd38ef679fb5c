"""Face tracks: a track id that stays with a face across frames (greedy IoU matching)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` [n,4] and ``b`` [m,4] (x0, y0, x1, y1)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class FaceTrack:
    track_id: int
    box: np.ndarray
    last_t: float
    hits: int = 1


class FaceTracker:
    """Assigns track ids; a track survives ``max_gap_s`` without a detection."""

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        self.min_iou = min_iou
        self.max_gap_s = max_gap_s
        self.tracks: list[FaceTrack] = []
        self._next_id = 1

    def update(self, boxes: np.ndarray, t: float) -> list[int]:
        """Track ids for ``boxes`` [n,4] seen at time ``t``, in the same order."""
        self.tracks = [tr for tr in self.tracks if t - tr.last_t <= self.max_gap_s]
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = [0] * len(boxes)
        if self.tracks and len(boxes):
            iou = iou_matrix(boxes, np.stack([tr.box for tr in self.tracks]))
            used: set[int] = set()
            # Greedy: best pairs first; each box and each track used once.
            for flat in np.argsort(-iou, axis=None):
                i, j = divmod(int(flat), iou.shape[1])
                if iou[i, j] < self.min_iou:
                    break
                if ids[i] or j in used:
                    continue
                used.add(j)
                tr = self.tracks[j]
                tr.box, tr.last_t, tr.hits = boxes[i], t, tr.hits + 1
                ids[i] = tr.track_id
        for i, box in enumerate(boxes):
            if not ids[i]:
                self.tracks.append(FaceTrack(self._next_id, box, t))
                ids[i] = self._next_id
                self._next_id += 1
        return ids
