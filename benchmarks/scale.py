"""What the released AffectGPT needs on Jetson Orin and RTX cards: computed, not measured.

    python benchmarks/scale.py            # writes benchmarks/results/scale.json, prints a table

Every number here is arithmetic on two kinds of inputs, both written below with their source:

* parameter counts, computed from the architectures' published configs (Qwen2.5-7B-Instruct,
  CLIP ViT-L/14's vision tower, chinese-hubert-large; AffectGPT's projectors: 57.2 M in its
  released checkpoint, FACTS.md) — the same shapes the exporter reads from the weights;
* each device's memory size and memory bandwidth, from NVIDIA's data sheets.

Decoding one token reads every decoder weight once, so a decode rate can be no faster than
``bandwidth / decoder bytes``; the "expected" column takes 70% of that ceiling, the share
that memory-bound decoders commonly reach (ONNX Runtime's fp16 CUDA decode of the lite LLM
measured 395 tok/s on an H200, FACTS.md, far below its ceiling: a 135 M model is bound by
kernel launches, not bandwidth; a 7B model is not). Encoders and the prompt's prefill are
bound by compute: their FLOPs are given, not a time. Memory counts the decoder, the two
encoders and the KV cache; the embedding table (152,064 × 3,584) stays in host memory as a
memory-mapped file and only the prompt's rows are read, but on a Jetson host memory *is* GPU
memory, so it is counted there at fp16 (an fp32 table doubles it).

Nothing in this file ran on a GPU. ``benchmarks/gpu.py`` measures when a GPU is lent.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "scale.json"

# Qwen2.5-7B-Instruct's config.json (untied embeddings).
QWEN25_7B = dict(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064)
# CLIP ViT-L/14 vision tower (224 px: 256 patches + CLS) and HuBERT-large (2 s clips: 99 frames).
VIT_L = dict(hidden=1024, intermediate=4096, layers=24, tokens=257, extra=0.6e6 + 1024 * 768)
HUBERT_L = dict(hidden=1024, intermediate=4096, layers=24, tokens=99, extra=4.2e6 + 5.2e6)
AFFECTGPT_PROJECTORS = 57.2e6  # FACTS.md: 412 keys; the LoRA part is merged into the LLM
FRAMES = CLIPS = 8
PROMPT_TOKENS = 150  # AffectGPT's prompt with a short subtitle (the runtime's tiny test: ~140)
ANSWER_TOKENS = 150  # a reasoning answer ("infer ... and provide your reasoning process")
CONTEXT = 2048  # KV slots the runtime allocates

# name: (memory GB, bandwidth GB/s, kind, note) from NVIDIA's data sheets.
DEVICES = {
    "Jetson Orin Nano 8GB": (8, 68, "jetson", "102 GB/s in JetPack 6.1's Super mode"),
    "Jetson Orin NX 16GB": (16, 102.4, "jetson", ""),
    "Jetson AGX Orin 32GB": (32, 204.8, "jetson", ""),
    "Jetson AGX Orin 64GB": (64, 204.8, "jetson", ""),
    "RTX 4060 8GB": (8, 272, "rtx", ""),
    "RTX 3060 12GB": (12, 360, "rtx", ""),
    "RTX 4070 12GB": (12, 504, "rtx", ""),
    "RTX 4080 16GB": (16, 716.8, "rtx", ""),
    "RTX 4090 24GB": (24, 1008, "rtx", ""),
    "RTX 5090 32GB": (32, 1792, "rtx", ""),
    "H200 141GB": (141, 4800, "datacenter", "AffectGPT as shipped: 18-41 tok/s, torch eager"),
}
# Bytes per weight of each form: fp16; MatMulNBits 4-bit in blocks of 32 with an fp16 scale
# and a 4-bit zero point per block (4 + 16/32 + 4/32 bits).
FORMS = {"fp16": 2.0, "int4": (4 + 16 / 32 + 4 / 32) / 8}
JETSON_OS_GB = 1.5  # JetPack, headless, with the runtime's Python process around the graphs
EFFICIENCY = 0.7


def transformer_params(c: dict) -> float:
    """Linear weights and biases of a pre-norm encoder with plain multi-head attention."""
    h, f = c["hidden"], c["intermediate"]
    return c["layers"] * (4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h) + c["extra"]


def decoder_params(c: dict) -> dict:
    h, f, kv = c["hidden"], c["intermediate"], c["kv_heads"] * (c["hidden"] // c["heads"])
    layer = h * h + 2 * h * kv + (h + 2 * kv) + h * h + 3 * h * f + 2 * h
    return {"layers": c["layers"] * layer + h, "lm_head": c["vocab"] * h, "embed": c["vocab"] * h}


def kv_bytes_per_token(c: dict, dtype_bytes: int = 2) -> int:
    return c["layers"] * 2 * c["kv_heads"] * (c["hidden"] // c["heads"]) * dtype_bytes


def compute() -> dict:
    dec = decoder_params(QWEN25_7B)
    vit, hub = transformer_params(VIT_L), transformer_params(HUBERT_L)
    kv = kv_bytes_per_token(QWEN25_7B) * CONTEXT
    flops = {
        "vision_8_frames": 2 * vit * VIT_L["tokens"] * FRAMES,
        "audio_8_clips": 2 * hub * HUBERT_L["tokens"] * CLIPS,
        "prefill_prompt": 2 * dec["layers"] * PROMPT_TOKENS + 2 * dec["lm_head"],
    }
    forms = {}
    for form, per in FORMS.items():
        decoder = (dec["layers"] + dec["lm_head"]) * per
        encoders = (vit + hub + AFFECTGPT_PROJECTORS) * 2.0  # fp16 encoders with either form
        forms[form] = {
            "decoder_GB": decoder / 1e9,
            "encoders_GB": encoders / 1e9,
            "kv_cache_GB": kv / 1e9,
            "embeddings_GB": dec["embed"] * 2 / 1e9,
            "read_per_token_GB": decoder / 1e9,
        }
    devices = {}
    for name, (mem, bw, kind, note) in DEVICES.items():
        row = {"memory_GB": mem, "bandwidth_GBps": bw, "kind": kind, "note": note}
        for form, m in forms.items():
            need = m["decoder_GB"] + m["encoders_GB"] + m["kv_cache_GB"]
            if kind == "jetson":
                need += m["embeddings_GB"] + JETSON_OS_GB
            ceiling = bw / m["read_per_token_GB"]
            row[form] = {
                "needs_GB": round(need, 1),
                "fits": need <= mem * 0.95,
                "decode_ceiling_tok_s": round(ceiling, 1),
                "decode_expected_tok_s": round(EFFICIENCY * ceiling, 1),
                "answer_s_expected": round(ANSWER_TOKENS / (EFFICIENCY * ceiling), 2),
            }
        devices[name] = row
    return {
        "computed": True,
        "measured": False,
        "method": __doc__.strip().splitlines()[0],
        "params": {
            "decoder_layers": dec["layers"],
            "lm_head": dec["lm_head"],
            "embeddings": dec["embed"],
            "clip_vit_l14_vision": vit,
            "hubert_large": hub,
            "affectgpt_projectors": AFFECTGPT_PROJECTORS,
        },  # fmt: skip
        "kv_bytes_per_token_fp16": kv_bytes_per_token(QWEN25_7B),
        "flops_per_window": flops,
        "forms": forms,
        "assumptions": {
            "efficiency": EFFICIENCY,
            "jetson_os_GB": JETSON_OS_GB,
            "context": CONTEXT,
            "prompt_tokens": PROMPT_TOKENS,
            "answer_tokens": ANSWER_TOKENS,
        },  # fmt: skip
        "devices": devices,
        "written_by": f"python benchmarks/scale.py ({platform.python_version()})",
    }


def table(result: dict) -> str:
    lines = [
        "| device | memory | bandwidth | fp16: needs / decode tok/s | int4: needs / decode tok/s "
        "| int4: 150-token answer |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["devices"].items():
        cells = []
        for form in FORMS:
            f = r[form]
            rate = f"{f['decode_expected_tok_s']:.0f} (≤ {f['decode_ceiling_tok_s']:.0f})"
            cells.append(f"{f['needs_GB']} GB, {rate}" if f["fits"] else f"{f['needs_GB']} GB: no")
        i4 = r["int4"]
        answer = f"{i4['answer_s_expected']:.1f} s" if i4["fits"] else "—"
        lines.append(
            f"| {name} | {r['memory_GB']} GB | {r['bandwidth_GBps']:g} GB/s | {cells[0]} | "
            f"{cells[1]} | {answer} |"
        )
    return "\n".join(lines)


def main() -> int:
    result = compute()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    p = result["params"]
    print(
        f"decoder {(p['decoder_layers'] + p['lm_head']) / 1e9:.2f} B params (+ "
        f"{p['embeddings'] / 1e9:.2f} B embeddings), CLIP ViT-L/14 vision "
        f"{p['clip_vit_l14_vision'] / 1e6:.0f} M, HuBERT-large {p['hubert_large'] / 1e6:.0f} M"
    )
    f = result["flops_per_window"]
    print(
        "TFLOP per window: vision {:.2f}, audio {:.2f}, prefill {:.2f}".format(
            *(v / 1e12 for v in f.values())
        )
    )
    print(table(result))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
