"""Following faces between detections: the next frame's face box from this frame's landmarks.

MediaPipe's face mesh does the same: once landmarks are known, the next region of interest
comes from them, and the detector runs again only every few frames or when a face is lost.
The box a followed face reports keeps the detector's framing: when the detector last saw the
face, its box was stored relative to the landmarks' eye/mouth frame, and that relation is
applied to the new landmarks, so the expression crop stays what the classifier expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emolive.runtime.vision.detector import FaceBox

# FaceMesh indices that stand in for BlazeFace's six keypoints (the person's right first).
_EYE_R = (33, 133)
_EYE_L = (362, 263)
_NOSE, _LIP_TOP, _LIP_BOTTOM, _EAR_R, _EAR_L = 1, 13, 14, 234, 454


def mesh_keypoints(points: np.ndarray) -> np.ndarray:
    """BlazeFace-order keypoints (6, 2) from 468 landmarks."""
    p = points[:, :2]
    return np.stack(
        [
            p[list(_EYE_R)].mean(0),
            p[list(_EYE_L)].mean(0),
            p[_NOSE],
            (p[_LIP_TOP] + p[_LIP_BOTTOM]) / 2,
            p[_EAR_R],
            p[_EAR_L],
        ]
    ).astype(np.float32)


def _frame(keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """An anchor point and scale from keypoints: eye-mouth centroid, eye-to-mouth height."""
    eyes = (keypoints[0] + keypoints[1]) / 2
    centre = (eyes * 2 + keypoints[3]) / 3
    scale = float(np.hypot(*(keypoints[3] - eyes))) + 1e-6
    return centre, scale


@dataclass(frozen=True)
class FollowedFace:
    """A face carried from one frame to the next."""

    box_offsets: np.ndarray  # (4,) detector box edges relative to the anchor, in scale units
    score: float  # the detector's score when it last saw this face

    @classmethod
    def from_detection(cls, box: FaceBox, points: np.ndarray) -> FollowedFace:
        centre, scale = _frame(mesh_keypoints(points))
        edges = np.array([box.x0, box.y0, box.x1, box.y1], np.float64)
        return cls((edges - np.tile(centre, 2)) / scale, box.score)

    def next_box(self, points: np.ndarray, width: int, height: int) -> FaceBox:
        """Where this face's box is, given its landmarks in the latest frame."""
        kps = mesh_keypoints(points)
        centre, scale = _frame(kps)
        x0, y0, x1, y1 = np.tile(centre, 2) + self.box_offsets * scale
        x0, x1 = np.clip([x0, x1], 0, width)
        y0, y1 = np.clip([y0, y1], 0, height)
        return FaceBox(float(x0), float(y0), float(x1), float(y1), self.score, kps)
