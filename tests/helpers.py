"""Small builders the tests share: tiny ONNX graphs and wheels made on the spot."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path, opset: int = 17, in_name: str = "x", out_name: str = "y") -> Path:
    """y = x @ W + b, x [batch, 4] -> y [batch, 3]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [in_name, "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], [out_name]),
        ],
        "tiny",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def browser() -> str | None:
    """Debian's Chromium (the Makefile installs it), or None where it is absent."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, profile: Path, budget_ms: int = 3000):
    """Load ``url`` in headless Chromium with a fresh profile; the finished process (its
    stdout is the page's DOM after ``budget_ms`` of virtual time)."""
    import subprocess

    return subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
