"""Inference backends: one file each, one small protocol, picked by name.

A backend loads one ONNX graph (or the engine compiled from it) on a device and runs it on a
dict of numpy arrays; for graphs that keep state on the device (the LLM's KV cache) it also
allocates device buffers and binds them as inputs and outputs. Heavy or optional imports
happen inside the backend module that needs them, with a message that says what to install.

Two different things are called TensorRT: ONNX Runtime's TensorRT *execution provider*
(backend "ort", device "tensorrt": route ``onnxruntime-tensorrt-ep``) and native TensorRT
engines (backend "trt": route ``tensorrt-native``). ``ROUTES`` names every (backend, device)
pair once; every runner's ``info`` and every message says which route it means.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

BACKENDS = {
    "ort": "emolive.runtime.backends.ort",
    "trt": "emolive.runtime.backends.trt",
}
DEVICES = ("cpu", "cuda", "tensorrt")
# (backend, device) -> the route's one name, as readings and messages spell it.
ROUTES = {
    ("ort", "cpu"): "onnxruntime-cpu",
    ("ort", "cuda"): "onnxruntime-cuda",
    ("ort", "tensorrt"): "onnxruntime-tensorrt-ep",
    ("trt", "tensorrt"): "tensorrt-native",
}


class DeviceUnavailable(RuntimeError):
    """The device (or backend) asked for cannot run here; the message says what to install."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a session's graphs run: one config for every graph of the bundle.

    ``backend``: "ort" (ONNX Runtime) or "trt" (native TensorRT engines). ``device``: "cpu",
    "cuda" or "tensorrt". ``precision``: graph name -> the precision to load (e.g.
    {"expression": "fp32"}); a graph not named gets the variant the bundle prefers for the
    device. ``threads``: intra-op threads per graph (None: the stage's own default)."""

    backend: str = "ort"
    device: str = "cpu"
    precision: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None

    def precision_for(self, graph: str) -> str | None:
        return self.precision.get(graph)

    @property
    def route(self) -> str:
        return route_of(self.backend, self.device)


def route_of(backend: str, device: str) -> str:
    """The route's name, or a ValueError naming what is unknown or does not combine."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if (backend, device) not in ROUTES:
        raise ValueError(
            f"backend {backend!r} does not run on device {device!r}: native TensorRT engines "
            f"(route {ROUTES['trt', 'tensorrt']}) run on device 'tensorrt'; for "
            f"{device} use --backend ort"
        )
    return ROUTES[backend, device]


class DeviceBuffer(Protocol):
    """A tensor in the runner's device memory (``numpy()``: a host copy, or view on CPU)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def numpy(self) -> np.ndarray: ...


class Binding(Protocol):
    """Inputs and outputs bound once, run many times (the KV cache stays on the device)."""

    def bind_input(self, name: str, value: np.ndarray | DeviceBuffer) -> None: ...

    def bind_output(self, name: str, value: DeviceBuffer) -> None: ...

    def run(self) -> None: ...


class GraphRunner(Protocol):
    """What every backend returns from ``load``."""

    backend: str
    device: str  # "cpu" | "cuda" | "tensorrt"
    precision: str
    input_names: list[str]
    output_names: list[str]
    dtypes: dict[str, np.dtype]  # every input's and output's element type

    @property
    def info(self) -> dict[str, Any]:
        """What actually ran: backend, route, device, precision, providers (+ "fallback")."""
        ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def buffer(self, shape: tuple[int, ...], dtype) -> DeviceBuffer: ...

    def binding(self) -> Binding: ...


def require_tensors(
    runner: GraphRunner, graph: str, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = ()
) -> None:
    """A ValueError naming ``graph`` and what it has, if it lacks any of these tensors."""
    missing = (set(inputs) - set(runner.input_names)) | (set(outputs) - set(runner.output_names))
    if missing:
        raise ValueError(
            f"{graph} graph lacks tensors {sorted(missing)}; it has inputs "
            f"{runner.input_names} and outputs {runner.output_names}"
        )


def check_device(runtime: RuntimeConfig) -> str:
    """The route ``runtime`` names, if it can run here; else ``DeviceUnavailable`` with one
    line saying what to install (ValueError for names that do not exist). Loads no model:
    the CLI calls it before anything heavy."""
    route = route_of(runtime.backend, runtime.device)
    if runtime.backend == "trt":
        missing = [m for m in ("tensorrt",) if importlib.util.find_spec(m) is None]
        if missing:
            raise DeviceUnavailable(
                f"backend trt (route {route}): the tensorrt package is not installed (JetPack "
                "ships it; on x86 install it from NVIDIA's index, with cuda-python); or use "
                "--backend ort"
            )
        return route
    from emolive.runtime.backends.ort import missing_provider

    why = missing_provider(runtime.device)
    if why:
        raise DeviceUnavailable(why)
    return route


def load(runtime: RuntimeConfig | str, path: Path, precision: str, **options) -> GraphRunner:
    """Load ``path`` through ``runtime``'s backend on its device (its threads unless
    ``threads`` is given). A backend name instead of a config: that backend, ``device`` and
    ``threads`` from ``options`` (the older form, kept for callers that name a backend)."""
    if isinstance(runtime, str):
        runtime = RuntimeConfig(backend=runtime, device=options.pop("device", "cpu"))
    else:
        options.pop("device", None)
        options.setdefault("threads", runtime.threads)
    route_of(runtime.backend, runtime.device)
    module = importlib.import_module(BACKENDS[runtime.backend])
    return module.load(Path(path), precision, device=runtime.device, **options)
