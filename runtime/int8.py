"""int8 graphs that compute the same products on every CPU class.

MLAS's u8×s8 kernels on x86-64 without VNNI (``CpuInfo.u8s8_saturates``) add each pair of
u8·s8 products in 16 bits with saturation. Two rules keep every int8 form exact there:

* Q/DQ graphs (vision; what TensorRT compiles, so weights stay symmetric int8) use 7-bit weight
  codes, |q| <= 64: a pair is then at most 2·255·64 = 32640 <= 32767 whatever the activation.
  ``largest_weight_code`` is the check the calibrator runs on every graph it writes.
* ``DynamicQuantizeMatMul`` (the LLM's w8a8) keeps full 8-bit weights, exact on VNNI, AMX and
  ARM64; on a CPU whose u8s8 kernels saturate, ``for_this_cpu`` loads them as uint8 codes
  with zero point 128 instead (the same integers shifted), which MLAS runs with its u8×u8
  kernel, whose pairs are summed in 32 bits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from emolive.runtime.cpu import INT16_MAX, CpuInfo

# Largest |weight code| whose pair sums with any u8 activation fit a 16-bit accumulator.
SAFE_WEIGHT_CODE = INT16_MAX // (2 * 255)
# Ops whose int8 weights MLAS multiplies with u8 (or shifted s8) activations.
_WEIGHTED_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
_DQMM = "DynamicQuantizeMatMul"


def largest_weight_code(model: onnx.ModelProto) -> int:
    """The largest |code| of the int8 weights that Q/DQ graph feeds into Conv/MatMul/Gemm."""
    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    largest = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        if not any(c.op_type in _WEIGHTED_OPS for c in consumers.get(node.output[0], [])):
            continue
        codes = numpy_helper.to_array(inits[node.input[0]])
        if codes.dtype != np.int8:
            continue
        largest = max(largest, int(np.abs(codes.astype(np.int16)).max(initial=0)))
    return largest


def _saturating(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    inits = {i.name: i for i in model.graph.initializer}
    return [
        node
        for node in model.graph.node
        if node.op_type == _DQMM
        and node.input[1] in inits
        and inits[node.input[1]].data_type == onnx.TensorProto.INT8
    ]


def saturating_nodes(model: onnx.ModelProto) -> list[str]:
    """``DynamicQuantizeMatMul`` nodes with int8 weights (u8×s8: saturates without VNNI)."""
    return [node.name for node in _saturating(model)]


def to_u8u8(model: onnx.ModelProto, base_dir: Path | str = "") -> int:
    """Rewrite every int8-weight ``DynamicQuantizeMatMul`` to uint8 codes + zero point 128.

    q_u8 - 128 == q_s8 - z_s8 exactly (the exporter's zero points are 0), so the product is the
    same integer; MLAS runs it with its u8×u8 kernel. Weights kept in an external data file
    are read from ``base_dir``; the new ones are stored inline. Returns how many nodes were
    rewritten.
    """
    inits = {i.name: i for i in model.graph.initializer}
    count = 0
    for node in _saturating(model):
        name = node.name
        weight = numpy_helper.to_array(inits[node.input[1]], str(base_dir)).astype(np.int16)
        if len(node.input) > 3 and node.input[3]:
            zero = numpy_helper.to_array(inits[node.input[3]], str(base_dir)).astype(np.int16)
        else:
            zero = np.zeros(weight.shape[-1], np.int16)
        codes = (weight - zero + 128).astype(np.int16)
        if codes.min() < 0 or codes.max() > 255:
            raise ValueError(f"{name}: int8 weights minus their zero point leave uint8's range")
        b, z = f"{node.input[1]}.u8", f"{node.input[1]}.u8_zero_point"
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(codes.astype(np.uint8), b),
                numpy_helper.from_array(np.full(zero.shape, 128, np.uint8), z),
            ]
        )
        inputs = list(node.input) + [""] * (4 - len(node.input))
        inputs[1], inputs[3] = b, z
        del node.input[:]
        node.input.extend(inputs)
        count += 1
    used = {name for n in model.graph.node for name in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return count


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dest)


@contextlib.contextmanager
def for_this_cpu(path: Path, cpu: CpuInfo | None) -> Iterator[tuple[str, str | None]]:
    """The file ONNX Runtime should load for ``path`` on ``cpu``, with a note when it is not
    ``path`` itself: where u8×s8 kernels would saturate, a u8×u8 rewrite in a temporary
    folder, beside hard links to the original external data (copies across file systems; ONNX
    Runtime refuses symbolic links). Only the rewritten weights are read into memory. ``cpu``
    None: not run by the CPU. Create the session inside the ``with``; the folder goes after.
    """
    path = Path(path)
    if cpu is None or not cpu.u8s8_saturates:
        yield str(path), None
        return
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: ONNX Runtime's own load says why, naming the file
        yield str(path), None
        return
    count = to_u8u8(model, path.parent)
    if not count:
        yield str(path), None
        return
    with tempfile.TemporaryDirectory(prefix="emolive-u8u8-") as tmp:
        locations = {
            entry.value
            for tensor in model.graph.initializer
            for entry in tensor.external_data
            if entry.key == "location"
        }
        for location in locations:
            _link_or_copy(path.parent / location, Path(tmp) / location)
        onnx.save(model, str(Path(tmp) / path.name))
        del model
        yield (
            str(Path(tmp) / path.name),
            f"{path.name}: {count} int8 GEMMs loaded as u8×u8 on this {cpu.cpu_class} CPU "
            f"(its u8×s8 kernels saturate)",
        )
