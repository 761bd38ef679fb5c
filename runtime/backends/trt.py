"""Native TensorRT backend (route ``tensorrt-native``): compile a graph to an engine, run it.

Not ONNX Runtime's TensorRT execution provider (backend "ort", device "tensorrt", route
``onnxruntime-tensorrt-ep``).

Kept thin on purpose, and never run on real TensorRT in this project (it cannot be
installed on the machines the project was built on): ``tests/test_trt_fake.py`` runs it
against a fake of TensorRT's documented Python API that executes the ONNX graph with ONNX
Runtime. Version differences (10.x weak typing and flags, 11.x strong typing) live in
``trt_api.TrtApi``. INT8 is explicit: the bundle's int8 variants carry Q/DQ nodes, and
TensorRT compiles exactly those scales (implicit calibration is deprecated in 10.1 and gone in
11), so the numerics tested with ONNX Runtime on the CPU are the numerics here. fp16 is the
bundle's fp16 device variant (``emo-live build``) on 11.x, and the FP16 flag on 10.x.

The engine has one optimization profile per phase, from the graph's named dynamic axes
(``trt_api.ShapeRanges``: prefill and decode for the LLM's KV cache), and one execution
context per profile. Every input and output gets one device buffer at load, sized for the
largest shape any profile allows; runs copy into them and never allocate. IO is by name.

Engines and the timing cache are stored under ``<cache>/trt/`` and keyed by GPU name and
compute capability, TensorRT version, precision (with the profile ranges) and the ONNX file's
sha256: an engine is never reused on a different GPU or TensorRT, or for a changed graph.

Needs the ``tensorrt`` package (NVIDIA's index; JetPack ships it) and ``cuda-python`` for
device memory; both are imported here only, with a message saying what to install.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolive.runtime.backends import ROUTES, DeviceUnavailable
from emolive.runtime.backends.trt_api import ShapeRanges, TrtApi, fits, has_qdq
from emolive.runtime.bundle import graph_digest, onnx_signature
from emolive.runtime.cache import cache_root

WORKSPACE_BYTES = 1 << 30
DLA_ENV = "EMOLIVE_TRT_DLA_CORE"  # a DLA core number: engines built for Jetson's DLA
ROUTE = ROUTES["trt", "tensorrt"]


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise DeviceUnavailable(
            f"the TensorRT backend (route {ROUTE}) needs the tensorrt package (JetPack ships "
            "it; on x86 install it from NVIDIA's index), or use the ONNX Runtime backend: "
            "--backend ort"
        ) from e
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as e:
            raise DeviceUnavailable(
                f"the TensorRT backend (route {ROUTE}) needs cuda-python: pip install cuda-python"
            ) from e
    return trt, cudart


def _check(result):
    """cuda-python returns (err, value...): raise on an error, return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else (rest or None)


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
    ranges: ShapeRanges = field(default_factory=ShapeRanges)
    dla_core: int | None = None  # Jetson's deep-learning accelerator (vision CNNs), or GPU
    _buffers: dict = field(default_factory=dict, repr=False)  # name -> (ptr, nbytes)

    def __post_init__(self) -> None:
        trt, cudart = _import_trt()
        self._trt, self._cudart, self.api = trt, cudart, TrtApi(trt)
        if self.precision == "int8" and not has_qdq(self.path):
            raise ValueError(
                f"{self.path}: int8 on TensorRT needs a Q/DQ graph (implicit calibration is "
                "gone in TensorRT 11); run `emo-live calibrate` for the bundle's int8 variants"
            )
        signature = onnx_signature(self.path)
        self.profiles = self.ranges.profiles(signature["inputs"])
        props = _check(cudart.cudaGetDeviceProperties(0))
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        capability = f"{props.major}{props.minor}"
        dla = "" if self.dla_core is None else f"+dla{self.dla_core}"
        built_as = f"{self.precision}+{self.ranges.key()}{dla}"
        key = engine_key(gpu, capability, trt.__version__, built_as, graph_digest(self.path))
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.engine_file = folder / f"{self.path.stem}.{key}.engine"
        timing_file = (
            folder / f"timing.{engine_key(gpu, capability, trt.__version__, '', '')}.cache"
        )
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self.engine = None
        if self.engine_file.is_file():  # a cached engine; a damaged one is rebuilt once
            self.engine = runtime.deserialize_cuda_engine(self.engine_file.read_bytes())
        if self.engine is None:
            plan = self._build(logger, timing_file)
            tmp = self.engine_file.with_name(f"{self.engine_file.name}.{os.getpid()}.tmp")
            tmp.write_bytes(plan)
            os.replace(tmp, self.engine_file)  # never a half-written engine under its name
            self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine for {self.path}")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = {n: self.engine.get_tensor_mode(n) for n in names}
        self.input_names = [n for n in names if mode[n] == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if mode[n] == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: self.api.nptype(self.engine.get_tensor_dtype(n)) for n in names}
        self.stream = _check(cudart.cudaStreamCreate())
        self.contexts = []
        for index in range(len(self.profiles)):
            context = self.engine.create_execution_context()
            if not context.set_optimization_profile_async(index, self.stream):
                raise RuntimeError(f"TensorRT refused profile {index} for {self.path}")
            self.contexts.append(context)
        self._allocate()

    @property
    def info(self) -> dict:
        version = ".".join(map(str, self.api.version))
        return {
            "backend": self.backend,
            "route": ROUTE,
            "device": self.device,
            "precision": self.precision,
            "providers": [f"TensorRT {version}" + (" strongly typed" if self.api.strongly_typed else "")
                          + ("" if self.dla_core is None else f", DLA core {self.dla_core} + GPU fallback")],
        }  # fmt: skip

    def buffer(self, shape, dtype) -> TrtBuffer:
        return TrtBuffer(self._cudart, shape, dtype, self.stream)

    def binding(self) -> TrtBinding:
        return TrtBinding(self)

    def _build(self, logger, timing_file: Path) -> bytes:
        trt = self._trt
        builder = trt.Builder(logger)
        network = builder.create_network(self.api.network_flags())
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(self.path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {self.path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        for flag in self.api.precision_flags(self.precision):
            config.set_flag(flag)
        if self.dla_core is not None:
            self.api.use_dla(config, self.dla_core, self.precision)
        timing = config.create_timing_cache(
            timing_file.read_bytes() if timing_file.is_file() else b""
        )
        config.set_timing_cache(timing, ignore_mismatch=False)
        for shapes in self.profiles:
            profile = builder.create_optimization_profile()
            for name, (lo, opt, hi) in shapes.items():
                profile.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(
                f"TensorRT failed to build an engine for {self.path} ({self.precision})"
            )
        timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    def _allocate(self) -> None:
        """One device buffer per IO tensor, as large as the largest shape of any profile."""
        sizes = dict.fromkeys(self.input_names + self.output_names, 0)
        for index, context in enumerate(self.contexts):
            for name in self.input_names:
                hi = tuple(self.engine.get_tensor_profile_shape(name, index)[2])
                if not context.set_input_shape(name, hi):
                    raise RuntimeError(f"TensorRT refused shape {hi} for {name} ({self.path})")
                sizes[name] = max(sizes[name], self._nbytes(name, hi))
            for name in self.output_names:
                sizes[name] = max(sizes[name], self._nbytes(name, context.get_tensor_shape(name)))
        for name, nbytes in sizes.items():
            self._buffers[name] = (_check(self._cudart.cudaMalloc(max(nbytes, 1))), nbytes)

    def _nbytes(self, name: str, shape) -> int:
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise RuntimeError(f"{self.path}: output {name} has a data-dependent shape {shape}")
        return int(np.prod(shape, dtype=np.int64)) * self.dtypes[name].itemsize

    def context_for(self, shapes: dict[str, tuple[int, ...]]):
        """The execution context whose profile admits these input shapes (decode first)."""
        for index in reversed(range(len(self.profiles))):
            if fits(self.profiles[index], shapes):
                return self.contexts[index]
        allowed = [{n: (lo, hi) for n, (lo, _, hi) in p.items()} for p in self.profiles]
        raise ValueError(
            f"{self.path}: input shapes {shapes} are outside every optimization profile of the "
            f"engine (min, max per input: {allowed})"
        )

    def set_inputs(self, context, shapes: dict[str, tuple[int, ...]]) -> None:
        for name, shape in shapes.items():
            if not context.set_input_shape(name, shape):
                raise ValueError(f"{self.path}: TensorRT refused shape {shape} for {name}")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self._cudart
        arrays = {n: np.ascontiguousarray(feeds[n], self.dtypes[n]) for n in self.input_names}
        context = self.context_for({n: a.shape for n, a in arrays.items()})
        self.set_inputs(context, {n: a.shape for n, a in arrays.items()})
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name, arr in arrays.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self.stream))
            context.set_tensor_address(name, ptr)
        outs = {}
        for name in self.output_names:
            outs[name] = np.empty(tuple(context.get_tensor_shape(name)), self.dtypes[name])
            context.set_tensor_address(name, self._buffers[name][0])
        if not context.execute_async_v3(self.stream):
            raise RuntimeError(f"TensorRT execution failed for {self.path}")
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, arr in outs.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(arr.ctypes.data, ptr, arr.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return outs

    def close(self) -> None:
        """Free the IO buffers and the stream (the gate calls it on a refused graph)."""
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        stream, self.stream = getattr(self, "stream", None), None
        if stream is not None:
            self._cudart.cudaStreamDestroy(stream)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA may be gone already
            pass


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
    """Addresses set by name, once per bind; numpy inputs go to the graph's own input buffer
    (allocated at load). An output's shape is the bound buffer's (a bigger buffer is fine:
    TensorRT writes the shape the inputs imply)."""

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
        ptr, size = g._buffers[name]
        if arr.nbytes > size:
            raise ValueError(f"{g.path}: input {name} of shape {arr.shape} exceeds the profiles")
        h2d = g._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(g._cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, g.stream))
        self._inputs[name] = (ptr, arr.shape)

    def bind_output(self, name: str, value: TrtBuffer) -> None:
        self._outputs[name] = value.ptr

    def run(self) -> None:
        g = self._g
        shapes = {name: shape for name, (_, shape) in self._inputs.items()}
        context = g.context_for(shapes)
        g.set_inputs(context, shapes)
        for name, (ptr, _) in self._inputs.items():
            context.set_tensor_address(name, ptr)
        for name in g.output_names:
            context.set_tensor_address(name, self._outputs.get(name, g._buffers[name][0]))
        if not context.execute_async_v3(g.stream):
            raise RuntimeError(f"TensorRT execution failed for {g.path}")
        _check(g._cudart.cudaStreamSynchronize(g.stream))


def load(
    path: Path,
    precision: str,
    device: str = "tensorrt",
    threads: int | None = None,
    spin: bool = False,
    ranges: ShapeRanges | None = None,
    dla_core: int | None = None,
) -> TrtGraph:
    if device != "tensorrt":
        raise ValueError(
            f"the trt backend (route {ROUTE}) runs on device 'tensorrt', not {device!r}"
        )
    if dla_core is None and precision in ("fp16", "int8"):  # DLA runs no fp32: those stay
        dla_core = dla_from_env()  # on the GPU (e.g. the VAD, or a gate's fp32 fallback)
    return TrtGraph(Path(path), precision, ranges=ranges or ShapeRanges(), dla_core=dla_core)


def dla_from_env() -> int | None:
    """``EMOLIVE_TRT_DLA_CORE``: the DLA core for fp16/int8 graphs (unset: the GPU)."""
    value = os.environ.get(DLA_ENV, "").strip()
    if not value:
        return None
    try:
        core = int(value)
    except ValueError:
        raise ValueError(f"{DLA_ENV}={value!r}: a DLA core number (0 or 1 on Orin)") from None
    if core < 0:
        raise ValueError(f"{DLA_ENV}={value!r}: a DLA core number (0 or 1 on Orin)")
    return core
