"""INT8 Q/DQ variants of the affectgpt encoders, bounded by per-token cosine with fp32.

Each encoder turns a window into one LLM-space token (vision, audio) and the fusion graph
turns their feature means into the ``<Multi>`` token. The int8 graph is what
``calibrate.qdq`` makes for the lite vision graphs: symmetric int8 activations, 7-bit
per-channel weights (exact on every CPU class), the output heads (here the projections into
the LLM's space) kept in fp32. Its bound: on every check window, the cosine between the int8
and fp32 token is at least ``MIN_TOKEN_COSINE``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from emolive.calibrate.affectgpt.windows import Window
from emolive.calibrate.qdq import QuantConfig, _prepare, quantize_qdq
from emolive.runtime.affectgpt import spec
from emolive.runtime.backends.ort import OrtGraph

# Not the fusion graph: it is all projection (two feature means in, one token out), the
# part of the encoders that stays fp32 here (``pooling_nodes``); int8 would save nothing.
ENCODERS = (spec.VISION, spec.AUDIO)
MIN_TOKEN_COSINE = 0.99


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (both [n, d]); two zero rows
    (a silent window's features) agree, a zero row and another do not."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    c = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    return np.where((na < 1e-12) & (nb < 1e-12), 1.0, c)


def feeds(graph: str, windows: Sequence[Window]) -> list[dict]:
    """One feed per window for ``graph``."""
    if graph == spec.VISION:
        return [{spec.PIXELS: w.pixels} for w in windows]
    if graph == spec.AUDIO:
        return [{spec.CLIPS: w.clips} for w in windows]
    raise ValueError(f"{graph!r} is not an encoder calibrated here ({', '.join(ENCODERS)})")


def quantize(fp32: Path, out: Path, calibration: list[dict], config: QuantConfig) -> dict:
    """Write the Q/DQ graph, its stem and pooling in fp32; what the quantizer did."""
    with tempfile.TemporaryDirectory(prefix="emolive-affectgpt-") as tmp:
        # Node names as the quantizer will see them, after its own preparation pass.
        prepared = _prepare(fp32, Path(tmp) / "prepared.onnx", config)
    keep = pooling_nodes(prepared) + stem_nodes(prepared)
    config = replace(config, exclude_nodes=(*config.exclude_nodes, *keep))
    q = quantize_qdq(fp32, out, calibration, config)
    return {"quantize_nodes": q.quantize_nodes, "dequantize_nodes": q.dequantize_nodes,
            "fp32_nodes": list(q.fp32_nodes), "calibration_windows": q.samples}  # fmt: skip


def agreement(fp32: OrtGraph, int8: OrtGraph, check: list[dict]) -> dict:
    """Per-output cosine of int8 with fp32 over the check feeds (token first)."""
    got = {name: ([], []) for name in fp32.output_names}
    for feed in check:
        ref, out = fp32.run(feed), int8.run(feed)
        for name in got:
            got[name][0].append(ref[name].reshape(-1))
            got[name][1].append(out[name].reshape(-1))
    record = {"check_windows": len(check)}
    for name, (ref, out) in got.items():
        c = cosines(np.stack(ref), np.stack(out))
        record[f"{name}_cosine_min"] = round(float(c.min()), 6)
        record[f"{name}_cosine_mean"] = round(float(c.mean()), 6)
    return record


def bound_failures(record: dict, floor: float = MIN_TOKEN_COSINE) -> list[str]:
    got = record[f"{spec.TOKEN}_cosine_min"]
    if got >= floor:
        return []
    return [f"token cosine with fp32 is {got:.4f} on a check window, needs >= {floor}"]


def pooling_nodes(model) -> list[str]:
    """Nodes from the per-frame (per-clip) features on: the attention pooling and the
    projections into the LLM's space, one token's worth of compute kept in fp32. The
    features are what the ``feature_mean`` output averages."""
    producer = {o: n for n in model.graph.node for o in n.output}
    mean = producer.get(spec.FEATURE_MEAN)
    if mean is None:
        return []
    reached, frontier = set(), {mean.input[0]}
    while frontier:
        name = frontier.pop()
        for node in model.graph.node:
            if name in node.input and node.name not in reached:
                reached.add(node.name)
                frontier.update(node.output)
    return [n.name for n in model.graph.node if n.name in reached]


_HEAD_OPS = {"Conv", "MatMul", "Gemm"}


def stem_nodes(model) -> list[str]:
    """Nodes from the graph's input up to (and including) its first weighted layer: the raw
    waveform (pixels) normalised and convolved once, kept in fp32 like the output heads."""
    inits = {i.name for i in model.graph.initializer}
    reached = {i.name for i in model.graph.input if i.name not in inits}
    found = []
    for node in model.graph.node:  # topologically sorted
        # Along the data (first input) only: shape arithmetic reaches every Reshape.
        if node.op_type in ("Constant", "Shape") or not node.input or node.input[0] not in reached:
            continue
        found.append(node.name)
        if node.op_type not in _HEAD_OPS:
            reached.update(node.output)
    return found
