"""The LLM profiles' calibration report: per encoder, token cosine with fp32 on check windows and
the greedy answers with it in place; per LLM form, the lite LLM's form report plus the same
answers; sizes, CPU latency and the CPU that measured it all (JSON and Markdown)."""

from __future__ import annotations

import datetime as _dt

import emolive
from emolive.calibrate.report import _cpu_line
from emolive.export.llm.report import MAX_PPL_INCREASE
from emolive.runtime.cpu import this_cpu

REPORT_JSON = "calibration_report.json"
REPORT_MD = "calibration_report.md"


def build_report(*, profile: str, encoders: dict, together: dict | None, llm: dict, config: dict,
                 bounds: dict, media: dict, windows: dict, notes: list[str]) -> dict:  # fmt: skip
    written = [g for g, e in encoders.items() if e["written"]]
    return {
        "emolive_version": emolive.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        # int8 kernels differ by CPU class (runtime/cpu.py): every number here is this CPU's.
        "measured_on": this_cpu().record(),
        "passed": bool(written) and len(written) == len(encoders),
        "written": written + [f"llm_decoder {p}" for p in llm.get("forms", {})],
        "refused": {g: e["failures"] for g, e in encoders.items() if not e["written"]},
        "config": config,
        "bounds": bounds,
        "media": media,
        "windows": windows,
        "encoders": encoders,
        "encoders_together": together,
        "llm": llm,
        "notes": notes,
    }


def summary(report: dict) -> dict:
    """The short form kept in the manifest's ``calibration`` field."""
    return {
        "report": REPORT_JSON,
        "profile": report["profile"],
        "passed": report["passed"],
        "created_utc": report["created_utc"],
        "measured_on": report["measured_on"],
        "written": report["written"],
        "refused": report["refused"],
        "token_cosine_min": {
            g: e["agreement"]["token_cosine_min"] for g, e in report["encoders"].items()
        },
        "llm_prefer_cpu": report["llm"].get("prefer"),
    }


def _mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.2f}"


def _answers(a: dict | None) -> str:
    return "n/a" if not a else f"{a['answers_equal']}/{a['prompts']}"


def render_markdown(report: dict) -> str:
    b, w, c = report["bounds"], report["windows"], report["config"]
    lines = [
        f"# INT8 / LLM weight-form calibration report ({report['profile']})",
        "",
        f"emo-live {report['emolive_version']}, {report['created_utc']}. Written: "
        + (", ".join(report["written"]) or "nothing")
        + (f". Refused: {', '.join(report['refused'])}" if report["refused"] else "")
        + ".",
        "",
        _cpu_line({"measured_on": report["measured_on"], "config": c}),
        "",
        f"Encoders: explicit Q/DQ int8, `{c['calibrate_method']}` ranges on {w['calibration']} "
        f"calibration windows ({w['voiced']} voiced with espeak-ng speech: their track is "
        f"silent), checked on {w['check']} windows of other media; stems and attention "
        f"pooling kept fp32. Bounds: token cosine with fp32 >= {b['token_cosine_min']} on every "
        f"check window, and identical greedy answers ({c['answer_tokens']} tokens at most) on "
        f"{w['prompts']} prompts.",
        "",
        "## Encoders",
        "",
        "| graph | token cosine min / mean | feature-mean cosine min | answers equal | "
        "fp32 / int8 MB | fp32 / int8 ms (1 thread) | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for g, e in report["encoders"].items():
        a, lat = e["agreement"], e.get("latency_cpu") or {}
        result = "written" if e["written"] else "refused: " + "; ".join(e["failures"])
        lines.append(
            f"| {g} | {a['token_cosine_min']:.4f} / {a['token_cosine_mean']:.4f} | "
            f"{a.get('feature_mean_cosine_min', float('nan')):.4f} | {_answers(e.get('answers'))} | "
            f"{_mb(e['bytes_fp32'])} / {_mb(e['bytes_int8'])} | "
            f"{lat.get('fp32_ms', float('nan')):.2f} / {lat.get('int8_ms', float('nan')):.2f} | "
            f"{result} |"
        )
    if report["encoders_together"]:
        lines += ["", f"All written int8 encoders together: answers equal "
                  f"{_answers(report['encoders_together'])}."]  # fmt: skip
    llm = report["llm"]
    if llm.get("forms"):
        lines += [
            "",
            "## LLM weight forms (the lite LLM's forms and report)",
            "",
            f"Perplexity on {llm['eval_text']} ({llm['eval_tokens']} tokens); a form within "
            f"{MAX_PPL_INCREASE:.0%} of fp32 may be preferred. Prefers on CPU: "
            f"**{llm['prefer']}**.",
            "",
            "| form | perplexity vs fp32 | top-1 vs fp32 | probe labels vs fp32 | "
            "answers equal | probe deviation | MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for p, f in llm["forms"].items():
            lines.append(
                f"| {p} | {f['perplexity_vs_fp32']:+.2%} | {f['top1_agreement_vs_fp32']:.3f} | "
                f"{f['label_agreement_vs_fp32']:.3f} | {_answers(f['answers'])} | "
                f"{f['probe_deviation']:.4g} | {_mb(f['bytes'])} |"
            )
    for note in report["notes"]:
        lines += ["", f"**Note:** {note}"]
    lines += ["", "## Media", ""]
    for side, files in report["media"].items():
        lines.append(f"- {side}: " + ", ".join(f["file"] for f in files))
    return "\n".join(lines) + "\n"
