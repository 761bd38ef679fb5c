"""A 7B-shaped decoder (Qwen2.5-7B's shape, random 4-bit weights) through the runtime.

    python benchmarks/decoder7b.py --threads 2            # CPU: writes results/decoder7b.json
    python benchmarks/decoder7b.py --keep /tmp/d7b        # keep the graph for a second run

What the released AffectGPT's decoder costs on this machine, measured, without its weights:
the graph is the one the affectgpt export writes for a Qwen2 (the lite LLM's
GroupQueryAttention layout plus q/k/v biases), every linear a MatMulNBits 4-bit weight (blocks
of 32) of random codes, so speed and memory are those of the real model's int4 form; the
tokens are meaningless. It checks on the way that a graph over ONNX's 2 GB protobuf limit
saves with its weights as external data and loads through the runtime's ``DecoderSession``.

Measured: the time to build and save, session load, prefill of a 150-token prompt (the
AffectGPT prompt's length), decode tok/s over 32 greedy tokens, peak RSS. The peer is the
arithmetic in ``benchmarks/scale.py`` (bandwidth ceiling: weight bytes / token).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from emolive.export.affectgpt.decoder import add_qkv_biases
from emolive.export.llm.bundle import external_data_of
from emolive.export.llm.graph import DecoderShape, DecoderWeights, LayerWeights, build_decoder
from emolive.export.llm.quant import NBitsWeight
from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession
from emolive.runtime.llm.segments import Embeds, prefill

RESULTS = Path(__file__).parent / "results" / "decoder7b.json"
QWEN25_7B = DecoderShape(
    layers=28, hidden=3584, heads=28, kv_heads=4, head_dim=128, intermediate=18944,
    vocab=152064, rms_eps=1e-6, rope_theta=1e6, max_positions=2048,
)  # fmt: skip
BLOCK = 32


def random_int4(rng: np.random.Generator, n: int, k: int) -> NBitsWeight:
    kb = k // BLOCK
    packed = rng.integers(0, 256, size=(n, kb, BLOCK // 2), dtype=np.uint8)
    scales = np.full((n, kb), 0.02 / 8, np.float32)  # weights of about ±0.02
    return NBitsWeight(4, BLOCK, k, n, packed, scales, None)


def build(shape: DecoderShape, path: Path, layers: int | None = None) -> dict:
    rng = np.random.default_rng(0)
    h, kv = shape.hidden, shape.kv_heads * shape.head_dim
    ones = np.ones(h, np.float32)
    n_layers = layers or shape.layers
    shape = DecoderShape(**{**vars(shape), "layers": n_layers})
    t = time.perf_counter()
    ws = [
        LayerWeights(
            input_norm=ones,
            qkv=random_int4(rng, h + 2 * kv, h),
            o=random_int4(rng, h, h),
            post_norm=ones,
            gate_up=random_int4(rng, 2 * shape.intermediate, h),
            down=random_int4(rng, h, shape.intermediate),
        )  # fmt: skip
        for _ in range(n_layers)
    ]
    weights = DecoderWeights(ws, ones, random_int4(rng, shape.vocab, h), accuracy_level=4)
    biases = [rng.normal(0, 0.02, h + 2 * kv).astype(np.float32) for _ in range(n_layers)]
    proto = add_qkv_biases(build_decoder(shape, weights, "llm_decoder"), biases)
    del weights, ws
    built = time.perf_counter() - t
    t = time.perf_counter()
    onnx.save(
        proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=external_data_of(path).name, size_threshold=1024,
    )  # fmt: skip
    saved = time.perf_counter() - t
    return {
        "layers": n_layers, "build_s": round(built, 1), "save_s": round(saved, 1),
        "graph_bytes": path.stat().st_size,
        "external_data_bytes": external_data_of(path).stat().st_size,
    }  # fmt: skip


def measure(shape: DecoderShape, path: Path, threads: int, layers: int) -> dict:
    rng = np.random.default_rng(1)
    row = rng.normal(0, 0.02, (1, shape.hidden)).astype(np.float32)
    table = np.broadcast_to(row, (shape.vocab, shape.hidden))  # lookups only: no 2 GB table
    layout = DecoderLayout(layers, shape.kv_heads, shape.head_dim, shape.hidden, shape.vocab)
    t = time.perf_counter()
    session = DecoderSession(path, table, layout, max_context=512, threads=threads,
                             precision="int4")  # fmt: skip
    load = time.perf_counter() - t
    prompt = rng.normal(0, 0.02, (150, shape.hidden)).astype(np.float32)
    t = time.perf_counter()
    logits = prefill(session, [Embeds(prompt, "prompt")])[-1]
    pre = time.perf_counter() - t
    steps = 32
    t = time.perf_counter()
    for _ in range(steps):
        tid = int(np.argmax(logits))
        logits = session.forward([tid], last_only=True)[-1]
    dec = time.perf_counter() - t
    return {
        "load_s": round(load, 2), "prefill_tokens": len(prompt), "prefill_s": round(pre, 2),
        "prefill_tok_s": round(len(prompt) / pre, 1), "decode_tokens": steps,
        "decode_tok_s": round(steps / dec, 2), "finite": bool(np.isfinite(logits).all()),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=None, help="fewer layers (a quick check)")
    ap.add_argument("--keep", type=Path, default=None, help="build here once and reuse it")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="decoder7b-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "llm_decoder.int4.onnx"
    shape = QWEN25_7B
    layers = args.layers or shape.layers
    record: dict = {}
    try:
        if not path.is_file():
            record["build"] = build(shape, path, layers)
        record["run"] = measure(shape, path, args.threads, layers)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    record.update(
        shape=vars(shape) | {"layers": layers}, threads=args.threads, device="cpu",
        cpu={"machine": platform.machine(), "processor": platform.processor(),
             "avx512_vnni": "avx512_vnni" in flags, "avx2": "avx2" in flags},
        peak_rss_MB=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        command=" ".join(["python", "benchmarks/decoder7b.py", *sys.argv[1:]]),
    )  # fmt: skip
    if args.layers is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
