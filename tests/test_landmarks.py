import math

import cv2
import numpy as np
import pytest

from emolive.runtime.vision.detector import FaceBox
from emolive.runtime.vision.landmarks import (
    INPUT_SIZE,
    MESH_LEFT_EYE_INNER,
    MESH_LEFT_EYE_OUTER,
    MESH_LOWER_LIP,
    MESH_MOUTH_LEFT,
    MESH_MOUTH_RIGHT,
    MESH_NOSE_TIP,
    MESH_RIGHT_EYE_INNER,
    MESH_RIGHT_EYE_OUTER,
    MESH_UPPER_LIP,
    NUM_LANDMARKS,
    FaceLandmarker,
    face_roi,
)

# Fixtures: vision_graphs, detector, tiled_detector, landmarker, *_bgr images, media_bgr.


def _box(x0=100.0, y0=50.0, x1=200.0, y1=170.0, eyes=((130.0, 90.0), (170.0, 90.0))) -> FaceBox:
    kps = np.zeros((6, 2), np.float32)
    kps[0], kps[1] = eyes
    return FaceBox(x0, y0, x1, y1, 0.9, kps)


# --- the ROI, no weights ----------------------------------------------------------------


def test_roi_is_square_scaled_and_centred_on_the_box():
    roi = face_roi(_box())
    assert roi.rotation == pytest.approx(0.0)
    assert roi.size == pytest.approx(1.5 * 120)  # long side of a 100 x 120 box
    centre = roi.crop_to_frame @ np.array([INPUT_SIZE / 2, INPUT_SIZE / 2, 1.0])
    np.testing.assert_allclose(centre, [150, 110])
    corner = roi.crop_to_frame @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(corner, [150 - 90, 110 - 90])


def test_roi_turns_with_the_eye_line():
    # Left eye (image right) lower than the right eye: the head rolls clockwise on screen.
    roi = face_roi(_box(eyes=((130.0, 90.0), (170.0, 130.0))))
    assert roi.rotation == pytest.approx(math.pi / 4)
    # the crop's x axis runs along the eye line
    step = roi.crop_to_frame[:, :2] @ np.array([1.0, 0.0])
    assert step[0] == pytest.approx(step[1]) and step[0] > 0


