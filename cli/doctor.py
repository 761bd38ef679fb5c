"""`emo-live doctor`: what this machine has, what the bundle holds, and what is missing."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from pathlib import Path

import click

from emolive.cli.common import default_bundle


def _cameras(max_index: int = 4) -> list[dict]:
    import cv2

    found = []
    # OpenCV prints warnings for every index it cannot open; they are expected here.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    for i in range(max_index):
        if not Path(f"/dev/video{i}").exists() and os.name == "posix":
            continue
        cap = cv2.VideoCapture(i)
        if cap.isOpened():
            found.append({"index": i, "width": cap.get(3), "height": cap.get(4)})
        cap.release()
    return found


@contextlib.contextmanager
def _quiet_stderr():
    """PortAudio's ALSA/JACK probes print pages of noise on machines without sound cards."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _microphones() -> dict:
    if importlib.util.find_spec("pyaudio") is None:
        return {
            "ok": False,
            "missing": "PyAudio: pip install 'emo-live[audio]' (Debian: portaudio19-dev)",
        }
    import pyaudio

    with _quiet_stderr():
        pa = pyaudio.PyAudio()
    try:
        mics = [
            {"index": i, "name": info["name"], "channels": int(info["maxInputChannels"])}
            for i in range(pa.get_device_count())
            if (info := pa.get_device_info_by_index(i))["maxInputChannels"] > 0
        ]
    finally:
        pa.terminate()
    return {"ok": bool(mics), "devices": mics}


def _bundle(path: Path) -> dict:
    from emolive.runtime.bundle import Bundle, BundleError

    try:
        b = Bundle.open(path)
    except BundleError as e:
        return {"ok": False, "path": str(path), "error": str(e),
                "fix": "make bundle (or: emo-live models fetch && emo-live export && emo-live calibrate)"}  # fmt: skip
    return {
        "ok": True,
        "path": str(path),
        "profile": b.profile,
        "graphs": {
            n: {"variants": sorted(g.variants), "prefer": g.prefer} for n, g in b.graphs.items()
        },
    }


def _routes() -> dict:
    """Every (backend, device) route: "ok" if it can run here, else what to install."""
    from emolive.runtime.backends import ROUTES, DeviceUnavailable, RuntimeConfig, check_device

    out = {}
    for (backend, device), route in ROUTES.items():
        try:
            check_device(RuntimeConfig(backend=backend, device=device))
            out[route] = "ok"
        except DeviceUnavailable as e:
            out[route] = str(e)
    return out


def _machine(bundle_path: Path, context: int | None) -> dict:
    """GPU, Jetson and the Orin Nano 8 GB memory budget of the bundle (if it opens)."""
    from emolive.runtime.bundle import Bundle, BundleError
    from emolive.runtime.machine import jetson, memory_budget, nvidia_gpus

    board = jetson()
    out = {
        "gpus": nvidia_gpus(),
        "jetson": None if board is None else {
            "model": board.model, "l4t": board.l4t, "jetpack": board.jetpack,
            "unified_memory": "CPU and GPU share DRAM: no pinned host copies; every stage's "
            "memory, GPU graphs included, comes out of the board's RAM",
        },
    }  # fmt: skip
    try:
        out["orin_nano_budget"] = memory_budget(Bundle.open(bundle_path, verify=False), "cuda",
                                                max_context=context)  # fmt: skip
    except BundleError as e:
        out["orin_nano_budget"] = {"error": str(e)}
    return out


def _sources() -> dict:
    from emolive.export import sources as src

    return {name: ("cached" if src.is_cached(s) else "missing") for name, s in src.SOURCES.items()}


