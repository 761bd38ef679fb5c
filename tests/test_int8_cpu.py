"""int8 forms are exact on every CPU class, including those whose u8×s8 kernels saturate.

On x86-64 without VNNI, MLAS adds pairs of u8·s8 products in 16 bits with saturation. Each
test builds a tiny graph whose pair sums would exceed 16 bits with full 8-bit weights, puts it
in the project's quantized form, and compares ONNX Runtime's answer with exact integer
arithmetic in numpy. On a VNNI / AMX / ARM64 machine the kernels never saturate, so the same
tests also check the invariant that makes the form safe on the others (7-bit Q/DQ weight codes;
no u8×s8 GEMM loaded on a saturating class), and the bug cannot come back unseen there.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from emolive.calibrate.qdq import QuantConfig, quantize_qdq
from emolive.export.llm.graph import linear_graph
from emolive.export.llm.quant import quantize_blocks, quantize_channels
from emolive.runtime.cpu import INT16_MAX, CpuInfo, classify, this_cpu
from emolive.runtime.int8 import (
    SAFE_WEIGHT_CODE,
    for_this_cpu,
    largest_weight_code,
    saturating_nodes,
)

K, N = 64, 16
AVX2 = CpuInfo("test AVX2-only CPU", "x86_64", "x86-64-avx2", ("avx2", "fma"))
VNNI = CpuInfo("test VNNI CPU", "x86_64", "x86-64-avx512-vnni", ("avx512f", "avx512_vnni"))


def _session(model) -> ort.InferenceSession:
    data = model if isinstance(model, str) else model.SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _float_graph(op: str, w: np.ndarray) -> onnx.ModelProto:
    """MatMul x[1,K] @ w[K,N], or a 1x1 Conv over K channels with N filters."""
    f32 = TensorProto.FLOAT
    if op == "MatMul":
        x_shape, y_shape, weight = [1, K], [1, N], w
    else:
        x_shape, y_shape, weight = [1, K, 2, 2], [1, N, 2, 2], w.T[:, :, None, None]
    node = helper.make_node(op, ["x", "w"], ["y"], name="layer")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", f32, x_shape)],
        [helper.make_tensor_value_info("y", f32, y_shape)],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _qdq_exact(model: onnx.ModelProto, x: np.ndarray, op: str) -> np.ndarray:
    """The Q/DQ graph's answer in exact integer arithmetic, from its own scales and codes."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = list(model.graph.node)
    xq_node = next(n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    w_node = next(n for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] in inits)
    layer = next(n for n in nodes if n.op_type == op)
    yq_node = next(
        n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] == layer.output[0]
    )
    sx, zx = inits[xq_node.input[1]], inits[xq_node.input[2]].astype(np.int64)
    codes, sw = inits[w_node.input[0]].astype(np.int64), inits[w_node.input[1]]
    sy, zy = inits[yq_node.input[1]], inits[yq_node.input[2]].astype(np.int64)
    xq = np.clip(np.round(x / sx) + zx, -128, 127) - zx
    if op == "MatMul":
        acc = xq @ codes  # [1, N]
        y = acc * sx * sw
    else:
        acc = np.einsum("bchw,oc->bohw", xq, codes[:, :, 0, 0])
        y = acc * sx * sw[None, :, None, None]
    yq = np.clip(np.round(y / sy) + zy, -128, 127)
    return ((yq - zy) * sy).astype(np.float32)


@pytest.mark.parametrize("op", ["MatMul", "Conv"])
def test_qdq_graph_is_exact_where_full_8_bit_pairs_would_saturate(op, tmp_path):
    rng = np.random.default_rng(0)
    w = np.where(rng.random((K, N)) < 0.5, 1.0, -1.0).astype(np.float32)
    x_shape = (1, K) if op == "MatMul" else (1, K, 2, 2)
    x = rng.uniform(0.6, 1.0, size=(8, *x_shape[1:])).astype(np.float32)
    onnx.save(_float_graph(op, w), str(tmp_path / "fp32.onnx"))
    config = QuantConfig(method="minmax", fp32_output_heads=False, preprocess=False)
    quantize_qdq(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", {"x": x}, config)
    model = onnx.load(str(tmp_path / "int8.onnx"))
    # With 8-bit codes these weights would be +-127: a pair of u8 activations near 255 sums
    # past 32767. The project's form keeps every code within 64.
    assert 2 * 255 * 127 > INT16_MAX >= 2 * 255 * largest_weight_code(model)
    assert largest_weight_code(model) == SAFE_WEIGHT_CODE
    got = _session(model).run(None, {"x": x[:1]})[0]
    want = _qdq_exact(model, x[:1], op)
    step = float(
        numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "y_scale"))
    )
    # Exact integers: only a rounding tie may move an output by one quantum.
    assert np.abs(got - want).max() <= step * 1.001, (got.ravel()[:4], want.ravel()[:4])
    # And close to the float layer (7-bit weights of +-1 are exact; activations are 8-bit).
    exact = x[:1] @ w if op == "MatMul" else np.einsum("bchw,co->bohw", x[:1], w)
    np.testing.assert_allclose(got, exact, rtol=0.02, atol=step)


