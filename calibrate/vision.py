"""Calibrate a bundle's vision graphs to explicit INT8 and write the int8 variants into it.

``calibrate_bundle`` builds the calibration set through the runtime's own preprocessing,
inserts Q/DQ nodes (``qdq.quantize_qdq``), compares int8 with fp32 on held-out media,
times both on the CPU, and only when every graph meets its floor (report.py) adds the int8
variants, the report files and each graph's measured preference to the bundle.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emolive.calibrate.media import (
    CALIBRATION,
    CALIBRATION_MEDIA,
    EVALUATION,
    EVALUATION_MEDIA,
    MediaFile,
    check_disjoint,
)
from emolive.calibrate.metrics import median_latencies_ms
from emolive.calibrate.qdq import QuantConfig, quantize_qdq
from emolive.calibrate.report import (
    REPORT_JSON,
    REPORT_MD,
    Floors,
    build_report,
    graph_metrics,
    latency_block,
    render_markdown,
    summary,
)
from emolive.calibrate.sets import GRAPHS, INPUTS, evaluate, evenly, load_or_collect
from emolive.runtime.backends.ort import OrtGraph
from emolive.runtime.bundle import Bundle
from emolive.runtime.parity import Probe, probe_key

# The steps ``calibrate_bundle`` reports through ``on_step``, in order (for progress bars).
STEPS = (
    "calibration set",
    *(f"quantize {g}" for g in GRAPHS),
    "evaluate on held-out media",
    "time fp32 vs int8",
    "write bundle",
)


# What the bundle prefers on GPUs, unmeasured here (no GPU in CI). TensorRT compiles the Q/DQ
# graph into int8 kernels, which is what it is for. ONNX Runtime's CUDA provider does not fuse
# Q/DQ pairs into int8 convolutions (that rewrite belongs to the CPU provider): it would run the
# extra Q/DQ nodes around fp32 convs, all cost and no gain, so CUDA keeps fp32.
GPU_PREFER = {"cuda": "fp32", "tensorrt": "int8"}


class CalibrationRefused(RuntimeError):
    """INT8 fell below a floor; the bundle was left as it was. ``report`` says by how much."""

    def __init__(self, bundle: Path, report: dict):
        self.bundle = Path(bundle)
        self.report = report
        fails = {g: v["floor_failures"] for g, v in report["graphs"].items() if v["floor_failures"]}
        detail = "; ".join(f"{g}: {', '.join(f)}" for g, f in fails.items())
        super().__init__(f"{bundle}: int8 refused, below the agreement floor ({detail})")


@dataclass(frozen=True)
class CalibrationConfig:
    quant: QuantConfig = QuantConfig()
    samples: int | None = None  # most calibration samples per graph; None: all
    calibration_media: tuple[MediaFile, ...] = CALIBRATION_MEDIA
    evaluation_media: tuple[MediaFile, ...] = EVALUATION_MEDIA
    floors: Floors = Floors()
    threads: int | None = None  # ONNX Runtime threads for building sets and evaluating
    latency_repeats: int = 200
    cache: bool = True  # keep calibration inputs in the user cache, keyed by what made them

    def __post_init__(self):
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.latency_repeats < 1:
            raise ValueError(f"latency_repeats must be >= 1, got {self.latency_repeats}")


def _cache_dir() -> Path:
    from emolive.runtime.cache import cache_root

    return cache_root() / "calibration"


def _latency(fp32: Path, int8: Path, feed: dict, repeats: int) -> dict[str, float]:
    graphs = {"fp32": OrtGraph(fp32, "fp32", threads=1), "int8": OrtGraph(int8, "int8", threads=1)}
    runs = {p: (lambda r=r: r.run(feed)) for p, r in graphs.items()}
    return median_latencies_ms(runs, repeats=repeats, warmup=10)


def calibrate_bundle(
    bundle_dir: Path | str,
    config: CalibrationConfig = CalibrationConfig(),
    log: Callable[[str], None] = print,
    on_step: Callable[[str], None] | None = None,
) -> dict:
    """Add int8 variants of the vision graphs to ``bundle_dir``; return the report dict.

    Raises CalibrationRefused (bundle untouched) when a graph misses its floor,
    MediaSplitError when calibration and evaluation media overlap, BundleError when the
    bundle lacks a vision graph or does not check out.
    """
    # The writer lives in export/ (torch-free module, but export is where bundles are made).
    from emolive.export.bundle import BundleWriter

    step = on_step or (lambda s: None)
    bundle = Bundle.open(bundle_dir)
    fp32 = {g: bundle.graph(g).variant("fp32").path for g in GRAPHS}
    check_disjoint(config.calibration_media, config.evaluation_media)

    step(STEPS[0])
    sets, cached = load_or_collect(
        fp32, config.calibration_media, _cache_dir() if config.cache else None, config.threads
    )
    sets = {g: evenly(x, config.samples) for g, x in sets.items()}
    log(
        "calibration set "
        + ("(cached): " if cached else ": ")
        + ", ".join(f"{g} {len(x)}" for g, x in sets.items())
    )

    with tempfile.TemporaryDirectory(prefix="emolive-calibrate-") as tmp:
        int8, quantization = {}, {}
        for g in GRAPHS:
            step(f"quantize {g}")
            q = quantize_qdq(
                fp32[g], Path(tmp) / f"{g}.int8.onnx", {INPUTS[g]: sets[g]}, config.quant
            )
            int8[g] = q.path
            quantization[g] = {
                "quantize_nodes": q.quantize_nodes,
                "dequantize_nodes": q.dequantize_nodes,
                "fp32_nodes": list(q.fp32_nodes),
            }
            log(f"  {g}: {q.quantize_nodes} Q / {q.dequantize_nodes} DQ nodes, {q.samples} samples")

        step(STEPS[-3])
        run = evaluate(fp32, int8, config.evaluation_media, config.threads)
        metrics = graph_metrics(run)

        step(STEPS[-2])
        latency = {}
        for g in GRAPHS:
            feed = {INPUTS[g]: run.example_inputs[g]}
            ms = _latency(fp32[g], int8[g], feed, config.latency_repeats)
            latency[g] = latency_block(ms["fp32"], ms["int8"], 1, config.latency_repeats)
            log(f"  {g}: fp32 {ms['fp32']:.3f} ms, int8 {ms['int8']:.3f} ms (1 thread)")

        report = build_report(
            metrics=metrics,
            latency=latency,
            quantization=quantization,
            calibration_samples={g: int(len(x)) for g, x in sets.items()},
            media={
                CALIBRATION: [m.record() for m in config.calibration_media],
                EVALUATION: [
                    {**m.record(), **run.per_media.get(m.name, {})} for m in config.evaluation_media
                ],
            },
            floors=config.floors,
            config={**config.quant.info(), "samples_limit": config.samples},
            evaluation_frames=run.frames,
            gpu_prefer=GPU_PREFER,
        )
        if not report["passed"]:
            raise CalibrationRefused(bundle.root, report)

        step(STEPS[-1])
        writer = BundleWriter.reopen(bundle.root)
        for g in GRAPHS:
            # The parity probe: a held-out input, fp32's outputs on it, and how far int8
            # strays here; the runtime re-checks int8 with it on other CPU classes.
            feed = {INPUTS[g]: run.example_inputs[g]}
            probe = Probe(feed, OrtGraph(fp32[g], "fp32", threads=1).run(feed))
            probe_file = probe.save(Path(tmp) / f"{g}.probe.npz")
            writer.add_file(probe_key(g), probe_file, probe_file.name, role="parity probe")
            info = {
                **config.quant.info(),
                "calibration_samples": report["graphs"][g]["calibration_samples"],
                "report": REPORT_JSON,
                **probe.record(OrtGraph(int8[g], "int8", threads=1).run),
            }
            writer.add_variant(g, "int8", int8[g], info=info)
            writer.set_graph_field(g, "prefer", report["graphs"][g]["prefer"])
        writer.add_json("calibration_report", REPORT_JSON, report, role="calibration report")
        md = Path(tmp) / REPORT_MD
        md.write_text(render_markdown(report))
        writer.add_file("calibration_report_md", md, REPORT_MD, role="calibration report")
        writer.set_calibration(summary(report))
        writer.write()
    for note in report["notes"]:
        log(f"note: {note}")
    return report
