"""The native TensorRT backend (route tensorrt-native) against a fake of TensorRT's documented
Python API (tests/fake_trt.py: 10.x and 11.x), whose engines run the ONNX graph with ONNX
Runtime, so every output here is a real computation read back through "device" memory.
TensorRT itself never ran in this project: this checks the backend's calls, not TensorRT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from emolive.runtime import backends
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.backends.trt_api import ShapeRanges
from tests.fake_trt import install
from tests.helpers import tiny_onnx

TRT = RuntimeConfig(backend="trt", device="tensorrt")
VERSIONS = ["10.3.0", "11.4.0"]  # JetPack 6's TensorRT, and the strongly typed 11.x
SMALL = ShapeRanges(max_batch=4, max_context=16, max_prefill=8)


@pytest.fixture(params=VERSIONS)
def fake(request, monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIVE_TRT_CACHE", str(tmp_path / "cache"))
    trt, cuda = install(monkeypatch, request.param)
    return trt, cuda


def _ort(path, feeds):
    return backends.load("ort", path, "fp32").run(feeds)


def kv_graph(path):
    """A decoder-shaped graph: embeds [b, sequence, 8], a KV cache [b, 2, past_sequence, 4],
    mask [b, total_sequence] -> logits [b, sequence, 5], present [b, 2, past + sequence, 4]."""
    rng = np.random.default_rng(1)
    f32 = TensorProto.FLOAT
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 5)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), "Wk"),
        numpy_helper.from_array(np.array([0, 0, 2, 4], np.int64), "split_heads"),
    ]
    nodes = [
        helper.make_node("MatMul", ["embeds", "W"], ["logits"]),
        helper.make_node("MatMul", ["embeds", "Wk"], ["k"]),
        helper.make_node("Reshape", ["k", "split_heads"], ["k4"]),
        helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["past", "kt"], ["present"], axis=2),
        helper.make_node("Cast", ["mask"], ["maskf"], to=f32),
        helper.make_node("ReduceSum", ["maskf"], ["seen"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "kv",
        [helper.make_tensor_value_info("embeds", f32, ["batch", "sequence", 8]),
         helper.make_tensor_value_info("past", f32, ["batch", 2, "past_sequence", 4]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "total_sequence"])],
        [helper.make_tensor_value_info("logits", f32, ["batch", "sequence", 5]),
         helper.make_tensor_value_info("present", f32, ["batch", 2, "present_sequence", 4]),
         helper.make_tensor_value_info("seen", f32, [])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_graph_runs_by_name_and_agrees_with_onnx_runtime(fake, tmp_path):
    trt, _ = fake
    path = tiny_onnx(tmp_path / "g.onnx")
    graph = backends.load(TRT, path, "fp32")
    assert graph.input_names == ["x"] and graph.output_names == ["y"]
    assert graph.info["route"] == "tensorrt-native"
    assert graph.info["providers"][0].startswith(f"TensorRT {trt.__version__[:4]}")
    for batch in (1, 3, 16):
        x = np.random.default_rng(batch).normal(size=(batch, 4)).astype(np.float32)
        np.testing.assert_allclose(graph.run({"x": x})["y"], _ort(path, {"x": x})["y"], 1e-6)


def test_buffers_are_allocated_once_at_load(fake, tmp_path):
    _, cuda = fake
    graph = backends.load(TRT, tiny_onnx(tmp_path / "g.onnx"), "fp32")
    after_load = cuda.mallocs
    assert after_load == 2  # x and y, each sized for batch 16 (the profile's max)
    for batch in (16, 1, 7, 2):
        graph.run({"x": np.ones((batch, 4), np.float32)})
    assert cuda.mallocs == after_load


def test_precision_goes_through_flags_on_10_and_the_graph_on_11(fake, tmp_path):
    trt, _ = fake
    backends.load(TRT, tiny_onnx(tmp_path / "g.onnx"), "fp16")
    build = trt.builds[-1]
    if trt.__version__.startswith("10."):
        assert build["flags"] == ["FP16"] and build["network_flags"] == 0
    else:  # 11.x: no precision flags exist; the strongly typed flag is set (and harmless)
        assert build["flags"] == [] and build["network_flags"] == 1 << 5


def test_engines_are_cached_per_graph_and_tensorrt_version(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIVE_TRT_CACHE", str(tmp_path / "cache"))
    path = tiny_onnx(tmp_path / "g.onnx")
    trt, _ = install(monkeypatch, "10.3.0")
    first = backends.load(TRT, path, "fp32").engine_file
    backends.load(TRT, path, "fp32")
    assert len(trt.builds) == 1  # the second load read the cached engine
    tiny_onnx(path, out_name="y", opset=18)  # the graph changed: a new engine
    assert backends.load(TRT, path, "fp32").engine_file != first and len(trt.builds) == 2
    trt11, _ = install(monkeypatch, "11.4.0")  # another TensorRT never reads 10.3's engine
    assert backends.load(TRT, path, "fp32").engine_file.name not in {first.name}
    assert len(trt11.builds) == 1
    assert len(list((tmp_path / "cache").glob("*.engine"))) == 3


def test_the_kv_cache_gets_prefill_and_decode_profiles(fake, tmp_path):
    trt, _ = fake
    path = kv_graph(tmp_path / "kv.onnx")
    graph = backends.load(TRT, path, "fp32", ranges=SMALL)
    prefill, decode = trt.builds[-1]["profiles"]
    assert prefill["embeds"] == [[1, 1, 8], [1, 8, 8], [4, 8, 8]]
    assert decode["embeds"] == [[1, 1, 8], [1, 1, 8], [4, 1, 8]]
    assert prefill["past"][2] == decode["past"][2] == [4, 2, 16, 4]  # the cache's range
    assert decode["past"][0] == [1, 2, 0, 4] and decode["mask"][0] == [1, 1]
    rng = np.random.default_rng(0)
    for seq, past in ((6, 0), (1, 6), (1, 15), (3, 7)):
        feeds = {
            "embeds": rng.normal(size=(1, seq, 8)).astype(np.float32),
            "past": rng.normal(size=(1, 2, past, 4)).astype(np.float32),
            "mask": np.ones((1, past + seq), np.int64),
        }
        chosen = graph.context_for({k: v.shape for k, v in feeds.items()})
        assert chosen is graph.contexts[1 if seq == 1 else 0]
        got, want = graph.run(feeds), _ort(path, feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], 1e-5)
    with pytest.raises(ValueError, match="outside every optimization profile"):
        graph.run({"embeds": np.zeros((1, 9, 8), np.float32),
                   "past": np.zeros((1, 2, 0, 4), np.float32), "mask": np.ones((1, 9), np.int64)})  # fmt: skip


def test_binding_keeps_the_cache_in_device_buffers(fake, tmp_path):
    path = kv_graph(tmp_path / "kv.onnx")
    graph = backends.load(TRT, path, "fp32", ranges=SMALL)
    past = np.random.default_rng(2).normal(size=(1, 2, 5, 4)).astype(np.float32)
    embeds = np.random.default_rng(3).normal(size=(1, 1, 8)).astype(np.float32)
    past_buf = graph.buffer(past.shape, np.float32)
    past_buf.numpy()  # zeroed at allocation
    graph._cudart.cudaMemcpy(past_buf.ptr, past.ctypes.data, past.nbytes,
                             graph._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)  # fmt: skip
    present = graph.buffer((1, 2, 6, 4), np.float32)
    logits = graph.buffer((1, 1, 5), np.float32)
    b = graph.binding()
    b.bind_input("past", past_buf)
    b.bind_input("embeds", embeds)
    b.bind_input("mask", np.ones((1, 6), np.int64))
    b.bind_output("present", present)
    b.bind_output("logits", logits)
    b.run()
    want = _ort(path, {"embeds": embeds, "past": past, "mask": np.ones((1, 6), np.int64)})
    np.testing.assert_allclose(present.numpy(), want["present"], 1e-6)
    np.testing.assert_allclose(logits.numpy(), want["logits"], 1e-6)


def qdq_graph(path):
    """x -> QuantizeLinear -> DequantizeLinear -> MatMul W: an explicit-int8 (Q/DQ) graph."""
    tiny_onnx(path)
    model = onnx.load(str(path))
    model.graph.initializer.extend([
        numpy_helper.from_array(np.float32(0.02), "scale"),
        numpy_helper.from_array(np.int8(0), "zero"),
    ])  # fmt: skip
    model.graph.node[0].input[0] = "xdq"
    model.graph.node.insert(
        0, helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xdq"])
    )
    model.graph.node.insert(0, helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]))
    onnx.save(model, str(path))
    return path


def test_int8_is_explicit_q_dq_only(fake, tmp_path):
    trt, _ = fake
    with pytest.raises(ValueError, match="needs a Q/DQ graph.*emo-live calibrate"):
        backends.load(TRT, tiny_onnx(tmp_path / "plain.onnx"), "int8")
    path = qdq_graph(tmp_path / "qdq.onnx")
    graph = backends.load(TRT, path, "int8")
    expected = ["INT8", "FP16"] if trt.__version__.startswith("10.") else []
    assert trt.builds[-1]["flags"] == expected
    x = np.random.default_rng(4).normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(graph.run({"x": x})["y"], _ort(path, {"x": x})["y"], 1e-6)


def test_contrib_ops_are_refused_by_the_parser_with_the_node_named(fake, tmp_path):
    path = tiny_onnx(tmp_path / "g.onnx")
    model = onnx.load(str(path))
    model.graph.node[0].CopyFrom(
        helper.make_node("FusedMatMul", ["x", "W"], ["h"], "attn", domain="com.microsoft")
    )
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(path))
    with pytest.raises(RuntimeError, match="could not parse .*com.microsoft.FusedMatMul"):
        backends.load(TRT, path, "fp32")


def test_without_tensorrt_the_message_says_what_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    with pytest.raises(backends.DeviceUnavailable, match="tensorrt-native.*--backend ort"):
        backends.load(TRT, tiny_onnx(tmp_path / "g.onnx"), "fp32")


def test_dla_is_an_option_for_fp16_and_int8_on_10x(fake, tmp_path, monkeypatch):
    trt, _ = fake
    path = tiny_onnx(tmp_path / "g.onnx")
    if not trt.__version__.startswith("10."):
        with pytest.raises(ValueError, match="DLA is offered with TensorRT 10.x"):
            backends.load(TRT, path, "fp16", dla_core=0)
        return
    with pytest.raises(ValueError, match="DLA runs fp16 or int8 graphs, not fp32"):
        backends.load(TRT, path, "fp32", dla_core=0)
    monkeypatch.setenv("EMOLIVE_TRT_DLA_CORE", "1")
    graph = backends.load(TRT, path, "fp16")
    build = trt.builds[-1]
    assert build["device_type"] == "DLA" and build["dla_core"] == 1
    assert "GPU_FALLBACK" in build["flags"] and "DLA core 1" in graph.info["providers"][0]
    gpu_engine = backends.load(TRT, path, "fp16", dla_core=None)  # the env var still says DLA
    assert gpu_engine.engine_file == graph.engine_file
    # fp32 graphs (the VAD, a gate's fallback) stay on the GPU whatever the variable says.
    fp32 = backends.load(TRT, path, "fp32")
    assert trt.builds[-1]["device_type"] != "DLA" and "DLA" not in fp32.info["providers"][0]
    monkeypatch.setenv("EMOLIVE_TRT_DLA_CORE", "zero")
    with pytest.raises(ValueError, match="EMOLIVE_TRT_DLA_CORE='zero'"):
        backends.load(TRT, path, "fp16")
    monkeypatch.delenv("EMOLIVE_TRT_DLA_CORE")
    assert backends.load(TRT, path, "fp16").engine_file != graph.engine_file


def test_a_damaged_cached_engine_is_rebuilt_and_weights_beside_the_graph_key_it(fake, tmp_path):
    import onnx
    from onnx import numpy_helper

    trt, _ = fake
    path = tiny_onnx(tmp_path / "g.onnx")
    first = backends.load(TRT, path, "fp32")
    first.engine_file.write_bytes(b"not an engine")  # e.g. a writer killed mid-way
    builds = len(trt.builds)
    again = backends.load(TRT, path, "fp32")
    assert len(trt.builds) == builds + 1 and again.engine is not None
    # Weights in an external file: new weights, same .onnx bytes, a different engine.
    model = onnx.load(str(path))
    onnx.save(model, str(tmp_path / "e.onnx"), save_as_external_data=True,
              location="e.onnx.data", size_threshold=0)  # fmt: skip
    a = backends.load(TRT, tmp_path / "e.onnx", "fp32").engine_file
    model = onnx.load(str(path))  # the first save moved its weights out: start afresh
    w = model.graph.initializer[0]
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 2, w.name))
    onnx.save(model, str(tmp_path / "e.onnx"), save_as_external_data=True,
              location="e.onnx.data", size_threshold=0)  # fmt: skip
    b = backends.load(TRT, tmp_path / "e.onnx", "fp32").engine_file
    assert a != b
