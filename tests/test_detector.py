import cv2
import numpy as np
import pytest

from emolive.runtime.vision.detector import (
    NUM_ANCHORS,
    FaceBox,
    FaceDetector,
    letterbox,
    ssd_anchors,
    weighted_nms,
)

# Fixtures: vision_graphs, detector, tiled_detector, landmarker, *_bgr images, media_bgr.

# --- pure functions, no weights ---------------------------------------------------------


def test_anchor_layout_matches_blazeface_short_range():
    anchors = ssd_anchors()
    assert anchors.shape == (NUM_ANCHORS, 2)
    # stride 8: 16x16 cells, 2 anchors each, row-major from the top-left cell centre
    np.testing.assert_allclose(anchors[0], anchors[1])
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    # stride 16: 8x8 cells, 3 layers x 2 anchors = 6 per cell
    assert np.allclose(anchors[512:518], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_letterbox_maps_input_pixels_back_to_the_frame():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:200, 300:400] = (255, 0, 0)  # blue square in BGR
    canvas, lb = letterbox(frame)
    assert canvas.shape == (128, 128, 3)
    ys, xs = np.nonzero(canvas[..., 2] > 128)  # blue lands in channel 2 of RGB
    corners = lb.to_frame(np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], float))
    np.testing.assert_allclose(corners, [[300, 100], [400, 200]], atol=5)
    assert canvas[:10].max() == 0 and canvas[-10:].max() == 0  # padding rows are black