def test_crop_samples_the_frame_where_the_roi_says(landmarker):
    frame = np.zeros((300, 300, 3), np.uint8)
    frame[100:120, 140:160] = (0, 0, 255)  # red square at the box centre (150, 110)
    x = landmarker.crop(frame, face_roi(_box()))
    assert x.shape == (3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    red = np.argwhere(x[0] > 0.5)  # RGB channel 0
    np.testing.assert_allclose(red.mean(0), [INPUT_SIZE / 2, INPUT_SIZE / 2], atol=1.0)
    assert 0.0 <= x.min() and x.max() <= 1.0


# --- the real FaceMesh graph ------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_face(detector, astronaut_bgr):
    return detector.detect(astronaut_bgr)[0]


@pytest.mark.weights
def test_astronaut_landmarks_sit_on_her_face(landmarker, astronaut_bgr, astronaut_face):
    marks = landmarker.landmarks(astronaut_bgr, astronaut_face)
    p = marks.points
    assert p.shape == (NUM_LANDMARKS, 3) and p.dtype == np.float32
    assert marks.presence > 0.9
    box = astronaut_face
    # The mesh reaches the forehead, a little above BlazeFace's box; allow a quarter box.
    mx, my = 0.25 * box.width, 0.25 * box.height
    assert p[:, 0].min() > box.x0 - mx and p[:, 0].max() < box.x1 + mx
    assert p[:, 1].min() > box.y0 - my and p[:, 1].max() < box.y1 + my
    inner = [MESH_RIGHT_EYE_OUTER, MESH_LEFT_EYE_OUTER, MESH_NOSE_TIP, MESH_UPPER_LIP]
    assert np.all((p[inner, 0] > box.x0) & (p[inner, 0] < box.x1))
    assert np.all((p[inner, 1] > box.y0) & (p[inner, 1] < box.y1))


@pytest.mark.weights
def test_eyes_nose_and_mouth_are_in_the_right_order(landmarker, astronaut_bgr, astronaut_face):
    p = landmarker.landmarks(astronaut_bgr, astronaut_face).points
    x, y = p[:, 0], p[:, 1]
    # the person's right eye is on the image's left
    assert x[MESH_RIGHT_EYE_OUTER] < x[MESH_RIGHT_EYE_INNER] < x[MESH_LEFT_EYE_INNER]
    assert x[MESH_LEFT_EYE_INNER] < x[MESH_LEFT_EYE_OUTER]
    assert x[MESH_MOUTH_RIGHT] < x[MESH_NOSE_TIP] < x[MESH_MOUTH_LEFT]
    eyes_y = max(y[MESH_RIGHT_EYE_OUTER], y[MESH_LEFT_EYE_OUTER])
    assert eyes_y < y[MESH_NOSE_TIP] < y[MESH_UPPER_LIP] < y[MESH_LOWER_LIP]
    # the mesh's eye centres agree with the detector's eye keypoints
    kp = astronaut_face.keypoints
    right = p[[MESH_RIGHT_EYE_OUTER, MESH_RIGHT_EYE_INNER], :2].mean(0)
    left = p[[MESH_LEFT_EYE_INNER, MESH_LEFT_EYE_OUTER], :2].mean(0)
    tol = 0.1 * astronaut_face.width
    assert np.linalg.norm(right - kp[0]) < tol and np.linalg.norm(left - kp[1]) < tol
    # the nose tip is nearer the camera (smaller z) than the eye corners
    assert p[MESH_NOSE_TIP, 2] < p[[MESH_RIGHT_EYE_OUTER, MESH_LEFT_EYE_OUTER], 2].min()


@pytest.mark.weights
def test_landmarks_turn_with_a_rolled_head(detector, landmarker, astronaut_bgr):
    base = landmarker.landmarks(astronaut_bgr, detector.detect(astronaut_bgr)[0]).points
    turn = cv2.getRotationMatrix2D((256.0, 256.0), 30.0, 1.0)
    rolled = cv2.warpAffine(astronaut_bgr, turn, (512, 512))
    faces = detector.detect(rolled)
    assert len(faces) == 1
    got = landmarker.landmarks(rolled, faces[0]).points
    want = base[:, :2] @ turn[:, :2].T + turn[:, 2]
    # the ROI follows the eye line, so the mesh stays put relative to the face
    assert np.abs(got[:, :2] - want).mean() < 2.0


@pytest.mark.weights
def test_several_faces_in_one_run_match_one_at_a_time(tiled_detector, landmarker, multi_face_bgr):
    faces = tiled_detector.detect(multi_face_bgr)
    together = landmarker.landmarks_many(multi_face_bgr, faces)
    assert len(together) == len(faces) == 5
    for face, marks in zip(faces, together, strict=True):
        alone = landmarker.landmarks(multi_face_bgr, face)
        np.testing.assert_allclose(marks.points, alone.points, atol=1e-3)
        assert marks.presence > 0.9
    assert landmarker.landmarks_many(multi_face_bgr, []) == []


@pytest.mark.weights
def test_presence_is_low_where_there_is_no_face(landmarker, mountain_bgr):
    sky = _box(800, 100, 1100, 400, eyes=((880, 200), (1020, 200)))
    assert landmarker.landmarks(mountain_bgr, sky).presence < 0.5


class _FakeRunner:
    input_names = ["image"]
    output_names = ["landmarks"]


def test_landmarker_refuses_a_graph_with_other_tensor_names():
    with pytest.raises(ValueError, match="lacks tensors"):
        FaceLandmarker(_FakeRunner())


@pytest.mark.weights
def test_bad_inputs_raise_named_errors(landmarker, astronaut_bgr):
    with pytest.raises(ValueError, match="frame_bgr is None"):
        landmarker.landmarks(None, _box())
    with pytest.raises(ValueError, match="frame_bgr has shape"):
        landmarker.landmarks(astronaut_bgr[..., 0], _box())
    with pytest.raises(ValueError, match=r"box\[0\] is a tuple"):
        landmarker.landmarks(astronaut_bgr, (0, 0, 10, 10))
    with pytest.raises(ValueError, match=r"box\[0\] has no area"):
        landmarker.landmarks(astronaut_bgr, _box(x1=100.0))
    bad_kps = FaceBox(0, 0, 10, 10, 0.9, np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"box\[0\]\.keypoints"):
        landmarker.landmarks(astronaut_bgr, bad_kps)
