"""fp32-vs-int8 agreement measures: classification, boxes, landmarks, latency.

Pure numpy (and one ONNX Runtime session for latency) so every number in the calibration
report can be checked by a test on a case with a known answer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np


def classification_agreement(ref: np.ndarray, test: np.ndarray) -> dict:
    """Top-1 agreement and the largest per-class probability gap of two [n, classes] arrays."""
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    if ref.shape != test.shape or ref.ndim != 2 or len(ref) == 0:
        raise ValueError(
            f"need two equal, non-empty [n, classes] arrays; got {ref.shape}, {test.shape}"
        )
    same = ref.argmax(1) == test.argmax(1)
    gap = np.abs(ref - test)
    return {
        "samples": int(len(ref)),
        "top1_agreement": float(same.mean()),
        "disagreements": int((~same).sum()),
        "max_prob_diff": float(gap.max()),
        "mean_prob_diff": float(gap.mean()),
    }


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(
    ref: Sequence[Sequence[float]], test: Sequence[Sequence[float]], min_iou: float = 0.1
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU, best pairs first: [(ref_index, test_index, iou)].

    Pairs with IoU below ``min_iou`` are left unmatched: those are different faces, which
    the count agreement (not the IoU) should account for.
    """
    pairs = sorted(
        ((box_iou(r, t), i, j) for i, r in enumerate(ref) for j, t in enumerate(test)),
        reverse=True,
    )
    used_r, used_t, out = set(), set(), []
    for iou, i, j in pairs:
        if iou < min_iou or i in used_r or j in used_t:
            continue
        used_r.add(i)
        used_t.add(j)
        out.append((i, j, iou))
    return sorted(out)


def detection_agreement(
    ref_frames: Sequence[Sequence[Sequence[float]]],
    test_frames: Sequence[Sequence[Sequence[float]]],
    min_iou: float = 0.1,
) -> dict:
    """Per-frame detections of two detectors: count agreement and IoU of matched boxes."""
    if len(ref_frames) != len(test_frames) or not ref_frames:
        raise ValueError(
            f"need equal, non-empty frame lists; got {len(ref_frames)}, {len(test_frames)}"
        )
    ious, same_count, unmatched = [], 0, 0
    for ref, test in zip(ref_frames, test_frames, strict=True):
        same_count += len(ref) == len(test)
        matched = match_boxes(ref, test, min_iou)
        ious.extend(iou for _, _, iou in matched)
        unmatched += len(ref) + len(test) - 2 * len(matched)
    return {
        "frames": len(ref_frames),
        "fp32_detections": int(sum(len(f) for f in ref_frames)),
        "int8_detections": int(sum(len(f) for f in test_frames)),
        "count_agreement": same_count / len(ref_frames),
        "matched_boxes": len(ious),
        "unmatched_boxes": unmatched,
        "iou_mean": float(np.mean(ious)) if ious else None,
        "iou_min": float(np.min(ious)) if ious else None,
    }


def point_error(ref: np.ndarray, test: np.ndarray) -> dict:
    """Euclidean (x, y) error between matching points [..., >=2], in the points' own unit."""
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    if ref.shape != test.shape or ref.shape[-1] < 2 or ref.size == 0:
        raise ValueError(
            f"need two equal, non-empty [..., 2+] point arrays; got {ref.shape}, {test.shape}"
        )
    d = np.linalg.norm(ref[..., :2] - test[..., :2], axis=-1).ravel()
    return {
        "points": int(d.size),
        "mean": float(d.mean()),
        "p95": float(np.percentile(d, 95)),
        "max": float(d.max()),
    }


def median_latencies_ms(
    runs: dict[str, Callable[[], object]], repeats: int = 50, warmup: int = 5
) -> dict[str, float]:
    """Median wall time in ms of each ``runs[name]()``, the variants interleaved call by call.

    Interleaving matters on a shared machine: a burst of load from elsewhere then slows all
    variants alike instead of whichever happened to be timed at that moment.
    """
    if repeats < 1 or not runs:
        raise ValueError("need at least one variant and repeats >= 1")
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(statistics.median(t)) for name, t in times.items()}