def test_qdq_check_refuses_8_bit_codes(tmp_path):
    rng = np.random.default_rng(1)
    w = np.where(rng.random((K, N)) < 0.5, 1.0, -1.0).astype(np.float32)
    onnx.save(_float_graph("MatMul", w), str(tmp_path / "fp32.onnx"))
    x = rng.uniform(0.6, 1.0, size=(4, K)).astype(np.float32)
    config = QuantConfig(
        method="minmax", fp32_output_heads=False, preprocess=False, reduce_range=False
    )
    quantize_qdq(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", {"x": x}, config)
    # 8-bit codes: what the check in quantize_qdq guards against by default.
    assert largest_weight_code(onnx.load(str(tmp_path / "int8.onnx"))) == 127
    assert config.info()["weight_bits"] == 8 and QuantConfig().info()["weight_bits"] == 7


def _w8a8_exact(x: np.ndarray, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The w8a8 linear in exact integers: rows scaled to [-1, 1], uint8 over that range
    (DynamicQuantizeMatMul's own rule: scale 2/255, zero point 128), int8 weight codes."""
    rowmax = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-12)
    scale = np.float32(2.0) / np.float32(255.0)
    zero = 128
    xq = np.clip(np.round((x / rowmax).astype(np.float32) / scale) + zero, 0, 255).astype(np.int64)
    acc = (xq - zero) @ codes.astype(np.int64)
    return (acc * scale * scales * rowmax).astype(np.float32)


@pytest.mark.parametrize("cpu", [AVX2, VNNI, None], ids=["avx2", "vnni", "this-cpu"])
def test_w8a8_linear_is_exact_on_every_cpu_class(cpu, tmp_path):
    rng = np.random.default_rng(2)
    # Weights whose int8 codes are all +-127, activations that quantize near 255: every pair
    # of u8·s8 products is 2·255·127 > 32767 where both weights are positive.
    w = np.where(rng.random((N, K)) < 0.5, 1.0, -1.0).astype(np.float32)
    weight = quantize_channels(w)
    assert np.abs(weight.q.astype(np.int16)).max() == 127
    path = tmp_path / "linear.onnx"
    # Weights in a side file, as the bundle keeps the LLM's.
    onnx.save(
        linear_graph(weight, K), str(path), save_as_external_data=True,
        location="linear.onnx.data", size_threshold=1024,
    )  # fmt: skip
    assert (tmp_path / "linear.onnx.data").stat().st_size >= K * N  # the codes live there
    cpu = cpu or this_cpu()
    x = rng.uniform(0.9, 1.0, size=(1, 5, K)).astype(np.float32)
    x[0, 1] *= -1  # a negative row: codes near 0
    with for_this_cpu(path, cpu) as (source, note):
        if cpu.u8s8_saturates:
            assert source != str(path) and "u8×u8" in note
            assert saturating_nodes(onnx.load(source, load_external_data=False)) == []
        else:
            assert source == str(path) and note is None
            assert saturating_nodes(onnx.load(str(path))) == ["linear"]
        session = _session(source)
    got = session.run(None, {"x": x})[0]
    want = _w8a8_exact(x, weight.q, weight.scales)
    if cpu.u8s8_saturates or not this_cpu().u8s8_saturates:
        # The form loaded for this class is exact wherever this machine runs it.
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("bits", [8, 4])
def test_matmulnbits_with_int8_activations_is_exact_at_extreme_codes(bits):
    """The int8 / int4 forms' kernel (MatMulNBits, accuracy level 4: int8 activations)."""
    rng = np.random.default_rng(3)
    w = np.where(rng.random((N, K)) < 0.5, 1.0, -1.0).astype(np.float32)
    weight = quantize_blocks(w, bits=bits, block=32)  # codes at both ends of their range
    # Activations of the weights' signs: every product is +127 · 127 (8-bit) or +127 · 7.
    x = np.sign(w[None, :1, :]).repeat(3, axis=1).astype(np.float32)
    x[0, 1] *= -1
    got = _session(linear_graph(weight, K, accuracy_level=4)).run(None, {"x": x})[0]
    want = x @ w.T  # +-1 weights and activations are exact on both integer grids
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * K)


def test_cpu_classes():
    assert classify("x86_64", {"avx2", "fma"}) == "x86-64-avx2"
    assert classify("x86_64", {"avx2", "avx512bw", "avx512f"}) == "x86-64-avx512"
    assert classify("x86_64", {"avx2", "avx512bw", "avx512_vnni"}) == "x86-64-avx512-vnni"
    assert classify("x86_64", {"avx2", "avx_vnni"}) == "x86-64-avx-vnni"
    assert classify("x86_64", {"avx512_vnni", "amx_int8"}) == "x86-64-amx"
    assert classify("aarch64", {"asimddp"}) == "arm64"
    assert AVX2.u8s8_saturates and not VNNI.u8s8_saturates
    assert not CpuInfo("Cortex-A78AE", "aarch64", "arm64", ()).u8s8_saturates
    here = this_cpu().record()
    assert here["cpu_class"] and here["model"] and isinstance(here["flags"], list)
