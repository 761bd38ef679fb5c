"""Silero VAD run directly on ONNX Runtime, its recurrent state carried across frames.

The graph takes one 32 ms frame (512 samples at 16 kHz) plus the last 64 samples of the
previous frame as context, and a [2, 1, 128] state that it returns updated. Carrying both
from call to call is what makes a stream of short chunks score like one long signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emolive.runtime import backends, names
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.media import AUDIO_RATE

FRAME = 512  # samples per VAD call at 16 kHz
CONTEXT = 64  # samples of the previous frame the graph sees
FRAME_S = FRAME / AUDIO_RATE


class SileroVad:
    """``score(frame)`` -> speech probability of one 512-sample frame, in stream order."""

    def __init__(
        self, path: Path | str, threads: int = 1, runtime: RuntimeConfig | None = None,
        graph=None, notes: list[str] | None = None, info: dict | None = None,
    ) -> None:  # fmt: skip
        """``path``: the graph file, loaded fp32 on ``runtime`` (None: the CPU); or ``graph``:
        a runner already loaded (``from_bundle``: the bundle's variant, through the gate)."""
        self.path = Path(path)
        # One thread: a call costs well under a millisecond; more threads only add overhead.
        # (The runtime's threads are for the big graphs; the VAD keeps its own.)
        self.graph = graph or backends.load(
            runtime or RuntimeConfig(), self.path, "fp32", threads=threads
        )
        want = {names.VAD_INPUT, names.VAD_STATE, names.VAD_RATE}
        if set(self.graph.input_names) != want:
            raise ValueError(
                f"{self.path}: not a Silero VAD graph (inputs {self.graph.input_names}, "
                f"expected {sorted(want)})"
            )
        self._sr = np.array(AUDIO_RATE, dtype=np.int64)
        self.notes = list(notes or [])
        self.backend_info = {names.VAD: info or self.graph.info}
        self.reset()

    @classmethod
    def from_bundle(
        cls, bundle, threads: int = 1, runtime: RuntimeConfig | None = None
    ) -> SileroVad:
        """The bundle's VAD on ``runtime``'s device: its device variant where it has one
        (e.g. fp16 for CUDA), checked against the graph's probe there (the parity gate)."""
        from emolive.runtime.parity import load_graph

        gated = load_graph(bundle, names.VAD, runtime or RuntimeConfig(), threads=threads)
        return cls(gated.variant.path, graph=gated.runner, notes=gated.notes, info=gated.info)

    def reset(self) -> None:
        """Start a new stream: zero state, silent context."""
        self._state = np.zeros((2, 1, 128), np.float32)
        self._input = np.zeros((1, CONTEXT + FRAME), np.float32)

    def score(self, frame: np.ndarray) -> float:
        if frame.shape != (FRAME,):
            raise ValueError(f"VAD frame must be {FRAME} samples, got shape {frame.shape}")
        x = self._input
        x[0, :CONTEXT] = x[0, -CONTEXT:]
        x[0, CONTEXT:] = frame
        out = self.graph.run(
            {names.VAD_INPUT: x, names.VAD_STATE: self._state, names.VAD_RATE: self._sr}
        )
        self._state = out[names.VAD_STATE_OUT]
        return float(out[names.VAD_PROBABILITY][0, 0])

    def scores(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of every whole frame of ``samples`` (continuing the stream)."""
        n = len(samples) // FRAME
        return np.array([self.score(samples[i * FRAME : (i + 1) * FRAME]) for i in range(n)])
