"""Can the LLM's weights drop Q4_1's remainder term? Perplexity of requantized weights.

    python benchmarks/llm_requant.py            # needs the export extra (torch, transformers)

The `int4f` form keeps GGUF Q4_1 exactly, which costs a remainder term per linear (Q4_1's
float minimum is not an integer zero point). This measures, in torch on the GGUF's fp32
weights, what dropping that term would cost in perplexity if the weights were requantized
to plain 4-bit blocks of 32 with integer zero points, the layout ONNX Runtime's MatMulNBits
runs fastest:

* ``layers_rtn`` / ``layers_gptq``: every Q4_1 linear requantized by rounding to nearest,
  or with GPTQ error feedback (Hessians of each linear's inputs on calibration text);
* ``lm_head_rtn`` / ``lm_head_gptq``: the Q8_0 lm_head alone at 4 bits (untied from the
  embedding table);
* ``lm_head_gptq_top{k}``: the 4-bit lm_head's logits with its top k tokens rescored by the
  exact 8-bit rows, as a graph could do with TopK + Gather + ScatterElements.

Perplexity is on the export's text (GPL-3, 2,048 tokens); calibration is on other licence
texts (Apache-2.0, MPL-2.0). Writes benchmarks/results/llm_requant.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "llm_requant.json"
CALIBRATION = [
    Path("/usr/share/common-licenses/Apache-2.0"),
    Path("/usr/share/common-licenses/MPL-2.0"),
]
BLOCK = 32
LEVELS = 15  # 4-bit codes 0..15


def block_params(w):
    """Scale and integer zero point per row of a [N, BLOCK] slice (range includes 0)."""
    import torch

    hi = torch.clamp(w.max(1, keepdim=True).values, min=0)
    lo = torch.clamp(w.min(1, keepdim=True).values, max=0)
    scale = (hi - lo) / LEVELS
    scale[scale == 0] = 1
    return scale, torch.clamp(torch.round(-lo / scale), 0, LEVELS)


def fake_quant(w, scale, zero):
    import torch

    return scale * (torch.clamp(torch.round(w / scale) + zero, 0, LEVELS) - zero)


def rtn(w):
    out = w.clone()
    for k0 in range(0, w.shape[1], BLOCK):
        blk = w[:, k0 : k0 + BLOCK]
        out[:, k0 : k0 + BLOCK] = fake_quant(blk, *block_params(blk))
    return out


def gptq(w, hessian, damp: float = 0.01):
    """GPTQ (Frantar et al. 2022) with per-block parameters taken when a block starts."""
    import torch

    w = w.double().clone()
    h = hessian.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    out = torch.zeros_like(w)
    for k0 in range(0, w.shape[1], BLOCK):
        scale, zero = block_params(w[:, k0 : k0 + BLOCK])
        for j in range(k0, k0 + BLOCK):
            q = fake_quant(w[:, j : j + 1], scale, zero)
            out[:, j : j + 1] = q
            err = (w[:, j : j + 1] - q) / hinv[j, j]
            w[:, j:] -= err @ hinv[j : j + 1, j:]
    return out.float()


def groups(model) -> dict[str, list]:
    """Linears that read the same input, quantized together (as the graph stacks them)."""
    out = {}
    for i, layer in enumerate(model.model.layers):
        a, m = layer.self_attn, layer.mlp
        out[f"{i}.qkv"] = [a.q_proj, a.k_proj, a.v_proj]
        out[f"{i}.o"] = [a.o_proj]
        out[f"{i}.gate_up"] = [m.gate_proj, m.up_proj]
        out[f"{i}.down"] = [m.down_proj]
    return out


def hessians(model, modules: dict[str, object], ids: list[int]) -> dict:
    """X^T X of each module's input over the calibration tokens."""
    from emolive.export.llm.smooth import fold_inputs

    def fold(acc, x):
        x = x.double()
        return x.T @ x if acc is None else acc + x.T @ x

    return fold_inputs(model, modules, fold, ids, chunk=512)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=None, help="default: the smollm2 source's GGUF")
    ap.add_argument("--calibration-tokens", type=int, default=4096)
    ap.add_argument("--top", default="64,256", help="rescored top-k sizes for the lm_head")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    from emolive.export.llm.report import EVAL_TEXT, EVAL_TOKENS
    from emolive.export.llm.source import load_gguf

    torch.set_num_threads(args.threads)
    gguf = args.gguf
    if gguf is None:
        from emolive.export.llm.bundle import GGUF_FILE, SOURCE
        from emolive.export.sources import fetch

        gguf = str(fetch(SOURCE, offline=True).path(GGUF_FILE))
    loaded = load_gguf(gguf)
    model, tok = loaded.model, loaded.tokenizer
    ev = tok.encode(EVAL_TEXT.read_text(encoding="utf-8"))[:EVAL_TOKENS]
    cal = [t for p in CALIBRATION for t in tok.encode(p.read_text(encoding="utf-8"))]
    cal = cal[: args.calibration_tokens]

    def perplexity(logits_fn=None) -> float:
        with torch.no_grad():
            if logits_fn is None:
                logits = model(torch.tensor([ev]), use_cache=False).logits[0, :-1]
            else:
                hidden = model.model(torch.tensor([ev]), use_cache=False).last_hidden_state[0, :-1]
                logits = logits_fn(hidden)
            nll = torch.nn.functional.cross_entropy(logits.double(), torch.tensor(ev[1:]))
        return math.exp(nll.item())

    results: dict[str, dict] = {}
    fp32 = perplexity()

    def record(name: str, ppl: float, seconds: float) -> None:
        results[name] = {"perplexity": ppl, "vs_fp32": ppl / fp32 - 1, "seconds": seconds}
        print(f"{name:22s} perplexity {ppl:8.4f} ({ppl / fp32 - 1:+.2%})", flush=True)

    print(f"{'fp32':22s} perplexity {fp32:8.4f}", flush=True)
    lin = groups(model)
    original = {k: [m.weight.data.clone() for m in v] for k, v in lin.items()}
    hess = hessians(model, {k: v[0] for k, v in lin.items()}, cal)
    for method in ("rtn", "gptq"):
        t0 = time.perf_counter()
        for key, mods in lin.items():
            w = torch.cat(original[key], 0)
            q = rtn(w) if method == "rtn" else gptq(w, hess[key])
            for m, part in zip(
                mods, torch.split(q, [m.weight.shape[0] for m in mods]), strict=True
            ):
                m.weight.data = part.contiguous()
        record(f"layers_{method}", perplexity(), time.perf_counter() - t0)
    for key, mods in lin.items():
        for m, w in zip(mods, original[key], strict=True):
            m.weight.data = w

    exact = model.lm_head.weight.data.clone()  # the Q8_0 table, dequantized exactly
    h_lm = hessians(model, {"lm_head": model.lm_head}, cal)["lm_head"]
    approx = {}
    for method in ("rtn", "gptq"):
        t0 = time.perf_counter()
        approx[method] = rtn(exact) if method == "rtn" else gptq(exact, h_lm)
        record(
            f"lm_head_{method}",
            perplexity(lambda h, w=approx[method]: h @ w.T),
            time.perf_counter() - t0,
        )

    def rescored(h, k: int, chunk: int = 128):
        out = []
        for s in range(0, h.shape[0], chunk):
            hc = h[s : s + chunk]
            logits = hc @ approx["gptq"].T
            top = torch.topk(logits, k, dim=-1).indices
            exact_top = torch.einsum("sd,skd->sk", hc, exact[top])
            out.append(logits.scatter(-1, top, exact_top))
        return torch.cat(out)

    for k in (int(x) for x in args.top.split(",")):
        t0 = time.perf_counter()
        record(
            f"lm_head_gptq_top{k}",
            perplexity(lambda h, k=k: rescored(h, k)),
            time.perf_counter() - t0,
        )

    doc = {
        "benchmark": "perplexity of requantized LLM weights (remainder-free 4-bit)",
        "gguf": gguf,
        "eval_text": str(EVAL_TEXT),
        "eval_tokens": len(ev),
        "calibration": [str(p) for p in CALIBRATION],
        "calibration_tokens": len(cal),
        "block": BLOCK,
        "fp32_perplexity": fp32,
        "results": results,
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
