"""A torch module exported to ONNX and checked against itself before it is written: the
graph runs in ONNX Runtime (CPU) on the same inputs and each output must stay within
``TOLERANCE`` of torch's, relative to the output's largest magnitude.

The LLM profiles (affectgpt, emotion_llama) build their encoders from local Hugging Face
folders and export them with this; the lite profile's graphs are checked against their
original tflite / torch references in ``checks.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

ONNX_OPSET = 17
TOLERANCE = 1e-3  # max |onnx - torch| relative to max |torch|, per output


class GraphCheckError(RuntimeError):
    """An exported graph (or a file made with it) fails its check; the message names the
    graph and the difference. Raised before anything is written to the bundle."""


def export_onnx(module, args: tuple, path: Path, inputs: Sequence[str],
                outputs: Sequence[str], axes: dict | None) -> Path:  # fmt: skip
    """``torch.onnx.export`` by tracing (the TorchScript exporter), named inputs, outputs and
    dynamic axes, at ``ONNX_OPSET``."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            module, args, str(path), input_names=list(inputs), output_names=list(outputs),
            dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False,
        )  # fmt: skip
    _one_data_file(path)
    return path


def _one_data_file(path: Path) -> None:
    """Past protobuf's 2 GB (EVA ViT-g: ~4 GB) the exporter writes each weight to its own
    file beside the graph; they become one ``<graph>.data`` (``save_external``), which the
    bundle writer carries with the graph."""
    import onnx

    from emolive.export.llm.bundle import save_external

    model = onnx.load(str(path), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data
                 if e.key == "location"}  # fmt: skip
    if not locations or locations == {f"{path.name}.data"}:
        return
    model = onnx.load(str(path))  # with its weights
    save_external(model, path)
    for name in locations:
        (path.parent / name).unlink(missing_ok=True)


def compare_outputs(graph: str, path: Path, feeds: dict, want: dict[str, np.ndarray]) -> dict:
    """Run ``path`` on ``feeds``; every output named in ``want`` within ``TOLERANCE``, else
    ``GraphCheckError``. Returns ``{output}_max_abs_diff`` for each."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    record = {}
    for name, ref in want.items():
        err = float(np.max(np.abs(got[name] - ref)))
        scale = float(np.max(np.abs(ref))) or 1.0
        if not err <= TOLERANCE * scale:  # also catches NaN
            raise GraphCheckError(
                f"{graph}: output {name!r} differs from torch by {err:.3g} (scale {scale:.3g})"
            )
        record[f"{name}_max_abs_diff"] = err
    return record


def export_checked(graph: str, module, args: tuple, work: Path, inputs: Sequence[str],
                   outputs: Sequence[str], axes: dict | None = None,
                   check_args: tuple | None = None) -> tuple[Path, dict, dict[str, np.ndarray]]:  # fmt: skip
    """Export ``module`` traced on ``args`` to ``work/<graph>.onnx``, then check it on
    ``check_args`` (default: ``args``; other sizes exercise the dynamic axes). Returns (path,
    the check's record, torch's outputs on ``check_args`` by name)."""
    check_args = args if check_args is None else check_args
    path = export_onnx(module, args, Path(work) / f"{graph}.onnx", inputs, outputs, axes)
    with torch.no_grad():
        ref = module(*check_args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    feeds = {k: a.numpy() for k, a in zip(inputs, check_args, strict=True)}
    want = {o: r.numpy() for o, r in zip(outputs, ref, strict=True)}
    return path, compare_outputs(graph, path, feeds, want), want