def test_weighted_nms_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    kps[1] += 10.0
    out = weighted_nms(boxes, scores, kps, iou=0.3, max_out=16)
    assert len(out) == 2
    box, score, points = out[0]
    assert score == pytest.approx(0.9)
    np.testing.assert_allclose(box, (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(points, 10.0 * 0.6 / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out[1][0], boxes[2])
    assert len(weighted_nms(boxes, scores, kps, iou=0.3, max_out=1)) == 1


class _FakeRunner:
    input_names = ["frame"]
    output_names = ["boxes"]


def test_detector_refuses_a_graph_with_other_tensor_names():
    with pytest.raises(ValueError, match="lacks tensors"):
        FaceDetector(_FakeRunner())


# --- the real BlazeFace graph -----------------------------------------------------------


def _box_contains(face: FaceBox, points: np.ndarray) -> bool:
    x, y = points[..., 0], points[..., 1]
    return bool(np.all((x >= face.x0) & (x <= face.x1) & (y >= face.y0) & (y <= face.y1)))


@pytest.mark.weights
def test_finds_the_astronauts_face(detector, astronaut_bgr):
    faces = detector.detect(astronaut_bgr)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    h, w = astronaut_bgr.shape[:2]
    # Her face is about a fifth of the 512 px photo, in the upper middle.
    assert 0.1 * w < face.width < 0.35 * w and 0.1 * h < face.height < 0.35 * h
    assert 0.25 * w < face.centre[0] < 0.65 * w and face.centre[1] < 0.45 * h
    assert face.keypoints.shape == (6, 2)
    assert _box_contains(face, face.keypoints[:4])  # eyes, nose, mouth
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    assert right_eye[0] < left_eye[0]  # the person's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


@pytest.mark.weights
def test_boxes_follow_the_face_when_the_frame_moves(detector, astronaut_bgr):
    base = detector.detect(astronaut_bgr)[0]
    dx, dy = 60, 40  # same frame size, content shifted right/down: same letterbox scale
    shifted = np.zeros_like(astronaut_bgr)
    shifted[dy:, dx:] = astronaut_bgr[:-dy, :-dx]
    moved = detector.detect(shifted)
    assert len(moved) == 1
    got = np.array([moved[0].x0, moved[0].y0, moved[0].x1, moved[0].y1])
    want = np.array([base.x0 + dx, base.y0 + dy, base.x1 + dx, base.y1 + dy])
    tol = 0.05 * base.width  # the anchor grid is coarse; the box may settle a pixel or two off
    np.testing.assert_allclose(got, want, atol=tol)
    np.testing.assert_allclose(moved[0].keypoints - [dx, dy], base.keypoints, atol=tol)


@pytest.mark.weights
def test_finds_the_five_people_in_multi_face_with_tiles(detector, tiled_detector, multi_face_bgr):
    # One pass finds some of them: their faces are ~10% of the frame, small for short-range.
    assert 1 <= len(detector.detect(multi_face_bgr)) <= 5
    faces = tiled_detector.detect(multi_face_bgr)
    assert len(faces) == 5
    assert all(f.score > 0.8 for f in faces)
    h, w = multi_face_bgr.shape[:2]
    for f in faces:
        assert 0.05 * w < f.width < 0.2 * w
        assert _box_contains(f, f.keypoints[:2])
    centres = np.array([f.centre for f in faces])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(5) * 1e9
    assert gaps.min() > 0.05 * w  # five different faces, not one face found twice


def _mosaic_of_faces(detector, media_bgr, cols=4, rows=3, cell=200) -> np.ndarray:
    """Ten real faces in one frame: five photos' faces and their mirror images."""
    names = ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"]
    crops = []
    for name in [*names, "single_face.jpg"]:
        image = media_bgr(name)
        box = detector.detect(image)[0]
        (cx, cy), r = box.centre, 0.75 * max(box.width, box.height)
        x0, y0 = int(max(cx - r, 0)), int(max(cy - r, 0))
        crops.append(image[y0 : int(cy + r), x0 : int(cx + r)])
    crops += [c[:, ::-1] for c in crops]
    frame = np.full((rows * cell, cols * cell, 3), 90, np.uint8)
    for i, crop in enumerate(crops):
        r, c = divmod(i, cols)
        frame[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = cv2.resize(
            np.ascontiguousarray(crop), (cell, cell)
        )
    return frame


@pytest.mark.weights
def test_ten_faces_in_one_frame(detector, media_bgr):
    frame = _mosaic_of_faces(detector, media_bgr)
    faces = detector.detect(frame)
    assert len(faces) == 10
    cells = {(int(f.centre[0] // 200), int(f.centre[1] // 200)) for f in faces}
    assert len(cells) == 10  # one face per mosaic cell
    few = FaceDetector(detector.runner, max_faces=4).detect(frame)
    assert len(few) == 4
    assert min(f.score for f in few) >= sorted(f.score for f in faces)[-4] - 1e-6


@pytest.mark.weights
def test_no_face_in_the_mountain_picture(detector, tiled_detector, mountain_bgr):
    assert detector.detect(mountain_bgr) == []
    assert tiled_detector.detect(mountain_bgr) == []


@pytest.mark.weights
def test_a_blank_frame_has_no_face(detector):
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect(np.full((1, 1, 3), 255, np.uint8)) == []


@pytest.mark.weights
@pytest.mark.parametrize(
    "frame, why",
    [
        (None, "is None"),
        ([[0, 0, 0]], "numpy array"),
        (np.zeros((48, 64, 3), np.float32), "dtype float32"),
        (np.zeros((48, 64), np.uint8), r"shape \(48, 64\)"),
        (np.zeros((48, 64, 4), np.uint8), "HxWx3"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
    ],
)
def test_bad_frames_raise_a_named_error(detector, frame, why):
    with pytest.raises(ValueError, match=f"frame_bgr.*{why}"):
        detector.detect(frame)


@pytest.mark.weights
@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"nms_iou": 0.0}, "nms_iou"),
        ({"max_faces": 0}, "max_faces"),
        ({"tiles": 4}, "tiles"),
    ],
)
def test_bad_settings_raise_a_named_error(detector, kwargs, field):
    with pytest.raises(ValueError, match=field):
        FaceDetector(detector.runner, **kwargs)
