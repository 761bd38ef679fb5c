"""Inference backends: one file each, one small protocol, picked by name.

A backend loads one ONNX graph (or the engine compiled from it) and runs it on a dict of
numpy arrays. Heavy or optional imports happen inside the backend module that needs them,
with a message that says what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = {
    "ort": "emolive.runtime.backends.ort",
    "trt": "emolive.runtime.backends.trt",
}


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


class GraphRunner(Protocol):
    """What every backend returns from ``load``."""

    backend: str
    device: str  # "cpu" | "cuda" | "tensorrt"
    precision: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


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


def load(backend: str, path: Path, precision: str, **options) -> GraphRunner:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    module = importlib.import_module(BACKENDS[backend])
    return module.load(Path(path), precision, **options)
