"""The calibration report: fp32-vs-int8 agreement per graph on held-out media, CPU latency,
the floors each graph must meet, as JSON for tools and Markdown for people.

Floors (a graph below any of them refuses the whole calibration; the bundle is not touched):

* expression: top-1 agreement with fp32 >= 95% of held-out faces;
* face detector: the same number of faces in >= 95% of frames, matched-box IoU >= 0.90 mean;
* face landmarks: mean error <= 1.5 px and 95th percentile <= 3 px in the 192-px ROI.

The landmark floors are in ROI pixels because that is what the graph sees; frame-pixel
errors grow with the face's size on screen and are reported alongside.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass

import numpy as np

import emolive
from emolive.calibrate.metrics import (
    classification_agreement,
    detection_agreement,
    point_error,
)
from emolive.calibrate.sets import EvaluationRun
from emolive.runtime.cpu import this_cpu
from emolive.runtime.names import EXPRESSION, FACE_DETECTOR, FACE_LANDMARKS

REPORT_JSON = "calibration_report.json"
REPORT_MD = "calibration_report.md"


@dataclass(frozen=True)
class Floors:
    expression_top1: float = 0.95
    detector_count_agreement: float = 0.95
    detector_iou_mean: float = 0.90
    landmarks_roi_mean_px: float = 1.5
    landmarks_roi_p95_px: float = 3.0


def graph_metrics(run: EvaluationRun) -> dict[str, dict]:
    """Agreement measures per graph from one evaluation run."""
    lm = {
        "faces": int(len(run.stacked("roi_points", "fp32"))),
        "roi_px": point_error(run.stacked("roi_points", "fp32"), run.stacked("roi_points", "int8")),
        "frame_px": point_error(
            run.stacked("frame_points", "fp32"), run.stacked("frame_points", "int8")
        ),
        "median_face_roi_px": float(np.median(run.face_sizes)),
    }
    p32, p8 = run.stacked("presence", "fp32"), run.stacked("presence", "int8")
    lm["presence_max_diff"] = float(np.abs(p32 - p8).max())
    lm["presence_decision_agreement"] = float(((p32 >= 0.5) == (p8 >= 0.5)).mean())
    return {
        FACE_DETECTOR: detection_agreement(run.boxes["fp32"], run.boxes["int8"]),
        FACE_LANDMARKS: lm,
        EXPRESSION: classification_agreement(
            run.stacked("probabilities", "fp32"), run.stacked("probabilities", "int8")
        ),
    }


def floor_failures(metrics: dict[str, dict], floors: Floors) -> dict[str, list[str]]:
    """Per graph, each floor it misses, as a sentence; empty lists when it meets them all."""
    fails: dict[str, list[str]] = {g: [] for g in metrics}

    def below(graph: str, what: str, got, floor: float, higher_is_better: bool = True) -> None:
        bad = got is None or (got < floor if higher_is_better else got > floor)
        if bad:
            sign = ">=" if higher_is_better else "<="
            fails[graph].append(
                f"{what} is {got if got is None else f'{got:.4g}'}, needs {sign} {floor}"
            )

    e, d, m = metrics[EXPRESSION], metrics[FACE_DETECTOR], metrics[FACE_LANDMARKS]
    below(EXPRESSION, "top-1 agreement", e["top1_agreement"], floors.expression_top1)
    below(
        FACE_DETECTOR, "face-count agreement", d["count_agreement"], floors.detector_count_agreement
    )
    if d["matched_boxes"]:
        below(FACE_DETECTOR, "mean matched-box IoU", d["iou_mean"], floors.detector_iou_mean)
    roi = m["roi_px"]
    below(FACE_LANDMARKS, "mean ROI error (px)", roi["mean"], floors.landmarks_roi_mean_px, False)
    below(FACE_LANDMARKS, "p95 ROI error (px)", roi["p95"], floors.landmarks_roi_p95_px, False)
    return fails


def latency_block(fp32_ms: float, int8_ms: float, threads: int, repeats: int) -> dict:
    return {
        "fp32_ms": round(fp32_ms, 4),
        "int8_ms": round(int8_ms, 4),
        "int8_speedup": round(fp32_ms / int8_ms, 3),
        "int8_faster_on_cpu": int8_ms < fp32_ms,
        "threads": threads,
        "repeats": repeats,
        "batch": 1,
        "provider": "CPUExecutionProvider",
    }


def build_report(
    *,
    metrics: dict[str, dict],
    latency: dict[str, dict],
    quantization: dict[str, dict],
    calibration_samples: dict[str, int],
    media: dict[str, list[dict]],
    floors: Floors,
    config: dict,
    evaluation_frames: int,
    gpu_prefer: dict[str, str],
) -> dict:
    fails = floor_failures(metrics, floors)
    graphs = {}
    for g in metrics:
        graphs[g] = {
            "calibration_samples": calibration_samples[g],
            "agreement": metrics[g],
            "latency_cpu": latency[g],
            "quantization": quantization[g],
            "floor_failures": fails[g],
            "passed": not fails[g],
            "prefer": {"cpu": "int8" if latency[g]["int8_faster_on_cpu"] else "fp32", **gpu_prefer},
        }
    slower = [g for g in graphs if not latency[g]["int8_faster_on_cpu"]]
    notes = []
    if slower:
        notes.append(
            f"INT8 is slower than fp32 on this CPU for {', '.join(slower)}: the bundle prefers "
            f"fp32 on CPU for these graphs. These graphs are small; the Q/DQ int8 graphs are "
            f"for TensorRT, where int8 kernels pay off."
        )
    notes.append(
        "GPU preferences are set, not measured (no GPU here): "
        + ", ".join(f"{device} {precision}" for device, precision in gpu_prefer.items())
        + ". TensorRT compiles the Q/DQ graphs to int8 kernels; ONNX Runtime's CUDA provider "
        "does not, so it keeps fp32."
    )
    return {
        "emolive_version": emolive.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # int8 kernels differ by CPU class (runtime/cpu.py): every number here is this CPU's.
        "measured_on": this_cpu().record(),
        "passed": all(not f for f in fails.values()),
        "config": config,
        "floors": asdict(floors),
        "media": media,
        "evaluation_frames": evaluation_frames,
        "graphs": graphs,
        "notes": notes,
    }


def summary(report: dict) -> dict:
    """The short form kept in the manifest's ``calibration`` field."""
    g = report["graphs"]
    return {
        "report": REPORT_JSON,
        "passed": report["passed"],
        "method": report["config"]["calibrate_method"],
        "created_utc": report["created_utc"],
        "measured_on": report.get("measured_on"),
        "expression_top1_agreement": g[EXPRESSION]["agreement"]["top1_agreement"],
        "detector_count_agreement": g[FACE_DETECTOR]["agreement"]["count_agreement"],
        "detector_iou_mean": g[FACE_DETECTOR]["agreement"]["iou_mean"],
        "landmarks_roi_mean_px": g[FACE_LANDMARKS]["agreement"]["roi_px"]["mean"],
        "int8_faster_on_cpu": {
            name: v["latency_cpu"]["int8_faster_on_cpu"] for name, v in g.items()
        },
    }