@click.command("doctor")
@click.option("--bundle", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--context",
    type=click.IntRange(min=1),
    default=None,
    help="LLM context (KV cache tokens) for the memory budget (default: what the session "
    "allocates: the decoder's max_context, else 1024).",
)
def doctor(bundle: Path | None, as_json: bool, context: int | None) -> None:
    """Check cameras, microphones, ONNX Runtime providers, GPUs, model sources and the bundle.

    Says what is missing and how to install it, which inference routes can run here, whether
    this is a Jetson (unified memory), and what the bundle would take, stage by stage, of an
    Orin Nano's 8 GB (from its files: weights, side files, KV cache; not measured).

    \b
    Example:
      emo-live doctor
      emo-live doctor --bundle bundles/lite --json
    """
    import onnxruntime as ort

    bundle = bundle or default_bundle()
    report = {
        "onnxruntime": {"version": ort.__version__, "providers": ort.get_available_providers()},
        "routes": _routes(),
        **_machine(bundle, context),
        "tensorrt": importlib.util.find_spec("tensorrt") is not None,
        "export_extra": importlib.util.find_spec("torch") is not None,
        "cameras": _cameras(),
        "microphones": _microphones(),
        "sources": _sources(),
        "bundle": _bundle(bundle),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    ok, bad = click.style("ok", fg="green"), click.style("missing", fg="red")
    o = report["onnxruntime"]
    click.echo(f"onnxruntime {o['version']}: {', '.join(o['providers'])}")
    if "CUDAExecutionProvider" not in o["providers"]:
        click.echo("  no CUDA provider: for a GPU, pip install 'emo-live[gpu]'")
    click.echo(
        f"tensorrt: {ok if report['tensorrt'] else 'not installed (only needed for the trt backend)'}"
    )
    for route, state in report["routes"].items():
        click.echo(f"route {route}: {ok if state == 'ok' else 'no: ' + state}")
    gpus = report["gpus"]
    click.echo("gpu: " + (", ".join(f"{g['name']} (driver {g['driver']}, {g['memory_mb']} MB)"
                                    for g in gpus) or "none found (no nvidia-smi)"))  # fmt: skip
    board = report["jetson"]
    if board:
        click.echo(f"jetson: {board['model'] or 'unknown model'}, L4T {board['l4t']}, "
                   f"JetPack {board['jetpack'] or 'unknown'}; {board['unified_memory']}")  # fmt: skip
    else:
        click.echo("jetson: no (no /etc/nv_tegra_release, no Jetson device-tree model)")
    _echo_budget(report["orin_nano_budget"])
    click.echo(
        f"export tooling (torch): {ok if report['export_extra'] else bad + ' (pip install emo-live[export])'}"
    )
    cams = report["cameras"]
    click.echo(
        f"cameras: {', '.join(str(c['index']) for c in cams) if cams else bad + ' (use --source FILE)'}"
    )
    mics = report["microphones"]
    if "missing" in mics:
        click.echo(f"microphones: {bad} ({mics['missing']})")
    else:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in mics["devices"])
        click.echo(f"microphones: {names or bad + ' (use --no-audio or an audio file)'}")
    for name, state in report["sources"].items():
        click.echo(
            f"source {name}: {ok if state == 'cached' else bad + ' (emo-live models fetch)'}"
        )
    b = report["bundle"]
    if b["ok"]:
        click.echo(f"bundle {b['path']}: {ok} ({b['profile']})")
        for name, g in b["graphs"].items():
            click.echo(f"  {name}: {', '.join(g['variants'])}; prefer {g['prefer'] or 'fp32'}")
    else:
        click.echo(f"bundle: {bad}: {b['error']}\n  fix: {b['fix']}")


def _echo_budget(budget: dict) -> None:
    if "error" in budget:
        click.echo(f"Orin Nano 8 GB budget: no bundle ({budget['error']})")
        return
    mb = 1e6
    click.echo(f"Orin Nano {budget['memory_gb']:g} GB budget (variants for {budget['device']}, "
               f"{budget['reserve_gb']:g} GB kept for the OS and workspaces):")  # fmt: skip
    for stage, s in budget["stages"].items():
        click.echo(f"  {stage}: {s['bytes'] / mb:.1f} MB")
    verdict = "fits" if budget["fits"] else "does NOT fit"
    click.echo(f"  total {budget['total_bytes'] / mb:.1f} MB: {verdict} "
               f"(headroom {budget['headroom_bytes'] / mb:.0f} MB); {budget['note']}")  # fmt: skip
