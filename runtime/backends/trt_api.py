"""What the native TensorRT backend needs to know about TensorRT versions and shapes.

One adapter over TensorRT 10.x (JetPack 6 ships 10.3) and 11.x, from their documented Python
APIs and the 10.x -> 11.x migration guide:

* 10.x networks are weakly typed: reduced precision is enabled by builder flags (``FP16``;
  ``INT8`` so that the graph's Q/DQ nodes compile to int8 kernels).
* 11.x removes those flags and every weak-typing API: all networks are strongly typed (the
  ``STRONGLY_TYPED`` creation flag is accepted and ignored), so precision is what the ONNX
  graph says: the bundle's fp16 device variant, or its int8 Q/DQ variant.
* Implicit INT8 calibration (a calibrator object) is deprecated in 10.1 and gone in 11:
  int8 here always means explicit Q/DQ, and a graph without Q/DQ nodes is refused for int8.

Optimization profiles come from the graph's named dynamic axes (the manifest records the
same names): the LLM decoder's ``sequence`` axis gets two profiles, prefill (1..max_prefill
tokens) and decode (exactly 1), both over the KV cache's ``past_sequence`` and
``total_sequence`` ranges; batch-like axes range 1..max_batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# TensorRT DataType member names -> numpy, for TensorRT builds without ``trt.nptype``.
_NP_TYPES = {
    "FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
    "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8,
}  # fmt: skip
PREFILL_AXIS, PAST_AXIS, TOTAL_AXIS = "sequence", "past_sequence", "total_sequence"
TOKEN_AXES = ("tokens",)  # other sequence-like axes (the words encoder's tokens)

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input name -> (min, opt, max)


@dataclass(frozen=True)
class TrtApi:
    """The installed TensorRT, seen through the calls this backend makes."""

    trt: object

    @property
    def version(self) -> tuple[int, int]:
        major, minor, *_ = (str(self.trt.__version__).split(".") + ["0"])[:2]
        return int(major), int(minor)

    @property
    def strongly_typed(self) -> bool:
        """11.x: always; 10.x: never here (weak typing keeps 10.3's FP16/INT8 flags)."""
        return self.version[0] >= 11

    def network_flags(self) -> int:
        if not self.strongly_typed:
            return 0  # explicit batch is the only mode since 10.0
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        return 0 if flag is None else 1 << int(flag)

    def precision_flags(self, precision: str) -> list:
        """Builder flags for ``precision`` (10.x); none on 11.x, where the graph decides."""
        if self.strongly_typed:
            return []
        flags = self.trt.BuilderFlag
        return {"fp16": [flags.FP16], "int8": [flags.INT8, flags.FP16]}.get(precision, [])

    def use_dla(self, config, core: int, precision: str) -> None:
        """Put the engine's layers on Jetson's DLA ``core``, the rest falling back to the GPU.
        DLA runs fp16 and int8 only; offered on 10.x (JetPack 6 ships 10.3; the 11.x notes
        list JetPack as unsupported)."""
        if self.strongly_typed:
            raise ValueError(
                f"DLA is offered with TensorRT 10.x (JetPack 6), not {self.trt.__version__}"
            )
        if precision not in ("fp16", "int8"):
            raise ValueError(f"DLA runs fp16 or int8 graphs, not {precision}")
        config.default_device_type = self.trt.DeviceType.DLA
        config.DLA_core = int(core)
        config.set_flag(self.trt.BuilderFlag.GPU_FALLBACK)

    def nptype(self, dtype) -> np.dtype:
        convert = getattr(self.trt, "nptype", None)
        if convert is not None:
            return np.dtype(convert(dtype))
        name = getattr(dtype, "name", str(dtype)).rsplit(".", 1)[-1]
        if name not in _NP_TYPES:
            raise TypeError(f"TensorRT data type {name} has no numpy equivalent here")
        return np.dtype(_NP_TYPES[name])


@dataclass(frozen=True)
class ShapeRanges:
    """How far each named dynamic axis may range in the engine's optimization profiles."""

    max_batch: int = 16
    max_context: int = 1024  # KV cache slots: past_sequence and total_sequence
    max_prefill: int = 512  # tokens in one prefill
    max_tokens: int = 256  # other token axes

    def key(self) -> str:
        return f"b{self.max_batch}c{self.max_context}p{self.max_prefill}t{self.max_tokens}"

    def _axis(self, name: str, prefill: bool) -> tuple[int, int, int]:
        if name == PREFILL_AXIS:
            return (1, min(64, self.max_prefill), self.max_prefill) if prefill else (1, 1, 1)
        if name in (PAST_AXIS, TOTAL_AXIS):
            lo = 0 if name == PAST_AXIS else 1
            return lo, self.max_context, self.max_context
        if name in TOKEN_AXES:
            return 1, min(32, self.max_tokens), self.max_tokens
        return 1, 1, self.max_batch  # batch, faces, frames, sentences, unnamed

    def profiles(self, inputs: list[dict]) -> list[Profile]:
        """One profile per phase of the graph: prefill and decode when an input has the
        ``sequence`` axis, else one. ``inputs``: [{"name", "shape"}] with int dims and
        axis names (None or <= 0: an unnamed dynamic axis)."""
        phases = [True, False] if any(PREFILL_AXIS in i["shape"] for i in inputs) else [True]
        out = []
        for prefill in phases:
            profile: Profile = {}
            for spec in inputs:
                dims = [
                    (d, d, d) if isinstance(d, int) and d > 0 else self._axis(str(d), prefill)
                    for d in spec["shape"]
                ]
                profile[spec["name"]] = tuple(tuple(x[k] for x in dims) for k in range(3))
            out.append(profile)
        return out


def fits(profile: Profile, shapes: dict[str, Shape]) -> bool:
    """Whether every input shape lies within the profile's [min, max]."""
    for name, shape in shapes.items():
        lo, _, hi = profile.get(name, (shape, shape, shape))
        if len(shape) != len(lo) or any(
            not a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)
        ):
            return False
    return True


def has_qdq(path) -> bool:
    """Whether the ONNX graph at ``path`` carries explicit quantization (Q/DQ nodes)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
