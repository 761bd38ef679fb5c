import numpy as np

from emolive.runtime.vision.tracker import FaceTracker, iou_matrix


def test_iou_known_values():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_ids_follow_moving_faces_and_new_faces_get_new_ids():
    tr = FaceTracker()
    left, right = np.array([0, 0, 100, 100.0]), np.array([300, 0, 400, 100.0])
    assert tr.update(np.stack([left, right]), 0.0) == [1, 2]
    # Both move a little and come back in the other order: ids stay with the faces.
    assert tr.update(np.stack([right + 8, left + 8]), 0.033) == [2, 1]
    third = np.array([150, 200, 250, 300.0])
    assert tr.update(np.stack([left + 16, third]), 0.066) == [1, 3]


def test_tracks_expire_after_the_gap():
    tr = FaceTracker(max_gap_s=0.5)
    box = np.array([[0, 0, 100, 100.0]])
    assert tr.update(box, 0.0) == [1]
    assert tr.update(np.zeros((0, 4)), 0.2) == []
    assert tr.update(box, 0.4) == [1]
    assert tr.update(box, 1.5) == [2]
