"""What several commands share: where the default bundle lives, option checks."""

from __future__ import annotations

import contextlib
import math
import os
import signal
from pathlib import Path

import click

BUNDLE_ENV = "EMOLIVE_BUNDLE"


def default_bundle() -> Path:
    """``$EMOLIVE_BUNDLE``, else ``bundles/lite`` under the current folder (what `make demo` writes)."""
    return Path(os.environ.get(BUNDLE_ENV, "bundles/lite"))


@contextlib.contextmanager
def graceful_stop(session):
    """SIGINT/SIGTERM ask the session to stop cleanly: capture ends, the last window is still
    explained and written. A second SIGINT stops at once. Yields a dict telling whether a
    signal came."""
    state = {"interrupted": False}

    def handler(signum, frame):
        if state["interrupted"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state["interrupted"] = True
        session.stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and infinities (which pass every comparison)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{rv} is not a finite number.", param, ctx)
        return rv


class PositiveSeconds(FiniteFloatRange):
    """A duration in seconds: finite and above 0."""

    name = "seconds"

    def __init__(self) -> None:
        super().__init__(min=0.0, min_open=True)


def check_output_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Option callback: an output file ('-' = stdout) must be writable, checked while the
    options are parsed, before any model loads (exit code 2 naming the option and path)."""
    if value is None or value == "-":
        return value
    from emolive.runtime.sinks.jsonl import SinkError, check_writable

    try:
        check_writable(value)
    except SinkError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from e
    return value


def check_labels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """Option callback for --labels: the parsed labels, or exit code 2 naming the option."""
    return parse_labels(value, ctx, param)


def parse_labels(spec: str, ctx=None, param=None) -> tuple[str, ...]:
    """``fer``, ``mer``, or a comma-separated list of labels (open vocabulary), checked by the
    reasoning stage's own rule (``LabelSet``: 2..64 labels, no duplicates) so that `run` and
    `reason` accept the same lists."""
    from emolive.runtime.reasoning.labels import LabelSet, LabelSetError

    try:
        return LabelSet.parse(spec).labels
    except LabelSetError as e:
        raise click.BadParameter(
            str(e), ctx=ctx, param=param, param_hint=None if param else "--labels"
        ) from e


def runtime_options(command):
    """``--device`` and ``--backend``: where every graph of the bundle runs (one pair of
    options for run, serve, reason and bench). Read them with ``runtime_config``."""
    command = click.option(
        "--backend",
        type=click.Choice(["ort", "trt"]),
        default="ort",
        show_default=True,
        help="ort: ONNX Runtime (its CPU, CUDA or TensorRT execution provider); trt: native "
        "TensorRT engines (device tensorrt).",
    )(command)
    return click.option(
        "--device",
        type=click.Choice(["cpu", "cuda", "tensorrt"]),
        default=None,
        help="Where the graphs run (default: cpu; tensorrt with --backend trt). Checked "
        "before any model loads.",
    )(command)


def runtime_config(
    device: str | None,
    backend: str = "ort",
    precision: dict[str, str] | None = None,
    threads: int | None = None,
):
    """The ``RuntimeConfig`` for ``--device``/``--backend``, checked here before any model
    loads: a device this machine cannot run is one line (exit code 1) saying what to
    install."""
    from emolive.runtime.backends import RuntimeConfig, check_device

    device = device or ("tensorrt" if backend == "trt" else "cpu")
    runtime = RuntimeConfig(
        backend=backend, device=device, precision=dict(precision or {}), threads=threads
    )
    try:
        check_device(runtime)
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    return runtime
