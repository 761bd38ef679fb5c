"""Explicit INT8: insert QuantizeLinear/DequantizeLinear pairs into an fp32 ONNX graph.

The Q/DQ graph is what TensorRT 10+ compiles as INT8 (its implicit calibrator is deprecated)
and what ONNX Runtime runs on any CPU, so the same file is both the deployed artefact and the
thing whose numerics the report measures. TensorRT only takes symmetric INT8 (zero point 0),
hence signed activations and weights, both symmetric, weights per output channel.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from emolive.runtime.int8 import SAFE_WEIGHT_CODE, largest_weight_code

# No "entropy": onnxruntime's entropy calibrator builds 128-bin histograms and searches 128
# quantized bins, so it has one candidate range, the full one; its scales came out identical
# to MinMax on every tensor of the vision graphs (ORT 1.31), and quantize_static has no option
# to widen the histogram.
METHODS = ("percentile", "minmax")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Per-channel weights need QuantizeLinear's `axis`, which arrived in opset 13.
MIN_QDQ_OPSET = 13


class QuantizationError(RuntimeError):
    """A graph could not be quantized, or the result is not the Q/DQ graph it should be."""


@dataclass(frozen=True)
class QuantConfig:
    """How one graph is quantized; every field is written into the bundle's variant info."""

    # Percentile clips the few extreme activations that would otherwise stretch the int8 scale
    # (what MinMax does); it measured best on the vision graphs (see the calibration report).
    method: str = "percentile"
    percentile: float = 99.999
    per_channel: bool = True
    # TensorRT needs zero-point-0 activations; ONNX Runtime runs symmetric int8 on any CPU.
    symmetric_activations: bool = True
    # ONNX Runtime's shape inference + graph optimisation (folds BatchNorm into Conv, etc.)
    # before quantizing, as its docs advise; the Q/DQ graph then matches what runs.
    preprocess: bool = True
    # Keep each output's head (its last Conv/Gemm/MatMul) and the layout ops after it in fp32.
    # BlazeFace concatenates two heads whose logits differ 30x in range; one shared int8 scale
    # at that Concat erased half the face anchors. The heads are a tiny share of the compute.
    fp32_output_heads: bool = True
    # 7-bit weight codes (|q| <= 64): on x86-64 without VNNI, MLAS adds pairs of u8·s8
    # products in 16 bits with saturation, and 2·255·64 still fits where 2·255·127 does not.
    # The same graph is then exact on AVX2, AVX-512 VNNI, AMX and ARM64 (runtime/int8.py).
    reduce_range: bool = True
    exclude_nodes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"unknown calibration method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if not 90.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (90, 100], got {self.percentile}")

    def info(self) -> dict:
        info = {
            "quant_format": "QDQ",
            "calibrate_method": self.method,
            "per_channel": self.per_channel,
            "activation_type": "int8",
            "weight_type": "int8",
            "weight_bits": 7 if self.reduce_range else 8,
            "symmetric_activations": self.symmetric_activations,
            "fp32_output_heads": self.fp32_output_heads,
        }
        if self.method == "percentile":
            info["percentile"] = self.percentile
        return info


@dataclass(frozen=True)
class QdqSummary:
    """What the quantizer produced: counts that prove the graph really is Q/DQ."""

    path: Path
    samples: int
    op_counts: dict[str, int] = field(default_factory=dict)
    fp32_nodes: tuple[str, ...] = ()  # nodes left unquantized on purpose

    @property
    def quantize_nodes(self) -> int:
        return self.op_counts.get("QuantizeLinear", 0)

    @property
    def dequantize_nodes(self) -> int:
        return self.op_counts.get("DequantizeLinear", 0)


class _FeedReader:
    """onnxruntime's CalibrationDataReader over a list of feeds (one sample each)."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def as_feeds(samples: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Split stacked inputs {name: [n, ...]} into n single-sample feeds of batch 1."""
    sizes = {name: len(a) for name, a in samples.items()}
    if len(set(sizes.values())) != 1:
        raise QuantizationError(f"calibration inputs differ in sample count: {sizes}")
    n = next(iter(sizes.values()))
    return [
        {name: np.ascontiguousarray(a[i : i + 1], dtype=np.float32) for name, a in samples.items()}
        for i in range(n)
    ]


