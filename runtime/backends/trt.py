"""Native TensorRT backend (route ``tensorrt-native``): compile a graph to an engine, run it.

Not ONNX Runtime's TensorRT execution provider (backend "ort", device "tensorrt", route
``onnxruntime-tensorrt-ep``).

Kept thin on purpose. INT8 is explicit: the bundle's int8 variants carry Q/DQ nodes, and
TensorRT 10+ compiles exactly those scales (implicit calibration is deprecated in 10.1 and
gone in 11), so the numerics tested with ONNX Runtime on the CPU are the numerics here.

Engines and the timing cache are stored under ``<cache>/trt/`` and keyed by GPU name and
compute capability, TensorRT version, precision and the ONNX file's sha256: an engine is
never reused on a different GPU or TensorRT, or for a changed graph.

Needs the ``tensorrt`` package (NVIDIA's index; JetPack ships it) and ``cuda-python`` for
device memory; both are imported here only, with a message saying what to install.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolive.runtime.backends import ROUTES
from emolive.runtime.bundle import sha256_of
from emolive.runtime.cache import cache_root

WORKSPACE_BYTES = 1 << 30


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise RuntimeError(
            f"the TensorRT backend (route {ROUTES['trt', 'tensorrt']}) needs the tensorrt package (JetPack ships it; on x86 "
            "install it from NVIDIA's index), or use the ONNX Runtime backend: --backend ort"
        ) from e
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as e:
            raise RuntimeError(
                "the TensorRT backend needs cuda-python: pip install cuda-python"
            ) from e
    return trt, cudart


def _check(result):
    """cuda-python returns (err, value...): raise on an error, return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


def engine_key(
    gpu: str, capability: str, trt_version: str, precision: str, onnx_sha256: str
) -> str:
    """The cache key of an engine: anything that changes the compiled code changes it."""
    raw = f"{gpu}|sm{capability}|trt{trt_version}|{precision}|{onnx_sha256}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def cache_dir() -> Path:
    return Path(os.environ.get("EMOLIVE_TRT_CACHE", cache_root() / "trt"))


@dataclass
class TrtGraph:
    path: Path
    precision: str
    device: str = "tensorrt"
    backend: str = "trt"
    max_batch: int = 16
    _buffers: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        trt, cudart = _import_trt()
        self._trt, self._cudart = trt, cudart
        props = _check(cudart.cudaGetDeviceProperties(0))
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        capability = f"{props.major}{props.minor}"
        key = engine_key(gpu, capability, trt.__version__, self.precision, sha256_of(self.path))
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        engine_file = folder / f"{self.path.stem}.{key}.engine"
        timing_file = (
            folder / f"timing.{engine_key(gpu, capability, trt.__version__, '', '')}.cache"
        )
        logger = trt.Logger(trt.Logger.WARNING)
        if engine_file.is_file():
            plan = engine_file.read_bytes()
        else:
            plan = self._build(trt, logger, timing_file)
            engine_file.write_bytes(plan)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine for {self.path}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.stream = _check(cudart.cudaStreamCreate())

    @property
    def info(self) -> dict:
        return {
            "backend": self.backend,
            "route": ROUTES["trt", "tensorrt"],
            "device": self.device,
            "precision": self.precision,
            "providers": [],
        }

    def buffer(self, shape, dtype) -> TrtBuffer:
        return TrtBuffer(self._cudart, shape, dtype, self.stream)

    def binding(self) -> TrtBinding:
        return TrtBinding(self)

    def _build(self, trt, logger, timing_file: Path) -> bytes:
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(self.path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {self.path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # honours the graph's Q/DQ scales
        if self.precision in ("int8", "fp16"):
            config.set_flag(trt.BuilderFlag.FP16)  # layers outside Q/DQ may use fp16
        timing = config.create_timing_cache(
            timing_file.read_bytes() if timing_file.is_file() else b""
        )
        config.set_timing_cache(timing, ignore_mismatch=False)
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            t = network.get_input(i)
            shape = list(t.shape)
            if any(d < 0 for d in shape):
                lo = [1 if d < 0 else d for d in shape]
                hi = [self.max_batch if d < 0 else d for d in shape]
                profile.set_shape(t.name, lo, lo, hi)
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(
                f"TensorRT failed to build an engine for {self.path} ({self.precision})"
            )
        timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                _check(self._cudart.cudaFree(ptr))
            ptr = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        trt, cudart = self._trt, self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.input_names:
            arr = np.ascontiguousarray(feeds[name])
            self.context.set_input_shape(name, arr.shape)
            ptr = self._device_buffer(name, arr.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        outs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            outs[name] = np.empty(shape, dtype)
            self.context.set_tensor_address(name, self._device_buffer(name, outs[name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError(f"TensorRT execution failed for {self.path}")
        for name, arr in outs.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(arr.ctypes.data, ptr, arr.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return outs


class TrtBuffer:
    """Device memory from cudaMalloc (zeroed); ``numpy()`` copies it to the host."""

    def __init__(self, cudart, shape, dtype, stream) -> None:
        self._cudart, self._stream = cudart, stream
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr = _check(cudart.cudaMalloc(max(self.nbytes, 1)))
        _check(cudart.cudaMemset(self.ptr, 0, self.nbytes))

    def numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        d2h = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self._cudart.cudaStreamSynchronize(self._stream))
        _check(self._cudart.cudaMemcpy(out.ctypes.data, self.ptr, self.nbytes, d2h))
        return out

    def __del__(self) -> None:
        ptr, self.ptr = getattr(self, "ptr", None), None
        if ptr is not None:
            self._cudart.cudaFree(ptr)


class TrtBinding:
    """Addresses set once per name (``set_tensor_address``); numpy inputs are copied to a
    staging buffer per name. An output's shape is the bound buffer's (a bigger buffer is
    fine: TensorRT writes the shape the inputs imply)."""

    def __init__(self, graph: TrtGraph) -> None:
        self._g = graph
        self._inputs: dict[str, tuple[int, tuple[int, ...]]] = {}
        self._outputs: dict[str, int] = {}

    def bind_input(self, name: str, value) -> None:
        g = self._g
        if isinstance(value, TrtBuffer):
            self._inputs[name] = (value.ptr, value.shape)
            return
        arr = np.ascontiguousarray(value, dtype=g.dtypes[name])
        ptr = g._device_buffer(name, arr.nbytes)
        h2d = g._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(g._cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, g.stream))
        self._inputs[name] = (ptr, arr.shape)

    def bind_output(self, name: str, value: TrtBuffer) -> None:
        self._outputs[name] = value.ptr

    def run(self) -> None:
        g = self._g
        for name, (ptr, shape) in self._inputs.items():
            g.context.set_input_shape(name, shape)
            g.context.set_tensor_address(name, ptr)
        for name, ptr in self._outputs.items():
            g.context.set_tensor_address(name, ptr)
        if not g.context.execute_async_v3(g.stream):
            raise RuntimeError(f"TensorRT execution failed for {g.path}")
        _check(g._cudart.cudaStreamSynchronize(g.stream))


def load(
    path: Path,
    precision: str,
    device: str = "tensorrt",
    threads: int | None = None,
    spin: bool = False,
) -> TrtGraph:
    if device != "tensorrt":
        raise ValueError(
            f"the trt backend (route {ROUTES['trt', 'tensorrt']}) runs on device 'tensorrt', "
            f"not {device!r}"
        )
    return TrtGraph(Path(path), precision)
