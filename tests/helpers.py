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


def dump_dom(url: str, profile: Path, budget_ms: int = 3000, done=None, tries: int = 4):
    """Load ``url`` in headless Chromium with a fresh profile; the finished process (its
    stdout is the page's DOM after ``budget_ms`` of virtual time).

    Virtual time does not wait for network I/O, so on a loaded machine the page may not have
    heard from its WebSocket yet when the budget runs out. With ``done`` (a test on the DOM
    saying the page reached a final state), the page is loaded again in a fresh profile with
    twice the budget until ``done`` holds or ``tries`` loads were made; the last load is
    returned either way, and the caller's assertions judge it.
    """
    import subprocess

    for attempt in range(tries if done else 1):
        proc = subprocess.run(
            [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile / str(attempt)}",
             f"--virtual-time-budget={budget_ms << attempt}", "--dump-dom", url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done is None or done(proc.stdout):
            break
    return proc
