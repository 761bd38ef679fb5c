import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from emolive.export.checks import (
    CheckMedia,
    ExportCheckError,
    TfliteReference,
    check_blazeface,
    check_facemesh,
    find_faces,
)
from emolive.export.mediapipe import BLAZEFACE, FACEMESH, SOURCE, convert, prelu_as_elementwise
from emolive.export.sources import fetch
from emolive.runtime.bundle import MAX_OPSET, MIN_OPSET, Bundle
from emolive.runtime.names import (
    EXPRESSION,
    FACE_DETECTOR,
    FACE_DETECTOR_BOXES,
    FACE_DETECTOR_INPUT,
    FACE_DETECTOR_SCORES,
    FACE_LANDMARKS,
    FACE_LANDMARKS_POINTS,
    FACE_LANDMARKS_PRESENCE,
    FER_LABELS,
)

# Fixtures: vision_graphs, detector, tiled_detector, landmarker, *_bgr images, media_bgr.


@pytest.fixture(scope="module")
def mediapipe():
    return fetch(SOURCE)


@pytest.fixture(scope="module")
def few_frames(media_bgr, astronaut_bgr, multi_face_bgr) -> CheckMedia:
    names = ["single_face.jpg", "0-f15-hao-ph.jpg", "free-mountain-vector-01.jpg"]
    frames = [astronaut_bgr, multi_face_bgr] + [media_bgr(n) for n in names]
    return CheckMedia(frames, ["astronaut.png", "multi_face.jpg", *names])


@pytest.mark.weights
@pytest.mark.parametrize("spec", [BLAZEFACE, FACEMESH], ids=["blazeface", "facemesh"])
def test_converted_graphs_have_our_names_and_a_supported_opset(mediapipe, spec, tmp_path):
    path = convert(mediapipe.path(spec.tflite_file), spec, tmp_path / "g.onnx")
    model = onnx.load(str(path))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert MIN_OPSET <= opset <= MAX_OPSET
    assert [i.name for i in model.graph.input] == [spec.input_name]
    assert [o.name for o in model.graph.output] == list(spec.output_names.values())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, spec.input_size, spec.input_size]  # NCHW
    assert (dims[0].dim_param or dims[0].dim_value) == (spec.batch_axis or 1)


@pytest.mark.weights
def test_bundle_records_graphs_attrs_checks_and_sources(vision_bundle):
    bundle = Bundle.open(vision_bundle)
    det, mesh, expr = (bundle.graph(n) for n in (FACE_DETECTOR, FACE_LANDMARKS, EXPRESSION))
    assert [i["name"] for i in det.inputs] == [FACE_DETECTOR_INPUT]
    assert [o["name"] for o in det.outputs] == [FACE_DETECTOR_BOXES, FACE_DETECTOR_SCORES]
    assert [o["name"] for o in mesh.outputs] == [FACE_LANDMARKS_POINTS, FACE_LANDMARKS_PRESENCE]
    assert det.attrs["input_size"] == [128, 128] and det.attrs["anchors"]["count"] == 896
    assert mesh.attrs["input_size"] == [192, 192] and mesh.attrs["points"] == 468
    assert tuple(expr.attrs["labels"]) == FER_LABELS
    checks = bundle.manifest["graphs"]
    assert checks[EXPRESSION]["checks"]["tflite_top1_agreement"] >= 0.98
    assert checks[EXPRESSION]["checks"]["tflite_faces"] >= 100
    assert checks[FACE_LANDMARKS]["checks"]["tflite_faces"] >= 100
    assert checks[FACE_DETECTOR]["checks"]["max_abs_diff.scores"] < 1e-3
    assert {s["name"] for s in bundle.manifest["sources"]} >= {"fer", SOURCE}


@pytest.mark.weights
def test_blazeface_onnx_matches_the_tflite_on_real_photos(mediapipe, vision_graphs, few_frames):
    m = check_blazeface(
        FACE_DETECTOR,
        vision_graphs[FACE_DETECTOR],
        mediapipe.path(BLAZEFACE.tflite_file),
        few_frames,
    )
    assert m["tflite_frames"] == 5
    assert m["max_abs_diff.scores"] < 1e-4
    assert m["max_rel_diff.box_regressors"] < 1e-3


@pytest.mark.weights
def test_facemesh_onnx_matches_the_tflite_on_real_faces(
    mediapipe, vision_graphs, detector, few_frames
):
    faces = find_faces(detector, few_frames)
    n = sum(map(len, faces))
    assert n >= 3
    m = check_facemesh(
        FACE_LANDMARKS,
        vision_graphs[FACE_LANDMARKS],
        mediapipe.path(FACEMESH.tflite_file),
        few_frames,
        faces,
        min_faces=3,
    )
    assert m["tflite_faces"] == n
    assert m["max_abs_diff.landmarks_px"] < 1e-2  # 192-px units
    assert m["max_abs_diff.presence_logit"] < 1e-2
    assert m["batch_vs_single_max_abs_diff"] < 1e-4


@pytest.mark.weights
def test_tflite_reference_itself_sees_a_face(mediapipe, detector, astronaut_bgr):
    # Guards the check's premise: the reference graph, fed like the runtime, finds her too.
    x, _ = detector.preprocess(astronaut_bgr)
    _, logits = TfliteReference(mediapipe.path(BLAZEFACE.tflite_file)).run(x.transpose(0, 2, 3, 1))
    assert logits.max() > 2.0


@pytest.mark.weights
def test_the_check_catches_a_damaged_conversion(mediapipe, vision_graphs, few_frames, tmp_path):
    model = onnx.load(str(vision_graphs[FACE_DETECTOR]))
    weights = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    damaged = numpy_helper.to_array(weights).copy()
    damaged.flat[::7] *= 1.05  # a 5% error in every 7th weight of the largest tensor
    weights.CopyFrom(numpy_helper.from_array(damaged, weights.name))
    bad = tmp_path / "damaged.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ExportCheckError) as err:
        check_blazeface(FACE_DETECTOR, bad, mediapipe.path(BLAZEFACE.tflite_file), few_frames)
    assert err.value.graph == FACE_DETECTOR
    assert err.value.value > err.value.limit


@pytest.mark.parametrize(
    "slope", [[0.25, -0.5, 1.0], [0.25, 1.5, -1.1]], ids=["max", "min-mul-add"]
)
def test_prelu_rewrite_is_exact(slope, tmp_path):
    s = np.array(slope, np.float32).reshape(1, 3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "s"], ["y"])],
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 4])],
        initializer=[numpy_helper.from_array(s, "s")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert prelu_as_elementwise(model) == 1
    assert "PRelu" not in {n.op_type for n in model.graph.node}
    assert "s" not in {i.name for i in model.graph.initializer}  # the old slope is dropped
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, np.where(x > 0, x, s * x), rtol=1e-6, atol=1e-7)


@pytest.mark.weights
def test_converted_facemesh_has_no_prelu(vision_graphs):
    ops = {n.op_type for n in onnx.load(str(vision_graphs[FACE_LANDMARKS])).graph.node}
    assert "PRelu" not in ops and "Conv" in ops
