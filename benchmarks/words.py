"""Words: latency of one utterance (tokenize + encoder + head) and dev metrics, fp32 and int8.

    python benchmarks/words.py --bundle bundles/lite --data ../shared/data

Latency: every MELD dev utterance read one at a time through ``WordsReader.read`` on each
``--threads`` count of intra-op threads (p50/p90/mean, after a warm-up). Metrics: weighted F1 and
accuracy on MELD dev (7 labels) and GoEmotions dev (single-label Ekman groups), per precision;
int8 vs fp32: embedding cosine and label agreement on MELD dev. Writes
benchmarks/results/words.json naming the CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from emolive.export.words_head import read_splits, weighted_f1
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle
from emolive.runtime.cpu import cpu_record
from emolive.runtime.names import WORDS_ENCODER
from emolive.runtime.words import WordsReader

RESULTS = Path(__file__).resolve().parent / "results" / "words.json"


def batched(reader: WordsReader, texts: list[str], fn, size: int = 64) -> np.ndarray:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = None
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        got = fn([texts[i] for i in idx])
        if out is None:
            out = np.zeros((len(texts), got.shape[1]), np.float32)
        out[idx] = got
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("bundles/lite"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    bundle = Bundle.open(args.bundle)
    splits = read_splits(args.data)
    meld, go = splits["meld/dev"], splits["goemotions/dev"]
    result: dict = {
        "cpu": cpu_record(),
        "command": f"python benchmarks/words.py --bundle {args.bundle} --data {args.data} "
        f"--threads {' '.join(map(str, args.threads))}",
        "precisions": {},
    }
    embeddings, labels = {}, {}
    for precision in ("fp32", "int8"):
        read_ms = {}
        for threads in args.threads:
            runtime = RuntimeConfig(threads=threads, precision={WORDS_ENCODER: precision})
            reader = WordsReader.from_bundle(bundle, runtime)
            for text in meld.texts[:20]:
                reader.read(text)
            times = []
            for text in meld.texts:
                t = time.perf_counter()
                reader.read(text)
                times.append(1000 * (time.perf_counter() - t))
            ms = np.array(times)
            read_ms[f"{threads}_threads"] = {
                "p50": round(float(np.percentile(ms, 50)), 2),
                "p90": round(float(np.percentile(ms, 90)), 2),
                "mean": round(float(ms.mean()), 2),
                "n": len(ms),
            }
        embeddings[precision] = batched(reader, meld.texts, reader.embed)
        metrics = {}
        for name, split in (("meld_dev", meld), ("goemotions_dev", go)):
            pred = batched(reader, split.texts, reader.fer_probabilities).argmax(1)
            if name == "meld_dev":
                labels[precision] = pred
            metrics[name] = {
                "weighted_f1": round(weighted_f1(split.labels, pred), 4),
                "accuracy": round(float((pred == split.labels).mean()), 4),
                "n": len(split.texts),
            }
        result["precisions"][precision] = {
            "loaded": reader.precision,
            "notes": reader.notes,
            "read_ms": read_ms,
            "dev": metrics,
        }
        print(precision, json.dumps(result["precisions"][precision]), flush=True)
    a, b = embeddings["fp32"], embeddings["int8"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    result["int8_vs_fp32_meld_dev"] = {
        "embedding_cosine_min": round(float(cos.min()), 4),
        "embedding_cosine_mean": round(float(cos.mean()), 4),
        "label_agreement": round(float((labels["fp32"] == labels["int8"]).mean()), 4),
    }
    print(json.dumps(result["int8_vs_fp32_meld_dev"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
