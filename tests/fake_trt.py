"""A fake of TensorRT's documented Python API (10.x and 11.x) and of cuda-python's runtime,
just the calls ``runtime/backends/trt.py`` makes, for machines without TensorRT.

Not a mock of answers: the "engine" runs the ONNX graph with ONNX Runtime on the CPU, reading
its inputs from and writing its outputs to the "device" addresses the backend set, so a
wrong address, size, shape or name gives wrong numbers or an error, as on a GPU. "Device"
memory is host memory (numpy buffers) handed out by a fake ``cudaMalloc`` that checks every
copy stays inside an allocation. What the fake enforces, from TensorRT's documentation:
dynamic inputs need an optimization profile covering them; a context accepts input shapes
within its profile only (``set_input_shape`` returns False otherwise); an engine deserializes
only under the TensorRT version that built it; 11.x has no FP16/INT8 builder flags (strongly
typed networks only); the ONNX parser imports default-domain operators only (ONNX Runtime's
com.microsoft contrib ops, e.g. GroupQueryAttention, have no TensorRT importer).
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort

_DTYPES = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8"}
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
          "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}  # fmt: skip


class FakeCuda:
    """cuda.bindings.runtime: (err, value) tuples; memory is numpy, pointers real addresses."""

    class cudaMemcpyKind(enum.IntEnum):  # noqa: N801 (cuda-python's names)
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2
        cudaMemcpyDeviceToDevice = 3

    def __init__(self) -> None:
        self.allocations: dict[int, np.ndarray] = {}
        self.mallocs = 0

    def device_span(self, ptr: int, nbytes: int) -> None:
        for start, buf in self.allocations.items():
            if start <= ptr and ptr + nbytes <= start + buf.nbytes:
                return
        raise MemoryError(f"{nbytes} bytes at {ptr:#x} are not inside one device allocation")

    def cudaGetDeviceProperties(self, device: int):  # noqa: N802
        return 0, SimpleNamespace(name=b"Fake GPU", major=8, minor=7)

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 1

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self.destroyed_streams = getattr(self, "destroyed_streams", 0) + 1
        return (0,)

    def cudaMalloc(self, nbytes: int):  # noqa: N802
        buf = np.zeros(int(nbytes), np.uint8)
        self.allocations[buf.ctypes.data] = buf
        self.mallocs += 1
        return 0, buf.ctypes.data

    def cudaFree(self, ptr: int):  # noqa: N802
        self.allocations.pop(ptr)
        return (0,)

    def cudaMemset(self, ptr: int, value: int, nbytes: int):  # noqa: N802
        self.device_span(ptr, nbytes)
        ctypes.memset(ptr, value, nbytes)
        return (0,)

    def cudaMemcpy(self, dst: int, src: int, nbytes: int, kind):  # noqa: N802
        kinds = self.cudaMemcpyKind
        if kind in (kinds.cudaMemcpyHostToDevice, kinds.cudaMemcpyDeviceToDevice):
            self.device_span(dst, nbytes)
        if kind in (kinds.cudaMemcpyDeviceToHost, kinds.cudaMemcpyDeviceToDevice):
            self.device_span(src, nbytes)
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        return self.cudaMemcpy(dst, src, nbytes, kind)


def make_tensorrt(version: str, cuda: FakeCuda) -> types.ModuleType:
    """A ``tensorrt`` module of ``version`` ("10.3.0", "11.4.0") over ``cuda``'s memory."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.builds = []  # every build's record, for tests
    trt.DataType = enum.Enum("DataType", list(_NUMPY))
    trt.TensorIOMode = enum.Enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
    flags = ["FP16", "INT8", "GPU_FALLBACK", "REFIT"] if major < 11 else ["REFIT", "DEBUG"]
    trt.DeviceType = enum.Enum("DeviceType", ["GPU", "DLA"])
    trt.BuilderFlag = enum.Enum("BuilderFlag", flags)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5}
    )
    if major < 11:
        trt.nptype = lambda dt: _NUMPY[dt.name]

    class Logger:
        WARNING = 2

        def __init__(self, severity=2) -> None:
            self.severity = severity

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags, self.path, self.inputs = flags, None, []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int):
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network: Network, logger) -> None:
            self.network, self.errors = network, []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> str:
            return self.errors[i]

        def parse_from_file(self, path: str) -> bool:
            model = onnx.load(path, load_external_data=False)
            for node in model.graph.node:
                if node.domain not in ("", "ai.onnx"):
                    self.errors.append(
                        f"node {node.name or node.op_type}: no importer for {node.domain}."
                        f"{node.op_type}"
                    )
            for value in model.graph.input:
                dims = [d.dim_value if d.dim_value > 0 else -1
                        for d in value.type.tensor_type.shape.dim]  # fmt: skip
                self.network.inputs.append(SimpleNamespace(name=value.name, shape=dims))
            self.network.path = path
            return not self.errors

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, list] = {}

        def set_shape(self, name: str, lo, opt, hi) -> None:
            self.shapes[name] = [list(map(int, lo)), list(map(int, opt)), list(map(int, hi))]

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data or b"timing"

        def serialize(self) -> bytes:
            return self.data

    class Config:
        def __init__(self) -> None:
            self.flags, self.profiles, self.timing, self.pool = [], [], None, {}
            self.default_device_type, self.DLA_core = trt.DeviceType.GPU, -1

        def set_memory_pool_limit(self, pool, size: int) -> None:
            self.pool[pool.name] = size

        def set_flag(self, flag) -> None:
            self.flags.append(flag.name)

        def create_timing_cache(self, data: bytes) -> TimingCache:
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            self.timing = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            return self.timing

        def add_optimization_profile(self, profile: Profile) -> int:
            self.profiles.append(profile.shapes)
            return len(self.profiles) - 1

    class Builder:
        def __init__(self, logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config):
            for t in network.inputs:
                if -1 not in t.shape:
                    continue
                for p in config.profiles or [{}]:
                    if t.name not in p:
                        return None  # a dynamic input needs a range in every profile
                    lo, opt, hi = p[t.name]
                    fixed = [d for d in t.shape]
                    ok = all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)) and all(
                        d == -1 or a == d == c for d, a, c in zip(fixed, lo, hi, strict=True)
                    )
                    if not ok:
                        return None
            record = {"version": version, "onnx": network.path, "profiles": config.profiles,
                      "flags": config.flags, "network_flags": network.flags,
                      "device_type": config.default_device_type.name,
                      "dla_core": config.DLA_core}  # fmt: skip
            trt.builds.append(record)
            return json.dumps(record).encode()

    class Context:
        def __init__(self, engine) -> None:
            self.engine, self.profile, self.shapes, self.addresses = engine, 0, {}, {}

        def set_optimization_profile_async(self, index: int, stream) -> bool:
            if not 0 <= index < self.engine.num_optimization_profiles:
                return False
            self.profile = index
            return True

        def set_input_shape(self, name: str, shape) -> bool:
            lo, _, hi = self.engine.get_tensor_profile_shape(name, self.profile)
            shape = [int(d) for d in shape]
            if len(shape) != len(lo) or not all(
                a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)
            ):
                return False
            self.shapes[name] = shape
            return True

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = int(ptr)
            return True

        def _feeds(self, from_memory: bool) -> dict:
            feeds = {}
            for name in self.engine.inputs:
                dtype = np.dtype(_NUMPY[self.engine.dtype[name]])
                shape = self.shapes[name]
                if from_memory:
                    nbytes = int(np.prod(shape)) * dtype.itemsize
                    cuda.device_span(self.addresses[name], nbytes)
                    raw = (ctypes.c_char * nbytes).from_address(self.addresses[name])
                    feeds[name] = np.frombuffer(raw, dtype).reshape(shape).copy()
                else:
                    feeds[name] = np.zeros(shape, dtype)
            return feeds

        def get_tensor_shape(self, name: str):
            if name in self.engine.inputs:
                return self.shapes[name]
            outs = self.engine.session.run([name], self._feeds(from_memory=False))
            return list(outs[0].shape)

        def execute_async_v3(self, stream) -> bool:
            outs = self.engine.session.run(self.engine.outputs, self._feeds(from_memory=True))
            for name, value in zip(self.engine.outputs, outs, strict=True):
                value = np.ascontiguousarray(value)
                cuda.device_span(self.addresses[name], value.nbytes)
                ctypes.memmove(self.addresses[name], value.ctypes.data, value.nbytes)
            return True

    class Engine:
        def __init__(self, record: dict) -> None:
            self.record = record
            self.session = ort.InferenceSession(record["onnx"], providers=["CPUExecutionProvider"])
            model = onnx.load(record["onnx"], load_external_data=False)
            self.inputs = [v.name for v in model.graph.input]
            self.outputs = [v.name for v in model.graph.output]
            self.dtype = {v.name: _DTYPES[v.type.tensor_type.elem_type]
                          for v in (*model.graph.input, *model.graph.output)}  # fmt: skip
            self.static = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                           for v in model.graph.input}  # fmt: skip

        @property
        def num_io_tensors(self) -> int:
            return len(self.inputs) + len(self.outputs)

        @property
        def num_optimization_profiles(self) -> int:
            return max(1, len(self.record["profiles"]))

        def get_tensor_name(self, i: int) -> str:
            return (self.inputs + self.outputs)[i]

        def get_tensor_mode(self, name: str):
            return trt.TensorIOMode.INPUT if name in self.inputs else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str):
            return trt.DataType[self.dtype[name]]

        def get_tensor_profile_shape(self, name: str, index: int):
            profiles = self.record["profiles"]
            if profiles and name in profiles[index]:
                return profiles[index][name]
            return [self.static[name]] * 3

        def create_execution_context(self) -> Context:
            return Context(self)

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, plan: bytes):
            try:  # documented: None (and a logged error) for a plan it cannot read
                record = json.loads(bytes(plan))
            except ValueError:
                return None
            if record["version"] != version:
                return None  # engines are tied to the TensorRT that built them
            return Engine(record)

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    return trt


def install(monkeypatch, version: str) -> tuple[types.ModuleType, FakeCuda]:
    """Put a fake ``tensorrt`` of ``version`` and ``cuda.bindings.runtime`` in sys.modules."""
    cuda = FakeCuda()
    trt = make_tensorrt(version, cuda)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cuda
    package = types.ModuleType("cuda")
    package.bindings = bindings
    for name, module in (("tensorrt", trt), ("cuda", package), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", cuda)):  # fmt: skip
        monkeypatch.setitem(__import__("sys").modules, name, module)
    return trt, cuda
