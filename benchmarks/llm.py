"""Reasoning LLM speed, side by side with llama.cpp on the same GGUF and thread count.

    python benchmarks/llm.py --bundle bundles/lite --threads 2

Measures, for every weight form in the bundle and for llama.cpp (llama-cpp-python) on the
GGUF the bundle was built from:

* prefill tok/s on an EmoPrompt of ~200 tokens (a fresh cache each round),
* decode tok/s over 64 greedy tokens (end-of-turn ignored, so every round decodes 64),
* time until the 7 FER label scores are ready: ``cold`` runs the whole prompt, ``warm`` reuses
  the cached system prompt as the live reasoner does (ORT forms only); content-free
  calibration is computed beforehand, as it is once per label set in a session,
* peak RSS of a process that does all of the above (each form in its own process),
* perplexity on the fixed text the export used (ORT forms: the bundle's export report;
  llama.cpp: measured here on the same token ids).

Every form runs in a fresh subprocess so peak RSS is its own. Numbers are medians over
``--rounds``; ``--repeat`` runs the whole sequence again, interleaved, and keeps the best
median per metric (other load on the machine only ever slows a run down).
Writes benchmarks/results/llm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "llm.json"
DECODE_TOKENS = 64
TARGET_PROMPT_TOKENS = 200
TARGETS = {
    "decode_vs_llama_cpp": 1.25,
    "prefill_vs_llama_cpp": 4.0,
    "labels_ready_ms": 150.0,
    "quantized_peak_rss_mb": 400.0,
    "perplexity_vs_fp32": 0.01,
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark_prompt(tokenizer) -> tuple[list[int], dict]:
    """An EmoPrompt of about TARGET_PROMPT_TOKENS tokens (a probe's clues, longer speech)."""
    from emolive.runtime.reasoning import Clues, LabelSet
    from emolive.runtime.reasoning import prompt as emo

    speech = "We won the final! I can't believe it, after all these months of training"
    words = speech.split()
    labels = LabelSet.parse("fer")
    while True:
        clues = Clues(
            visual=("expression: happy 0.81", "smiling, cheeks raised"),
            audio=("pitch: high and lively", "energy: loud"),
            transcript=" ".join(words),
        )
        msgs = emo.messages(labels, clues, clues.transcript, tokenizer.neutralize)
        ids = tokenizer.encode(tokenizer.chat.render(msgs, prefill=emo.ANSWER_PREFIX))
        if len(ids) >= TARGET_PROMPT_TOKENS:
            return ids, {
                "visual": clues.visual,
                "audio": clues.audio,
                "transcript": clues.transcript,
            }
        words += ["and", "everyone", "was", "cheering"]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def time_prefill_decode(s, ids: list[int], rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per round for a prefill of ``ids`` into a fresh cache, then for
    DECODE_TOKENS greedy steps after it (a DecoderSession ``s``)."""
    import numpy as np

    s.reset()
    s.forward(ids[:16])  # first-run allocations out of the way
    prefill, decode = [], []
    for _ in range(rounds):
        s.reset()
        out: dict = {}
        prefill.append(
            _timed(lambda out=out: out.update(logits=s.forward(ids, last_only=True)[-1]))
        )
        tok = int(np.argmax(out["logits"]))

        def steps(tok=tok):
            t = tok
            for _ in range(DECODE_TOKENS):
                t = int(np.argmax(s.forward([t])[-1]))

        decode.append(_timed(steps))
    return prefill, decode


# -- children ---------------------------------------------------------------------------


def child_ort(bundle: str, precision: str, threads: int, rounds: int) -> dict:

    from emolive.runtime.llm import Llm, LlmOptions
    from emolive.runtime.reasoning import Clues, Reasoner, ReasonerConfig

    llm = Llm.from_bundle(bundle, LlmOptions(precision=precision, threads=threads))
    ids, clue_fields = benchmark_prompt(llm.tokenizer)
    prefill, decode = time_prefill_decode(llm.session, ids, rounds)
    s = llm.session
    reasoner = Reasoner(llm, ReasonerConfig(explain=False))
    clues = Clues(**clue_fields)
    reasoner.reason(clues)  # content-free calibration for FER, once per label set
    warm, cold = [], []
    for i in range(rounds):
        # A new transcript each round: only the shared system prompt may come from the cache.
        fresh = Clues(**{**clue_fields, "transcript": f"{clue_fields['transcript']} ({i})"})
        warm.append(_timed(lambda c=fresh: reasoner.reason(c)))
        s.reset()
        cold.append(_timed(lambda c=fresh: reasoner.reason(c)))
    return {
        "precision": precision,
        "prompt_tokens": len(ids),
        "prefill_tok_s": len(ids) / statistics.median(prefill),
        "decode_tok_s": DECODE_TOKENS / statistics.median(decode),
        "labels_ready_ms_warm": 1e3 * statistics.median(warm),
        "labels_ready_ms_cold": 1e3 * statistics.median(cold),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_llama(gguf: str, bundle: str, threads: int, rounds: int, ppl: bool) -> dict:
    import numpy as np
    from llama_cpp import Llama

    from emolive.runtime.llm import Llm, LlmOptions
    from emolive.runtime.reasoning import LabelSet
    from emolive.runtime.reasoning.labels import label_token_ids

    # Our tokenizer gives the prompt ids; llama.cpp must tokenize the text the same way.
    tok = Llm.from_bundle(bundle, LlmOptions(max_context=8)).tokenizer
    ids, _ = benchmark_prompt(tok)
    label_ids = label_token_ids(tok, LabelSet.parse("fer"))
    llm = Llama(
        model_path=gguf, n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    same_tokens = llm.tokenize(tok.decode(ids, skip_special=False).encode(), add_bos=False,
                               special=True) == ids  # fmt: skip
    llm.reset()
    llm.eval(ids[:16])
    prefill, decode, labels = [], [], []
    for _ in range(rounds):
        llm.reset()
        prefill.append(_timed(lambda: llm.eval(ids)))
        tok0 = int(np.argmax(llm.scores[llm.n_tokens - 1]))

        def steps(t=tok0):
            for _ in range(DECODE_TOKENS):
                llm.eval([t])
                t = int(np.argmax(llm.scores[llm.n_tokens - 1]))

        decode.append(_timed(steps))

        def label_scores():
            llm.reset()
            llm.eval(ids)
            last = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            lse = np.log(np.exp(last - last.max()).sum()) + last.max()
            return [last[t[0]] - lse for t in label_ids]  # FER labels are one token each

        labels.append(_timed(label_scores))
    out = {
        "prompt_tokens": len(ids),
        "same_token_ids_as_runtime": bool(same_tokens),
        "prefill_tok_s": len(ids) / statistics.median(prefill),
        "decode_tok_s": DECODE_TOKENS / statistics.median(decode),
        "labels_ready_ms_cold": 1e3 * statistics.median(labels),
        "peak_rss_mb": peak_rss_mb(),
    }
    if ppl:
        out.update(llama_perplexity(gguf, tok, threads))
    return out


def llama_perplexity(gguf: str, tokenizer, threads: int) -> dict:
    """Perplexity on the export's text and token ids (a second context, all logits kept)."""
    import numpy as np
    from llama_cpp import Llama

    from emolive.export.llm.report import EVAL_TEXT, eval_ids  # numpy-only helpers

    ids = eval_ids(tokenizer)
    llm = Llama(
        model_path=gguf, n_ctx=len(ids) + 8, n_batch=256, n_threads=threads,
        n_threads_batch=threads, logits_all=True, verbose=False,
    )  # fmt: skip
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
    nll = lse - logits[np.arange(len(ids) - 1), ids[1:]]
    return {"perplexity": float(np.exp(nll.mean())), "eval_tokens": len(ids),
            "eval_text": str(EVAL_TEXT)}  # fmt: skip


# -- parent -----------------------------------------------------------------------------


def run_child(args: list, script: str = __file__) -> dict:
    """``script --child ARGS`` in a fresh process; its last stdout line is the JSON result."""
    cmd = [sys.executable, script, "--child", json.dumps(args)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        name = Path(script).name
        raise RuntimeError(f"{name} child {args[:2]} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    """Per metric, the best of the repeated medians (higher tok/s, lower ms and MB)."""
    out = dict(runs[0])
    for key in out:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if values and not isinstance(out[key], bool):
            out[key] = max(values) if key.endswith("tok_s") else min(values)
    out["runs"] = len(runs)
    return out


def machine() -> dict:
    """The machine a result was measured on; int8 numbers depend on the CPU class."""
    from importlib.metadata import PackageNotFoundError, version

    from emolive.runtime.cpu import cpu_record

    versions = {}
    for pkg in ("onnxruntime", "llama-cpp-python", "tokenizers", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()  # fmt: skip
    return {**cpu_record(), "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(),
            "versions": versions, "commit": commit or None}  # fmt: skip


def paired_ratios(form_runs: list[dict], llama_runs: list[dict], metric: str) -> dict:
    """Form / llama.cpp per repeat: the two ran a minute apart, so machine drift (this VM's
    speed moves by up to 30% over minutes) cancels in each pair, not across them."""
    ratios = [f[metric] / ll[metric] for f, ll in zip(form_runs, llama_runs, strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "pairs": len(ratios)}  # fmt: skip


def summarize(forms: dict, llama: dict, ppl: dict, runs: dict | None = None) -> dict:
    """Each target against the best form that keeps perplexity within 1% of fp32.

    With ``runs`` (every repeat's results), speed ratios are the median of per-repeat pairs
    (``paired_ratios``); without, best against best."""
    within = [p for p in forms if p == "fp32" or (ppl.get(p) is not None and ppl[p] <= 0.01)]

    def top(metric: str, high: bool = True) -> str:
        pick = max if high else min
        return pick(within, key=lambda p: forms[p][metric])

    def ratio(form: str, metric: str) -> dict:
        if runs:
            paired = paired_ratios(runs[form], runs["llama.cpp"], metric)
            return {"form": form, "ratio": paired["median"], "paired": paired}
        return {"form": form, "ratio": forms[form][metric] / llama[metric]}

    dec, pre, lab = top("decode_tok_s"), top("prefill_tok_s"), top("labels_ready_ms_warm", False)
    out = {
        "forms_within_1pct_perplexity": within,
        "decode_vs_llama_cpp": ratio(dec, "decode_tok_s"),
        "prefill_vs_llama_cpp": ratio(pre, "prefill_tok_s"),
        "labels_ready_ms": {"form": lab, "ms": forms[lab]["labels_ready_ms_warm"],
                            "cold_ms": forms[lab]["labels_ready_ms_cold"]},
        "quantized_peak_rss_mb": {p: forms[p]["peak_rss_mb"] for p in forms if p != "fp32"},
        "perplexity_vs_fp32": {p: ppl.get(p) for p in forms},
    }  # fmt: skip
    out["met"] = {
        "decode_vs_llama_cpp": out["decode_vs_llama_cpp"]["ratio"]
        >= TARGETS["decode_vs_llama_cpp"],
        "prefill_vs_llama_cpp": out["prefill_vs_llama_cpp"]["ratio"]
        >= TARGETS["prefill_vs_llama_cpp"],
        "labels_ready_ms": out["labels_ready_ms"]["ms"] <= TARGETS["labels_ready_ms"],
        "quantized_peak_rss_mb": all(
            v <= TARGETS["quantized_peak_rss_mb"] for v in out["quantized_peak_rss_mb"].values()
        ),
    }
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, *rest = json.loads(sys.argv[2])
        result = child_ort(*rest) if kind == "ort" else child_llama(*rest)
        print(json.dumps(result))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=os.environ.get("EMOLIVE_BUNDLE", "bundles/lite"))
    ap.add_argument("--gguf", default=None, help="default: the smollm2 source's GGUF")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--forms", default=None, help="comma-separated; default: all in the bundle")
    ap.add_argument("--no-llama-ppl", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from emolive.runtime.bundle import Bundle
    from emolive.runtime.names import LLM_DECODER

    entry = Bundle.open(args.bundle).graph(LLM_DECODER)
    forms = args.forms.split(",") if args.forms else sorted(entry.variants)
    gguf = args.gguf
    if gguf is None:
        from emolive.export.llm.bundle import GGUF_FILE, SOURCE
        from emolive.export.sources import fetch

        gguf = str(fetch(SOURCE, offline=True).path(GGUF_FILE))
    reports = entry.attrs.get("reports") or {}
    ppl = {p: (reports.get(p) or {}).get("perplexity_vs_fp32") for p in forms}
    started = machine()
    runs: dict[str, list] = {p: [] for p in [*forms, "llama.cpp"]}
    for r in range(args.repeat):
        for p in forms:
            print(f"[{r + 1}/{args.repeat}] {p} ...", file=sys.stderr, flush=True)
            runs[p].append(run_child(["ort", args.bundle, p, args.threads, args.rounds]))
        print(f"[{r + 1}/{args.repeat}] llama.cpp ...", file=sys.stderr, flush=True)
        want_ppl = r == 0 and not args.no_llama_ppl
        runs["llama.cpp"].append(
            run_child(["llama", gguf, args.bundle, args.threads, args.rounds, want_ppl])
        )
    results = {p: best(runs[p]) for p in forms}
    llama = best(runs["llama.cpp"])
    for name, out in [*results.items(), ("llama.cpp", llama)]:
        out["per_repeat"] = [
            {k: round(r[k], 1) for k in ("prefill_tok_s", "decode_tok_s")} for r in runs[name]
        ]
    if "perplexity" in runs["llama.cpp"][0]:
        llama["perplexity"] = runs["llama.cpp"][0]["perplexity"]
    for p in forms:
        results[p]["perplexity"] = (reports.get(p) or {}).get("perplexity")
    fp32_ppl = (reports.get("fp32") or {}).get("perplexity")
    if fp32_ppl and "perplexity" in llama:
        llama["perplexity_vs_fp32"] = llama["perplexity"] / fp32_ppl - 1
    summary = summarize(results, llama, ppl, runs)
    doc = {
        "benchmark": "reasoning LLM (SmolLM2-135M-Instruct)",
        "machine": {**started, "load_avg_at_end": os.getloadavg()},
        "threads": args.threads,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "decode_tokens": DECODE_TOKENS,
        "bundle": str(args.bundle),
        "gguf": gguf,
        "onnxruntime_forms": results,
        "llama_cpp": llama,
        "targets": TARGETS,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(json.dumps(summary, indent=2))
    for p, r in [*results.items(), ("llama.cpp", llama)]:
        print(
            f"{p:10s} prefill {r['prefill_tok_s']:7.0f} tok/s  decode {r['decode_tok_s']:6.1f} "
            f"tok/s  labels {r.get('labels_ready_ms_warm', r['labels_ready_ms_cold']):6.1f} ms  "
            f"RSS {r['peak_rss_mb']:6.0f} MB  ppl {r.get('perplexity')}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
