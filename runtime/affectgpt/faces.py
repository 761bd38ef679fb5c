"""Face crops for AffectGPT's face model, cut live as its OpenFace crops were cut offline.

AffectGPT's face model was trained on OpenFace's similarity-aligned crops: 112×112, eye line
level, written with cv2 and read back in BGR, resized to 224 at load. Here the lite profile's
BlazeFace full-range (runtime/vision/detector.py) finds the faces of a frame; the main face
(the largest) is cut as a square of its box's long side plus ``MARGIN`` of it on every side,
turned about the box centre so the line between its eyes (BlazeFace keypoints 0 and 1) is
level, resampled once to 112×112 BGR. OpenFace fits 68 landmarks and a mean shape; this crop
places the face from the detector's box instead, so its framing is close to, not the same as,
OpenFace's (the margin is hand-set, not fitted).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from emolive.runtime.affectgpt import spec
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.names import FACE_DETECTOR_FULL
from emolive.runtime.parity import load_graph
from emolive.runtime.vision.detector import FULL_RANGE, FaceBox, FaceDetector

MARGIN = 0.1  # of the box's long side, on every side


def main_face(faces: list[FaceBox]) -> FaceBox | None:
    """The largest face: the person the window is about (None: no face)."""
    return max(faces, key=lambda f: f.width * f.height, default=None)


def face_crop(
    image_bgr: np.ndarray, face: FaceBox, size: int = spec.FACE_CROP, margin: float = MARGIN
) -> np.ndarray:
    """[size, size, 3] uint8 BGR: ``face`` squared, widened by ``margin``, eye line level."""
    side = max(face.width, face.height) * (1.0 + 2.0 * margin)
    if not side > 0:
        raise ValueError(f"face box {(face.x0, face.y0, face.x1, face.y1)} has no area")
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]  # the person's right, left eye
    tilt = math.degrees(math.atan2(ly - ry, lx - rx))
    cx, cy = face.centre
    # Rotate by the tilt about the box centre and scale the square to ``size``, then move
    # the centre to the crop's centre.
    m = cv2.getRotationMatrix2D((cx, cy), tilt, size / side)
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    return cv2.warpAffine(
        image_bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


class FaceCropper:
    """The bundle's full-range BlazeFace + ``face_crop``: a frame -> its main face's crop."""

    def __init__(
        self, detector: FaceDetector, info: dict | None = None, notes: list[str] | None = None
    ) -> None:
        self.detector = detector
        self.backend_info = {FACE_DETECTOR_FULL: dict(info or {})}
        self.notes = list(notes or [])  # the parity gate's, for the readings

    @classmethod
    def from_bundle(cls, bundle: Bundle, runtime: RuntimeConfig | None = None) -> FaceCropper:
        runtime = runtime or RuntimeConfig()
        if FACE_DETECTOR_FULL not in bundle.graphs:
            raise BundleError(
                bundle.root / "manifest.json",
                f"the face-crop model needs graph {FACE_DETECTOR_FULL!r}, which this bundle "
                "lacks: re-export it with the 'faces' stage",
            )
        gated = load_graph(bundle, FACE_DETECTOR_FULL, runtime)
        detector = FaceDetector(
            gated.runner, score_threshold=FULL_RANGE.min_score, model=FULL_RANGE
        )
        return cls(detector, gated.info, gated.notes)

    def crop(self, image_bgr: np.ndarray) -> np.ndarray | None:
        face = main_face(self.detector.detect(image_bgr))
        return None if face is None else face_crop(image_bgr, face)