# Ops an output's value passes through unchanged in kind after its head layer.
_TAIL_OPS = {
    "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Identity", "Cast",
    "Softmax", "Sigmoid", "Relu", "GlobalAveragePool", "AveragePool",
}  # fmt: skip
_HEAD_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def output_head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes from each graph output back to (and including) its head layer."""
    producer = {out: node for node in model.graph.node for out in node.output}
    found: list[str] = []
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in found:
            continue
        if node.op_type in _HEAD_OPS:
            found.append(node.name)
        elif node.op_type in _TAIL_OPS:
            found.append(node.name)
            stack.extend(node.input)
    return found


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes a name: the quantizer excludes nodes by name."""
    taken = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"emolive_{node.op_type}_{i}"
            while node.name in taken:
                node.name += "_"
            taken.add(node.name)


def op_counts(path: Path) -> dict[str, int]:
    model = onnx.load(str(path), load_external_data=False)
    return dict(Counter(node.op_type for node in model.graph.node))


def _check_input(fp32: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    if not feeds:
        raise QuantizationError(f"{fp32}: the calibration set is empty")
    try:
        model = onnx.load(str(fp32), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError / OSError variants
        raise QuantizationError(f"{fp32}: not a readable ONNX file: {e}") from e
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_QDQ_OPSET:
        raise QuantizationError(
            f"{fp32}: opset {opset} is too old for per-channel Q/DQ; export with opset >= "
            f"{MIN_QDQ_OPSET}"
        )
    inits = {i.name for i in model.graph.initializer}
    wanted = sorted(i.name for i in model.graph.input if i.name not in inits)
    given = sorted(feeds[0])
    if wanted != given:
        raise QuantizationError(f"{fp32}: graph inputs are {wanted}, calibration gives {given}")


def _prepare(fp32: Path, dest: Path, config: QuantConfig) -> onnx.ModelProto:
    from onnxruntime.quantization import quant_pre_process

    if config.preprocess:
        try:
            quant_pre_process(str(fp32), str(dest), skip_symbolic_shape=True)
        except Exception as e:  # its errors are plain Exceptions from several libraries
            raise QuantizationError(
                f"{fp32}: pre-quantization shape/optimise pass failed: {e}"
            ) from e
        model = onnx.load(str(dest))
    else:
        model = onnx.load(str(fp32))
    _name_nodes(model)
    onnx.save(model, str(dest))
    return model


def quantize_qdq(
    fp32: Path,
    out: Path,
    samples: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]],
    config: QuantConfig = QuantConfig(),
) -> QdqSummary:
    """Write ``out``: ``fp32`` with Q/DQ pairs, activation ranges calibrated on ``samples``.

    ``samples`` is either stacked inputs ``{name: [n, ...]}`` (fed one sample at a time) or a
    list of ready feeds. Raises QuantizationError naming the graph when the input is unusable
    or the output has no Q/DQ nodes.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32, out = Path(fp32), Path(out)
    feeds = as_feeds(samples) if isinstance(samples, dict) else list(samples)
    _check_input(fp32, feeds)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }[config.method]
    extra = {"ActivationSymmetric": config.symmetric_activations, "WeightSymmetric": True}
    if config.method == "percentile":
        extra["CalibPercentile"] = config.percentile
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emolive-qdq-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        model = _prepare(fp32, prepared, config)
        exclude = list(config.exclude_nodes)
        if config.fp32_output_heads:
            exclude += [n for n in output_head_nodes(model) if n not in exclude]
        # ORT's histogram calibrators print progress to stdout, which is the CLI's output.
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                quantize_static(
                    str(prepared),
                    str(out),
                    _FeedReader(feeds),
                    quant_format=QuantFormat.QDQ,
                    per_channel=config.per_channel,
                    reduce_range=config.reduce_range,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=method,
                    nodes_to_exclude=exclude or None,
                    extra_options=extra,
                )
        except Exception as e:  # ORT's calibrators raise ValueError/RuntimeError/Fail alike
            raise QuantizationError(f"{fp32}: static Q/DQ quantization failed: {e}") from e
    counts = op_counts(out)
    if not counts.get("QuantizeLinear") or not counts.get("DequantizeLinear"):
        raise QuantizationError(
            f"{out}: quantization produced no QuantizeLinear/DequantizeLinear nodes "
            f"(ops: {counts}); nothing in {fp32} was quantizable"
        )
    if config.reduce_range:
        largest = largest_weight_code(onnx.load(str(out)))
        if largest > SAFE_WEIGHT_CODE:
            raise QuantizationError(
                f"{out}: a weight code reaches {largest}, above {SAFE_WEIGHT_CODE}: its u8·s8 "
                f"pair sums would saturate on CPUs without VNNI"
            )
    return QdqSummary(out, len(feeds), counts, tuple(exclude))
