"""468 face landmarks with MediaPipe FaceMesh (ONNX), torch-free.

The region of interest follows MediaPipe's face_landmark_front graph: centred on the
detection box, rotated so the eye line is horizontal, squared on the long side and scaled
by 1.5. One ``cv2.warpAffine`` cuts it out at 192x192; the same affine map (inverted)
carries the landmarks back to frame pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from emolive.runtime.backends import require_tensors
from emolive.runtime.names import (
    FACE_LANDMARKS_INPUT,
    FACE_LANDMARKS_POINTS,
    FACE_LANDMARKS_PRESENCE,
)
from emolive.runtime.sources.video import check_frame
from emolive.runtime.vision.detector import FaceBox

INPUT_SIZE = 192
NUM_LANDMARKS = 468
ROI_SCALE = 1.5  # MediaPipe RectTransformationCalculator scale_x / scale_y
RIGHT_EYE, LEFT_EYE = 0, 1  # FaceBox keypoint rows that define the roll angle

# A few FaceMesh indices the runtime's clue builders use (canonical MediaPipe topology).
MESH_RIGHT_EYE_OUTER, MESH_RIGHT_EYE_INNER = 33, 133
MESH_LEFT_EYE_INNER, MESH_LEFT_EYE_OUTER = 362, 263
MESH_NOSE_TIP = 1
MESH_UPPER_LIP, MESH_LOWER_LIP = 13, 14
MESH_MOUTH_RIGHT, MESH_MOUTH_LEFT = 61, 291


# eq=False: the numpy field would make == ambiguous; faces compare by identity.
@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    points: np.ndarray  # (468, 3) frame pixels; z is depth in the same pixel scale
    presence: float  # FaceMesh's face-present probability


# eq=False: the numpy field would make == ambiguous; faces compare by identity.
@dataclass(frozen=True, eq=False)
class FaceRoi:
    """The rotated square crop in frame pixels, and the affine map crop px -> frame px."""

    centre_x: float
    centre_y: float
    size: float
    rotation: float  # radians, the crop's x axis turned by this from the frame's
    crop_to_frame: np.ndarray  # (2, 3)


def face_roi(box: FaceBox, scale: float = ROI_SCALE, crop: int = INPUT_SIZE) -> FaceRoi:
    """MediaPipe's rect from a detection: rotation from the eye line, square, scaled."""
    kps = np.asarray(box.keypoints, np.float64)
    (rx, ry), (lx, ly) = kps[RIGHT_EYE], kps[LEFT_EYE]
    rotation = -math.atan2(-(ly - ry), lx - rx)
    size = max(box.width, box.height) * scale
    cx, cy = box.centre
    c, s = math.cos(rotation), math.sin(rotation)
    k = size / crop
    # crop point u (continuous, 0..crop) -> frame point: centre + R @ (u - crop/2) * k
    a = np.array([[c * k, -s * k], [s * k, c * k]])
    b = np.array([cx, cy]) - a @ np.array([crop / 2, crop / 2])
    return FaceRoi(cx, cy, size, rotation, np.hstack([a, b[:, None]]))


class FaceLandmarker:
    """FaceMesh on a GraphRunner: ``landmarks(frame, box)`` -> 468 points in frame pixels."""

    def __init__(self, runner):
        require_tensors(
            runner, "face landmark", (FACE_LANDMARKS_INPUT,),
            (FACE_LANDMARKS_POINTS, FACE_LANDMARKS_PRESENCE),
        )  # fmt: skip
        self.runner = runner

    @staticmethod
    def crop(frame_bgr: np.ndarray, roi: FaceRoi) -> np.ndarray:
        """The 192x192 RGB float32 [0, 1] input, CHW, for one ROI."""
        # warpAffine maps destination pixel indices to source indices; our affine works on
        # continuous coordinates (pixel centres at +0.5), hence the half-pixel shifts.
        m = roi.crop_to_frame.copy()
        m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
        patch = cv2.warpAffine(
            frame_bgr,
            m,
            (INPUT_SIZE, INPUT_SIZE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
        )
        x = patch[..., ::-1].transpose(2, 0, 1).astype(np.float32)
        x *= 1.0 / 255.0
        return x

    def landmarks(self, frame_bgr: np.ndarray, box: FaceBox) -> FaceLandmarks:
        return self.landmarks_many(frame_bgr, [box])[0]

    def landmarks_many(self, frame_bgr: np.ndarray, boxes: list[FaceBox]) -> list[FaceLandmarks]:
        """Landmarks for several faces of one frame in a single graph run."""
        frame = check_frame(frame_bgr, "frame_bgr", convert=False)
        if not boxes:
            return []
        for i, box in enumerate(boxes):
            if not isinstance(box, FaceBox):
                raise ValueError(f"box[{i}] is a {type(box).__name__}, expected a FaceBox")
            if not (box.width > 0 and box.height > 0):
                raise ValueError(f"box[{i}] has no area ({box.width} x {box.height} px)")
            if np.shape(box.keypoints) != (6, 2):
                raise ValueError(
                    f"box[{i}].keypoints has shape {np.shape(box.keypoints)}, want (6, 2)"
                )
        rois = [face_roi(b) for b in boxes]
        x = np.stack([self.crop(frame, r) for r in rois])
        out = self.runner.run({FACE_LANDMARKS_INPUT: x})
        raw = out[FACE_LANDMARKS_POINTS].reshape(len(boxes), NUM_LANDMARKS, 3)
        logits = out[FACE_LANDMARKS_PRESENCE].reshape(len(boxes))
        presence = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        result = []
        for roi, pts, p in zip(rois, raw, presence, strict=True):
            a, b = roi.crop_to_frame[:, :2], roi.crop_to_frame[:, 2]
            xy = pts[:, :2] @ a.T.astype(np.float32) + b.astype(np.float32)
            z = pts[:, 2:3] * np.float32(roi.size / INPUT_SIZE)
            result.append(FaceLandmarks(np.hstack([xy, z]), float(p)))
        return result
