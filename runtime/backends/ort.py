"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers.

Routes (see ``backends.ROUTES``): ``onnxruntime-cpu``, ``onnxruntime-cuda`` and
``onnxruntime-tensorrt-ep`` (ONNX Runtime's TensorRT execution provider, not native engines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from emolive.runtime.backends import ROUTES, DeviceUnavailable
from emolive.runtime.cpu import this_cpu
from emolive.runtime.int8 import for_this_cpu

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
# OrtValue device names and ONNX element types.
_ORT_DEVICE = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda"}
_ELEM_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}  # fmt: skip


def available_devices() -> list[str]:
    have = set(ort.get_available_providers())
    return [d for d, provs in _PROVIDERS.items() if provs[0] in have]


def missing_provider(device: str) -> str | None:
    """One line saying what to install when this ONNX Runtime cannot run ``device``."""
    if device not in _PROVIDERS:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(_PROVIDERS)}")
    wanted = _PROVIDERS[device][0]
    have = ort.get_available_providers()
    if wanted in have:
        return None
    route = ROUTES["ort", device]
    extra = (
        "install emo-live[gpu] (onnxruntime-gpu) and TensorRT's libraries, or use --device cuda"
        if device == "tensorrt"
        else "install emo-live[gpu] (onnxruntime-gpu)"
    )
    return f"device {device} (route {route}): this ONNX Runtime has no {wanted} (it has {have}); {extra}"


def session_options(threads: int | None, spin: bool = False) -> ort.SessionOptions:
    """Options for every graph: full graph optimisation, ``threads`` intra-op threads.

    Worker threads do not spin by default: pipelines run several small graphs from their own
    threads, and spinning workers would steal the cores the other stages need. The LLM
    decoder spins during a run (``spin``): a decode step runs ~340 small kernels, and without
    spinning every parallel section pays a thread wake-up (~30% of decode speed here).
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3
    return so


class OrtBuffer:
    """A tensor in device memory as an OrtValue. On the CPU numpy owns the memory and
    ``numpy()`` is a view of it; on a GPU ``numpy()`` copies to the host."""

    def __init__(self, shape, dtype, device: str) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.device = _ORT_DEVICE[device]
        # zeros: never-written slots are never read, but stay finite if a kernel touches them
        zeros = np.zeros(self.shape, self.dtype)
        if self.device == "cpu":
            self._host: np.ndarray | None = zeros
            self.value = ort.OrtValue.ortvalue_from_numpy(zeros)
        else:
            self._host = None
            self.value = ort.OrtValue.ortvalue_from_shape_and_type(
                list(self.shape), self.dtype.type, self.device, 0
            )
            self.value.update_inplace(zeros)

    def numpy(self) -> np.ndarray:
        return self._host if self._host is not None else self.value.numpy()


class OrtBinding:
    """``session.io_binding()`` with the protocol's names: numpy inputs are copied to the
    device by ONNX Runtime; buffers are bound where they are."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._b = session.io_binding()

    def bind_input(self, name: str, value) -> None:
        if isinstance(value, OrtBuffer):
            self._b.bind_ortvalue_input(name, value.value)
        else:
            self._b.bind_cpu_input(name, value)

    def bind_output(self, name: str, value: OrtBuffer) -> None:
        self._b.bind_ortvalue_output(name, value.value)

    def run(self) -> None:
        self._session.run_with_iobinding(self._b)


@dataclass
class OrtGraph:
    path: Path
    precision: str
    device: str = "cpu"
    threads: int | None = None
    backend: str = "ort"
    spin: bool = False
    cpu_note: str | None = field(init=False, default=None)
    session: ort.InferenceSession = field(init=False, repr=False)

    def __post_init__(self):
        if self.device not in _PROVIDERS:
            raise ValueError(
                f"unknown device {self.device!r}; choose one of {', '.join(_PROVIDERS)}"
            )
        why = missing_provider(self.device)
        if why:
            raise DeviceUnavailable(why)
        wanted = _PROVIDERS[self.device]
        # On the CPU, int8 GEMMs that would saturate here load as u8×u8 (runtime/int8.py).
        cpu = this_cpu() if self.device == "cpu" else None
        try:
            with for_this_cpu(self.path, cpu) as (source, self.cpu_note):
                self.session = ort.InferenceSession(
                    source, sess_options=session_options(self.threads, self.spin), providers=wanted
                )
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise RuntimeError(f"ONNX Runtime could not load {self.path}: {e}") from e
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.dtypes = {
            v.name: np.dtype(_ELEM_TYPES.get(v.type, np.float32))
            for v in (*self.session.get_inputs(), *self.session.get_outputs())
        }

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def route(self) -> str:
        return ROUTES["ort", self.device]

    @property
    def info(self) -> dict:
        """What ran: ONNX Runtime drops a provider it cannot start (missing CUDA libraries)
        and runs on the next one; ``fallback`` says so."""
        info = {
            "backend": self.backend,
            "route": self.route,
            "device": self.device,
            "precision": self.precision,
            "providers": self.providers,
        }
        wanted = _PROVIDERS[self.device][0]
        if self.providers[:1] != [wanted]:
            info["fallback"] = (
                f"{self.path.name}: {wanted} did not start (route {self.route}); ONNX Runtime "
                f"runs it on {self.providers[0]}"
            )
        if self.cpu_note:
            info["note"] = self.cpu_note
        return info

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outs, strict=True))

    def buffer(self, shape, dtype) -> OrtBuffer:
        return OrtBuffer(shape, dtype, self.device)

    def binding(self) -> OrtBinding:
        return OrtBinding(self.session)


def load(
    path: Path, precision: str, device: str = "cpu", threads: int | None = None, spin: bool = False
) -> OrtGraph:
    return OrtGraph(path, precision, device=device, threads=threads, spin=spin)
