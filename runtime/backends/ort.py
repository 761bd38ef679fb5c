"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from emolive.runtime.cpu import this_cpu
from emolive.runtime.int8 import for_this_cpu

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def available_devices() -> list[str]:
    have = set(ort.get_available_providers())
    return [d for d, provs in _PROVIDERS.items() if provs[0] in have]


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


@dataclass
class OrtGraph:
    path: Path
    precision: str
    device: str = "cpu"
    threads: int | None = None
    backend: str = "ort"
    cpu_note: str | None = field(init=False, default=None)
    session: ort.InferenceSession = field(init=False, repr=False)

    def __post_init__(self):
        if self.device not in _PROVIDERS:
            raise ValueError(
                f"unknown device {self.device!r}; choose one of {', '.join(_PROVIDERS)}"
            )
        wanted = _PROVIDERS[self.device]
        if wanted[0] not in ort.get_available_providers():
            raise RuntimeError(
                f"ONNX Runtime here has no {wanted[0]} (it has {ort.get_available_providers()}); "
                f"for device {self.device!r} install emo-live[gpu] (onnxruntime-gpu)"
            )
        # On the CPU, int8 GEMMs that would saturate here load as u8×u8 (runtime/int8.py).
        cpu = this_cpu() if self.device == "cpu" else None
        try:
            with for_this_cpu(self.path, cpu) as (source, self.cpu_note):
                self.session = ort.InferenceSession(
                    source, sess_options=session_options(self.threads), providers=wanted
                )
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise RuntimeError(f"ONNX Runtime could not load {self.path}: {e}") from e
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outs, strict=True))


def load(path: Path, precision: str, device: str = "cpu", threads: int | None = None) -> OrtGraph:
    return OrtGraph(path, precision, device=device, threads=threads)
