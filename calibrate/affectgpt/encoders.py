"""INT8 Q/DQ variants of the LLM profiles' encoders, bounded by per-token cosine with fp32.

Each encoder turns a window into LLM-space tokens (affectgpt: one per encoder, its fusion
graph turning their feature means into the ``<Multi>`` token; emotion_llama: EVA's 256 patch
tokens and CLS token, one token each from MAE, VideoMAE and HuBERT). The int8 graph is what
``calibrate.qdq`` makes for the lite vision graphs: symmetric int8 activations, 7-bit
per-channel weights (exact on every CPU class), the input stem and the output heads (the
projections into the LLM's space) kept in fp32. Its bound: on every check window, the cosine
between each int8 token and its fp32 token is at least ``MIN_TOKEN_COSINE``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from emolive.calibrate.affectgpt.profiles import AFFECTGPT, Profile
from emolive.calibrate.affectgpt.windows import Window
from emolive.calibrate.qdq import QuantConfig, _prepare, quantize_qdq
from emolive.runtime.affectgpt import spec
from emolive.runtime.backends.ort import OrtGraph

# affectgpt's; not its fusion graph: it is all projection (two feature means in, one token
# out), the part of the encoders that stays fp32 here (``pooling_nodes``).
ENCODERS = AFFECTGPT.encoders
MIN_TOKEN_COSINE = 0.99


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (both [n, d]); two zero rows
    (a silent window's features) agree, a zero row and another do not."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    c = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    return np.where((na < 1e-12) & (nb < 1e-12), 1.0, c)


def feeds(graph: str, windows: Sequence[Window], profile: Profile = AFFECTGPT) -> list[dict]:
    """One feed per window for ``graph``."""
    return [profile.feed(graph, w) for w in windows]


def quantize(fp32: Path, out: Path, calibration: list[dict], config: QuantConfig,
             heads: str = "pooling") -> dict:  # fmt: skip
    """Write the Q/DQ graph, its stem and heads in fp32 (``heads``: "pooling", everything
    from the feature mean's input on; "projection", each output's last weighted layer on);
    what the quantizer did."""
    with tempfile.TemporaryDirectory(prefix="emolive-calibrate-") as tmp:
        # Node names as the quantizer will see them, after its own preparation pass.
        prepared = _prepare(fp32, Path(tmp) / "prepared.onnx", config)
    head = pooling_nodes(prepared) if heads == "pooling" else projection_nodes(prepared)
    keep = head + stem_nodes(prepared)
    config = replace(config, exclude_nodes=(*config.exclude_nodes, *keep))
    q = quantize_qdq(fp32, out, common_shape(calibration), config)
    return {"quantize_nodes": q.quantize_nodes, "dequantize_nodes": q.dequantize_nodes,
            "fp32_nodes": list(q.fp32_nodes), "calibration_windows": q.samples}  # fmt: skip


def common_shape(feeds: list[dict]) -> list[dict]:
    """The feeds cut to one shape per input (the smallest along each axis): ORT's calibrator
    stacks every tensor over the samples, and windows of audio differ in length."""
    out = [dict(f) for f in feeds]
    for name in feeds[0] if feeds else ():
        shape = np.min([f[name].shape for f in feeds], axis=0)
        for f in out:
            f[name] = f[name][tuple(slice(0, int(n)) for n in shape)]
    return out


def agreement(fp32: OrtGraph, int8: OrtGraph, check: list[dict],
              tokens: Sequence[str] = (spec.TOKEN,)) -> dict:  # fmt: skip
    """Per-output cosine of int8 with fp32 over the check feeds (each output whole, per
    window), and ``token_cosine_min``/``mean`` over every token (row) of the ``tokens``
    outputs on every window."""
    got = {name: ([], []) for name in fp32.output_names}
    rows = []
    for feed in check:
        ref, out = fp32.run(feed), int8.run(feed)
        for name in got:
            got[name][0].append(ref[name].reshape(-1))
            got[name][1].append(out[name].reshape(-1))
        for name in tokens:
            d = ref[name].shape[-1]
            rows.append(cosines(ref[name].reshape(-1, d), out[name].reshape(-1, d)))
    record = {"check_windows": len(check)}
    for name, (ref, out) in got.items():
        c = cosines(np.stack(ref), np.stack(out))
        record[f"{name}_cosine_min"] = round(float(c.min()), 6)
        record[f"{name}_cosine_mean"] = round(float(c.mean()), 6)
    if rows:
        c = np.concatenate(rows)
        record["token_cosine_min"] = round(float(c.min()), 6)
        record["token_cosine_mean"] = round(float(c.mean()), 6)
        record["tokens_compared"] = len(c)
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
_SHAPED_OPS = {"Reshape", "Expand", "Slice", "Gather", "Squeeze", "Unsqueeze", "Tile"}


def projection_nodes(model) -> list[str]:
    """Nodes from each output back to its last weighted layer (included): the projection
    into the LLM's space and its bias, kept in fp32 as the lite graphs' output heads."""
    inits = {i.name for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    found, frontier = set(), [o.name for o in model.graph.output]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in found:
            continue
        found.add(node.name)
        if node.op_type == "Shape" or (
            node.op_type in _HEAD_OPS and any(i in inits for i in node.input[1:])
        ):
            continue
        # Along the data only where the other inputs are shapes or indices.
        data = node.input[:1] if node.op_type in _SHAPED_OPS else node.input
        frontier.extend(i for i in data if i and i not in inits)
    return [n.name for n in model.graph.node if n.name in found]


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
