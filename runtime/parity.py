"""The parity gate: a reduced-precision variant measured on one CPU class, checked on another.

Every quantized variant in a bundle records the CPU that measured it (``measured_on``) and,
with the graph's probe (a few inputs and the fp32 reference outputs on them, ``probe.<graph>``
in the bundle's files), how far it strayed from fp32 there (``probe_deviation``) and the most
it may stray anywhere (``probe_tolerance``). Loaded on the same CPU class, a variant is
trusted as measured. On another class the runtime runs the probe; if the variant strays past
its tolerance (saturating int8 kernels make errors several times the measured rounding noise)
the caller falls back to fp32 and says so.

On a GPU (device "cuda" or "tensorrt") kernels differ from the CPU's whatever the precision,
so every variant with a tolerance (a device variant, e.g. an fp16 LLM for CUDA, records one
per device under ``devices.<device>``; fp32 gets the floor) is checked there, once per file
and device, and one that disagrees falls back: to fp32 on the device, then fp32 on the CPU,
with a note that reaches the readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from emolive.runtime import backends
from emolive.runtime.bundle import Bundle, GraphVariant
from emolive.runtime.cpu import CpuInfo, cpu_class_of, this_cpu

Loaded = TypeVar("Loaded")

PROBE_FILE_KEY = "probe.{graph}"
# Rounding noise on another CPU class may differ a little from what was measured (kernels
# round activations differently); saturation errors are many times larger.
TOLERANCE_FACTOR = 1.5
TOLERANCE_FLOOR = 0.01


def probe_key(graph: str) -> str:
    return PROBE_FILE_KEY.format(graph=graph)


def deviation(got: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """Largest |got - reference| over each output, relative to that output's largest |value|."""
    worst = 0.0
    for name, ref in reference.items():
        ref = np.asarray(ref, np.float32)
        diff = np.abs(np.asarray(got[name], np.float32) - ref).max(initial=0.0)
        worst = max(worst, float(diff / max(float(np.abs(ref).max(initial=0.0)), 1e-12)))
    return worst


def tolerance_for(measured: float) -> float:
    return TOLERANCE_FACTOR * measured + TOLERANCE_FLOOR