def _cpu_line(report: dict) -> str:
    cpu = report.get("measured_on")
    where = "an unrecorded CPU"
    if cpu:
        flags = ", ".join(cpu.get("flags", [])) or "none of the int8 flags"
        where = f"{cpu['model']} ({cpu['cpu_class']}; flags: {flags})"
    bits = report["config"].get("weight_bits", 8)
    safe = " so that no CPU class saturates its u8·s8 pair sums" if bits <= 7 else ""
    return f"Measured on {where}. Weights are {bits}-bit codes{safe}."


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _media(f: dict) -> str:
    counts = f" {f['frames']} frames, {f['faces']} faces" if "faces" in f else ""
    return f"{f['file']} ({f['source']}{';' if counts else ''}{counts})"


def render_markdown(report: dict) -> str:
    g = report["graphs"]
    e = g[EXPRESSION]["agreement"]
    d = g[FACE_DETECTOR]["agreement"]
    m = g[FACE_LANDMARKS]["agreement"]
    c = report["config"]
    lines = [
        "# INT8 calibration report",
        "",
        f"emo-live {report['emolive_version']}, {report['created_utc']}. "
        f"Result: **{'passed' if report['passed'] else 'REFUSED'}**.",
        "",
        _cpu_line(report),
        "",
        f"Explicit Q/DQ int8 (ONNX Runtime static quantization): calibration method "
        f"`{c['calibrate_method']}`"
        + (f" ({c['percentile']} percentile)" if "percentile" in c else "")
        + f", weights per-channel: {c['per_channel']}, symmetric int8 activations: "
        f"{c['symmetric_activations']}, output heads kept fp32: {c['fp32_output_heads']}.",
        "",
        "## Agreement with fp32 on held-out media",
        "",
        f"Evaluated on {report['evaluation_frames']} frames that share no file and no person "
        f"with the calibration media (lists below).",
        "",
        "| graph | calibration samples | measure | value |",
        "|---|---|---|---|",
        f"| expression | {g[EXPRESSION]['calibration_samples']} | top-1 agreement "
        f"({e['samples']} faces) | {e['top1_agreement']:.1%} ({e['disagreements']} differ) |",
        f"| | | largest probability difference | {e['max_prob_diff']:.4f} |",
        f"| face_detector | {g[FACE_DETECTOR]['calibration_samples']} | same face count "
        f"({d['frames']} frames) | {d['count_agreement']:.1%} |",
        f"| | | matched-box IoU mean / min ({d['matched_boxes']} boxes) | "
        f"{_f(d['iou_mean'])} / {_f(d['iou_min'])} |",
        f"| | | faces fp32 / int8 | {d['fp32_detections']} / {d['int8_detections']} |",
        f"| face_landmarks | {g[FACE_LANDMARKS]['calibration_samples']} | error in 192-px ROI, "
        f"mean / p95 / max ({m['faces']} faces) | {_f(m['roi_px']['mean'])} / "
        f"{_f(m['roi_px']['p95'])} / {_f(m['roi_px']['max'])} px |",
        f"| | | error in frame px, mean / p95 / max (median face ROI "
        f"{m['median_face_roi_px']:.0f} px) | {_f(m['frame_px']['mean'])} / "
        f"{_f(m['frame_px']['p95'])} / {_f(m['frame_px']['max'])} px |",
        f"| | | presence: largest difference, same decision | "
        f"{m['presence_max_diff']:.4f}, {m['presence_decision_agreement']:.1%} |",
        "",
        "## Latency on CPU (ONNX Runtime, 1 thread, batch 1, median)",
        "",
        "| graph | fp32 ms | int8 ms | int8 speed-up | bundle prefers on CPU |",
        "|---|---|---|---|---|",
    ]
    for name, v in g.items():
        lat = v["latency_cpu"]
        lines.append(
            f"| {name} | {lat['fp32_ms']:.3f} | {lat['int8_ms']:.3f} | {lat['int8_speedup']:.2f}x"
            f" | {'int8' if lat['int8_faster_on_cpu'] else 'fp32 (int8 is slower here)'} |"
        )
    for note in report["notes"]:
        lines += ["", f"**Note:** {note}"]
    lines.append("")
    failing = {name: v["floor_failures"] for name, v in g.items() if v["floor_failures"]}
    lines += ["## Floors", ""]
    for key, value in report["floors"].items():
        lines.append(f"- `{key}`: {value}")
    if failing:
        lines += ["", "Missed:"]
        lines += [f"- {name}: {'; '.join(f)}" for name, f in failing.items()]
    lines += ["", "## Media", ""]
    for side, files in report["media"].items():
        lines.append(f"- {side}: " + ", ".join(_media(f) for f in files))
    return "\n".join(lines) + "\n"
