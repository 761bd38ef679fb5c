"""The peer: the `fer` package's own detector + classifier on the same frames.

Runs inside its own virtual environment (`make bench-peers` makes .venv-fer: fer needs
TensorFlow). Called by benchmarks/vision.py as a subprocess; prints one JSON object.

    .venv-fer/bin/python benchmarks/fer_peer.py --frames frames.npy --threads 2
"""

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True, help=".npy array [n, h, w, 3] uint8 BGR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import cv2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(args.threads)
    from fer.fer import FER

    frames = np.load(args.frames)
    detector = FER(mtcnn=False)
    for f in frames[: args.warmup]:
        detector.detect_emotions(f)
    lat, faces = [], []
    for f in frames:
        t0 = time.perf_counter()
        found = detector.detect_emotions(f)
        lat.append((time.perf_counter() - t0) * 1e3)
        faces.append(len(found))
    import fer

    print(json.dumps({
        "peer": "fer",
        "version": getattr(fer, "__version__", "25.10.3"),
        "tensorflow": tf.__version__,
        "threads": args.threads,
        "latency_ms": lat,
        "faces": faces,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