@dataclass(frozen=True)
class Probe:
    """Inputs of a graph and its fp32 outputs on them."""

    inputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]

    def save(self, path: Path) -> Path:
        arrays = {f"in/{k}": v for k, v in self.inputs.items()}
        arrays.update({f"out/{k}": v for k, v in self.reference.items()})
        np.savez_compressed(path, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> Probe:
        try:
            with np.load(path, allow_pickle=False) as data:
                inputs = {k[3:]: data[k] for k in data.files if k.startswith("in/")}
                reference = {k[4:]: data[k] for k in data.files if k.startswith("out/")}
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: not a readable probe file: {e}") from e
        if not inputs or not reference:
            raise ValueError(f"{path}: a probe needs inputs and reference outputs")
        return cls(inputs, reference)

    def record(self, run: Callable[[dict], dict]) -> dict:
        """What a variant's info gets from measuring ``run`` on this probe here."""
        measured = deviation(run(self.inputs), self.reference)
        return {
            "measured_on": this_cpu().record(),
            "probe_deviation": round(measured, 6),
            "probe_tolerance": round(tolerance_for(measured), 6),
        }


@dataclass(frozen=True)
class GateResult:
    """Whether a variant may be used here, and the note to report when it may not."""

    passed: bool
    checked: bool  # False: same CPU class as measured (or nothing to check)
    deviation: float | None = None
    note: str | None = None


def check_variant(
    info: dict, probe_path: Path | None, run: Callable[[dict], dict], cpu: CpuInfo, what: str
) -> GateResult:
    """Gate one variant (its manifest ``info``) whose graph ``run`` executes, on ``cpu``."""
    measured_class = cpu_class_of(info.get("measured_on"))
    if measured_class == cpu.cpu_class:
        return GateResult(passed=True, checked=False)
    tolerance = info.get("probe_tolerance")
    if probe_path is None or not isinstance(tolerance, int | float):
        return GateResult(
            passed=True,
            checked=False,
            note=f"{what}: measured on {measured_class or 'an unrecorded CPU'}, not "
            f"re-checked on this {cpu.cpu_class} CPU (the bundle has no probe for it)",
        )
    probe = Probe.load(probe_path)
    dev = deviation(run(probe.inputs), probe.reference)
    if dev <= tolerance:
        return GateResult(passed=True, checked=True, deviation=dev)
    return GateResult(
        passed=False,
        checked=True,
        deviation=dev,
        note=f"{what}: strays {dev:.3g} from fp32 on this {cpu.cpu_class} CPU (tolerance "
        f"{tolerance:.3g}, measured {info.get('probe_deviation')} on {measured_class}); "
        f"fell back to fp32",
    )


def device_tolerance(info: dict, precision: str, device: str) -> float | None:
    """The most a variant may stray from fp32 on ``device``: what export recorded for that
    device, else the variant's own tolerance, else (fp32) the floor; None: unknown."""
    recorded = (info.get("devices") or {}).get(device) or {}
    for tolerance in (recorded.get("probe_tolerance"), info.get("probe_tolerance")):
        if isinstance(tolerance, int | float) and not isinstance(tolerance, bool):
            return float(tolerance)
    return tolerance_for(0.0) if precision == "fp32" else None


# (file, digest with its external data, device) -> the gate's result: a probe runs once per
# file and device.
_DEVICE_GATES: dict[tuple[str, str, str], GateResult] = {}


def check_on_device(
    variant: GraphVariant, probe_path: Path | None, run: Callable[[dict], dict], device: str
) -> GateResult:
    """Gate ``variant`` (run by ``run`` on a non-CPU ``device``) against the graph's probe."""
    key = (str(variant.path), variant.digest, device)
    if key in _DEVICE_GATES:
        return _DEVICE_GATES[key]
    what = f"{variant.graph} {variant.precision} on {device}"
    tolerance = device_tolerance(variant.info, variant.precision, device)
    if probe_path is None or tolerance is None:
        gate = GateResult(
            passed=True,
            checked=False,
            note=None
            if variant.precision == "fp32"
            else f"{what}: not checked (the bundle has no probe or tolerance for it)",
        )
    else:
        probe = Probe.load(probe_path)
        dev = deviation(run(probe.inputs), probe.reference)
        note = None
        if dev > tolerance:
            note = f"{what}: strays {dev:.3g} from fp32 (tolerance {tolerance:.3g}); refused"
        gate = GateResult(passed=dev <= tolerance, checked=True, deviation=dev, note=note)
    _DEVICE_GATES[key] = gate
    return gate


def load_checked(
    bundle: Bundle,
    graph: str,
    variant: GraphVariant,
    load: Callable[[GraphVariant, str], Loaded],
    probe_run: Callable[[Loaded], Callable[[dict], dict]],
    cpu: CpuInfo | None,
    device: str = "cpu",
) -> tuple[Loaded, GraphVariant, str | None]:
    """``load(variant, device)``, gated. On the CPU (``cpu``: its class; None: nothing to
    check) a reduced variant is checked against the graph's probe, run by
    ``probe_run(loaded)``, and replaced by the graph's fp32 variant if it strays. On another
    device the variant, then fp32, is checked there, and fp32 on the CPU is the last resort.
    Returns what was loaded, its variant, and the gate's note (None: nothing to say)."""
    entry = bundle.graph(graph)
    if device != "cpu":
        return _load_on_device(bundle, graph, variant, load, probe_run, device)
    loaded = load(variant, "cpu")
    if cpu is None or variant.precision == "fp32" or "fp32" not in entry.variants:
        return loaded, variant, None
    gate = check_variant(
        variant.info, bundle.probe(graph), probe_run(loaded), cpu, f"{graph} {variant.precision}"
    )
    if gate.passed:
        return loaded, variant, gate.note
    fp32 = entry.variant("fp32")
    return load(fp32, "cpu"), fp32, gate.note


def _load_on_device(bundle, graph, variant, load, probe_run, device):
    entry = bundle.graph(graph)
    probe = bundle.probe(graph)
    fp32 = entry.variants.get("fp32")
    candidates = [variant] + ([fp32] if fp32 is not None and fp32 is not variant else [])
    notes: list[str] = []
    for candidate in candidates:
        known = _DEVICE_GATES.get((str(candidate.path), candidate.digest, device))
        if known is not None and not known.passed:  # refused before: not loaded again
            notes.append(known.note or f"{graph} {candidate.precision}: refused on {device}")
            continue
        try:
            loaded = load(candidate, device)
            gate = check_on_device(candidate, probe, probe_run(loaded), device)
        except Exception as e:  # an engine that will not build, a kernel missing there
            notes.append(f"{graph} {candidate.precision}: does not run on {device}: {e}")
            continue
        if gate.note:
            notes.append(gate.note)
        if gate.passed:
            if candidate is not variant:
                notes.append(f"{graph}: fell back to {candidate.precision} on {device}")
            return loaded, candidate, "; ".join(notes) or None
        _release(loaded)  # before the next candidate loads: not two copies at once
    last = fp32 or variant
    notes.append(f"{graph}: fell back to {last.precision} on the CPU")
    return load(last, "cpu"), last, "; ".join(notes)


def _release(loaded) -> None:
    """Free a refused runner's device memory now (a TensorRT graph's buffers and stream)."""
    session = getattr(loaded, "session", None)  # an Llm: its decoder session's runner
    for holder in (loaded, getattr(loaded, "runner", None), getattr(session, "runner", None)):
        close = getattr(holder, "close", None)
        if callable(close):
            close()


@dataclass
class GatedGraph:
    """A graph loaded through the gate: its runner, the variant that won, the notes for the
    readings (a fallback, a CPU note) and the ``backend`` record of what ran it."""

    runner: object
    variant: GraphVariant
    notes: list[str]
    info: dict


def load_graph(
    bundle: Bundle, name: str, runtime, probe_run: Callable | None = None, **options
) -> GatedGraph:
    """Graph ``name`` of ``bundle`` on ``runtime``'s device, in the precision ``runtime`` names
    for it (else the one the bundle prefers there), through the parity gate. ``probe_run``:
    runner -> the function that runs the graph's probe (default: the runner's own ``run``; a
    decoder's probe goes through a ``DecoderSession``). ``options`` go to ``backends.load``
    (e.g. ``threads``)."""
    variant = bundle.graph(name).variant(runtime.precision_for(name), runtime.device)

    def load(v: GraphVariant, device: str):
        rt = replace(runtime, device=device) if device != runtime.device else runtime
        return backends.load(rt, v.path, v.precision, **options)

    cpu = this_cpu() if runtime.device == "cpu" else None
    runner, variant, note = load_checked(
        bundle, name, variant, load, probe_run or (lambda g: g.run), cpu, device=runtime.device
    )
    notes = [n for n in (note, getattr(runner, "cpu_note", None)) if n]
    info = dict(runner.info)
    if note:
        info["fallback"] = note
    return GatedGraph(runner, variant, notes, info)
