import importlib.util

import numpy as np
import pytest

from emolive.runtime import backends
from emolive.runtime.backends.trt import engine_key
from tests.helpers import tiny_onnx


def test_ort_backend_runs_a_graph(tmp_path):
    import onnx
    from onnx import numpy_helper

    path = tiny_onnx(tmp_path / "g.onnx")
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    g = backends.load("ort", path, "fp32", threads=1)
    assert g.input_names == ["x"] and g.output_names == ["y"] and g.device == "cpu"
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        g.run({"x": x})["y"], x @ inits["W"] + inits["b"], rtol=1e-5, atol=1e-5
    )


def test_unknown_backend_and_device_are_named(tmp_path):
    path = tiny_onnx(tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        backends.load("tflite", path, "fp32")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backends.load("ort", path, "fp32", device="tpu")


def test_missing_provider_says_what_to_install(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(RuntimeError, match=r"no CUDAExecutionProvider.*emo-live\[gpu\]"):
        backends.load("ort", tiny_onnx(tmp_path / "g.onnx"), "fp32", device="cuda")


def test_corrupt_graph_names_the_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(RuntimeError, match="could not load .*bad.onnx"):
        backends.load("ort", bad, "fp32")


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed"
)
def test_trt_backend_without_tensorrt_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="needs the tensorrt package"):
        backends.load("trt", tiny_onnx(tmp_path / "g.onnx"), "int8", device="tensorrt")


def test_engine_key_changes_with_everything_that_changes_the_engine():
    base = ("NVIDIA H100", "90", "10.3.0", "int8", "a" * 64)
    keys = {engine_key(*base)}
    for i, other in enumerate(("Orin", "87", "10.4.0", "fp16", "b" * 64)):
        changed = list(base)
        changed[i] = other
        keys.add(engine_key(*changed))
    assert len(keys) == 6 and engine_key(*base) == engine_key(*base)


@pytest.mark.trt
def test_trt_engine_matches_onnx_runtime(tmp_path):
    path = tiny_onnx(tmp_path / "g.onnx")
    x = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    want = backends.load("ort", path, "fp32").run({"x": x})["y"]
    got = backends.load("trt", path, "fp32", device="tensorrt").run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_ort_cuda_matches_cpu(tmp_path):
    path = tiny_onnx(tmp_path / "g.onnx")
    x = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    want = backends.load("ort", path, "fp32").run({"x": x})["y"]
    got = backends.load("ort", path, "fp32", device="cuda").run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_runner_info_says_what_ran(tmp_path):
    g = backends.load(backends.RuntimeConfig(threads=1), tiny_onnx(tmp_path / "g.onnx"), "fp32")
    assert g.info == {
        "backend": "ort",
        "route": "onnxruntime-cpu",
        "device": "cpu",
        "precision": "fp32",
        "providers": ["CPUExecutionProvider"],
    }
    assert g.dtypes == {"x": np.float32, "y": np.float32}


def test_the_two_tensorrt_routes_have_distinct_names():
    assert backends.route_of("ort", "tensorrt") == "onnxruntime-tensorrt-ep"
    assert backends.route_of("trt", "tensorrt") == "tensorrt-native"
    assert len(set(backends.ROUTES.values())) == len(backends.ROUTES)
    with pytest.raises(ValueError, match="tensorrt-native.*run on device 'tensorrt'"):
        backends.route_of("trt", "cpu")


def test_buffers_and_binding_run_in_place(tmp_path):
    g = backends.load("ort", tiny_onnx(tmp_path / "g.onnx"), "fp32", threads=1)
    out = g.buffer((5, 3), np.float32)
    assert out.shape == (5, 3) and not out.numpy().any()
    x = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    b = g.binding()
    b.bind_input("x", x)
    b.bind_output("y", out)
    b.run()
    np.testing.assert_array_equal(out.numpy(), g.run({"x": x})["y"])
    # A device buffer as an input: the same numbers through the binding.
    xin = g.buffer((5, 4), np.float32)
    xin.numpy()[...] = x
    b.bind_input("x", xin)
    b.run()
    np.testing.assert_array_equal(out.numpy(), g.run({"x": x})["y"])


@pytest.mark.gpu
def test_cuda_buffers_hold_the_binding(tmp_path):
    g = backends.load("ort", tiny_onnx(tmp_path / "g.onnx"), "fp32", device="cuda")
    assert g.info["route"] == "onnxruntime-cuda" and "fallback" not in g.info
    x = np.random.default_rng(5).normal(size=(2, 4)).astype(np.float32)
    out = g.buffer((2, 3), np.float32)
    b = g.binding()
    b.bind_input("x", x)
    b.bind_output("y", out)
    b.run()
    want = backends.load("ort", tiny_onnx(tmp_path / "c.onnx"), "fp32").run({"x": x})["y"]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
