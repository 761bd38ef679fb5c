"""The parity gate: a reduced-precision variant measured on one CPU class, checked on another.

Every quantized variant in a bundle records the CPU that measured it (``measured_on``) and,
with the graph's probe (a few inputs and the fp32 reference outputs on them, ``probe.<graph>``
in the bundle's files), how far it strayed from fp32 there (``probe_deviation``) and the most
it may stray anywhere (``probe_tolerance``). Loaded on the same CPU class, a variant is
trusted as measured. On another class the runtime runs the probe; if the variant strays past
its tolerance (saturating int8 kernels make errors several times the measured rounding noise)
the caller falls back to fp32 and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

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


def load_checked(
    bundle: Bundle,
    graph: str,
    variant: GraphVariant,
    load: Callable[[GraphVariant], Loaded],
    probe_run: Callable[[Loaded], Callable[[dict], dict]],
    cpu: CpuInfo | None,
) -> tuple[Loaded, GraphVariant, str | None]:
    """``load(variant)``, gated: a reduced variant is checked on ``cpu`` (None: not run by
    the CPU, nothing to check) against the graph's probe, run by ``probe_run(loaded)``, and
    replaced by the graph's fp32 variant if it strays. Returns what was loaded, its variant,
    and the gate's note (None when there is nothing to say)."""
    loaded = load(variant)
    entry = bundle.graph(graph)
    if cpu is None or variant.precision == "fp32" or "fp32" not in entry.variants:
        return loaded, variant, None
    gate = check_variant(
        variant.info, bundle.probe(graph), probe_run(loaded), cpu, f"{graph} {variant.precision}"
    )
    if gate.passed:
        return loaded, variant, gate.note
    fp32 = entry.variant("fp32")
    return load(fp32), fp32, gate.note
