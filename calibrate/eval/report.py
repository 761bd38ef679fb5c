"""The evaluation report: ``report.json`` (everything), ``report.md`` (tables) and PNG plots
(confusion matrix and reliability diagram per precision), in one folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emolive.calibrate.eval.metrics import ABSTAINED


def compression(runs: dict) -> dict | None:
    """The loss from int8 on the task: headline metrics fp32 − int8, and how often the two
    readings name the same label (abstention counts as a label here)."""
    if not {"fp32", "int8"} <= set(runs):
        return None
    a, b = runs["fp32"], runs["int8"]
    out = {}
    for key in ("accuracy", "weighted_f1", "macro_f1"):
        x, y = a["metrics"]["all"][key], b["metrics"]["all"][key]
        out[f"{key}_drop"] = None if x is None or y is None else x - y
    ea, eb = a["metrics"]["calibration"]["ece"], b["metrics"]["calibration"]["ece"]
    out["ece_change"] = None if ea is None or eb is None else eb - ea
    pairs = [
        (p["emotion"], q["emotion"])
        for p, q in zip(a["items"], b["items"], strict=True)
        if p["skipped"] is None and q["skipped"] is None
    ]
    out["label_agreement"] = float(np.mean([p == q for p, q in pairs])) if pairs else None
    return out


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError(
            "the eval report's plots need matplotlib: pip install 'emo-live[eval]'"
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(metrics: dict, path: Path, title: str) -> None:
    plt = _pyplot()
    conf = metrics["confusion"]
    counts = np.asarray(conf["counts"], float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(
        figsize=(1.0 + 0.8 * len(conf["columns"]), 1.2 + 0.7 * len(conf["rows"]))
    )
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=45, ha="right")
    ax.set_yticks(range(len(conf["rows"])), conf["rows"])
    ax.set_xlabel("reading")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_reliability(metrics: dict, path: Path, title: str) -> None:
    plt = _pyplot()
    bins = metrics["calibration"]["bins"]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    width = bins[0]["hi"] - bins[0]["lo"]
    centers = [b["lo"] + width / 2 for b in bins]
    acc = [b["accuracy"] or 0.0 for b in bins]
    ax.bar(centers, acc, width=width * 0.95, color="#4c72b0", label="accuracy")
    conf = [(c, b["confidence"]) for c, b in zip(centers, bins, strict=True) if b["count"]]
    if conf:
        ax.plot(*zip(*conf, strict=True), "o", color="#dd8452", label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    ece = metrics["calibration"]["ece"]
    ax.set_title(f"{title}\nECE {ece:.3f}" if ece is not None else title, fontsize=9)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fmt(x, nd: int = 3) -> str:
    """A number for the report and the command's summary: ``nd`` places, or a dash."""
    return "–" if x is None else f"{x:.{nd}f}"


def markdown(report: dict) -> str:
    d = report["dataset"]
    lines = [
        f"# emo-live eval: {d['name']} ({report['modality']})",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- CPU: {report['cpu']['cpu']} ({report['cpu']['cpu_class']})",
        f"- bundle: `{report['bundle']['path']}` (created {report['bundle']['created_utc']})",
        f"- data: `{d['source']}`, sha256 {d['sha256'][:16]}…, {d['items']} items"
        + (f", first {report['limit']} evaluated" if report["limit"] else ""),
        f"- labels: {', '.join(report['labels'])}",
    ]
    code = report.get("code") or {}
    if code.get("commit"):
        dirty = " (working tree modified)" if code.get("modified") else ""
        lines.append(f"- code: {code['commit'][:12]}{dirty}")
    lines += [f"- {n}" for n in d["notes"]]
    lines += [
        "",
        "Metrics over answered readings, and over all items with an abstention counted wrong "
        "(see `emolive.calibrate.eval.metrics`). ECE: 15 bins, answered readings.",
        "",
        "| precision | items | abstained | accuracy (answered) | accuracy (all) | weighted F1 "
        "(all) | macro F1 (all) | ECE | s/item |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in report["runs"].items():
        m = run["metrics"]
        lines.append(
            f"| {name} | {m['n']} | {m['abstained']} ({fmt(m['abstention_rate'], 2)}) | "
            f"{fmt(m['answered']['accuracy'])} | {fmt(m['all']['accuracy'])} | "
            f"{fmt(m['all']['weighted_f1'])} | {fmt(m['all']['macro_f1'])} | "
            f"{fmt(m['calibration']['ece'])} | {fmt(run['seconds_per_item'], 2)} |"
        )
    first = next(iter(report["runs"].values()), None)
    if first is not None and "majority_baseline" in first["metrics"]:
        b = first["metrics"]["majority_baseline"]
        lines += [
            "",
            f"Always answering the most frequent label ({b['label']}): accuracy "
            f"{fmt(b['accuracy'])}, weighted F1 {fmt(b['weighted_f1'])}, macro F1 "
            f"{fmt(b['macro_f1'])}.",
        ]
    if report.get("compression"):
        c = report["compression"]
        lines += [
            "",
            f"Loss from int8 (fp32 − int8): accuracy {fmt(c['accuracy_drop'])}, weighted F1 "
            f"{fmt(c['weighted_f1_drop'])}, macro F1 {fmt(c['macro_f1_drop'])}; ECE change "
            f"{fmt(c['ece_change'])}; same label on {fmt(c['label_agreement'])} of items.",
        ]
    for name, run in report["runs"].items():
        m = run["metrics"]
        lines += ["", f"## {name}", ""]
        if run["skipped"]:
            lines.append(f"Skipped: {run['skipped']} ({'; '.join(run['skipped_reasons'])}).")
        lines += [f"Note: {n}" for n in run["notes"]]
        lines += [
            "",
            "| class | support | precision | recall | F1 (all) |",
            "|---|---|---|---|---|",
        ]
        for lab, c in m["all"]["per_class"].items():
            lines.append(
                f"| {lab} | {c['support']} | {fmt(c['precision'])} | {fmt(c['recall'])} | "
                f"{fmt(c['f1'])} |"
            )
        conf = m["confusion"]
        lines += ["", "Confusion (rows: true label; columns: reading):", ""]
        lines.append("| | " + " | ".join(conf["columns"]) + " |")
        lines.append("|---" * (len(conf["columns"]) + 1) + "|")
        for lab, row in zip(conf["rows"], conf["counts"], strict=True):
            lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
        for png in run.get("plots", []):
            lines += ["", f"![{png}]({png})"]
        lines += _emer_lines(run.get("emer"))
    return "\n".join(lines) + "\n"


def _emer_lines(emer: dict | None) -> list[str]:
    if emer is None:
        return []
    out = ["", f"### EMER metrics: {emer['items']} item(s) with reference clues", ""]
    out += ["| scorer | clue overlap 0–10 | label overlap 0–10 | modality completeness 0–3 |",
            "|---|---|---|---|"]  # fmt: skip
    for name, title in (("llm", "bundle LLM as judge"), ("embedding", "sentence embeddings")):
        s = emer.get(name)
        if s is None:
            reason = emer.get("unavailable", {}).get(name, "not run")
            out.append(f"| {title} | unavailable: {reason} | | |")
            continue
        cells = []
        for metric in ("clue_overlap", "label_overlap", "modality_completeness"):
            bad = s.get(f"{metric}_unparseable", 0)
            cells.append(fmt(s[metric], 2) + (f" ({bad} unparseable)" if bad else ""))
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    return out


TEXT_FIELDS = ("clues", "explanation")  # per item: they quote the dataset's own text


def omit_item_text(report: dict) -> dict:
    """Drop the per-item fields that quote the dataset (clues, explanation), keeping ids,
    labels, scores and timing: for reports published where the data's licence does not
    allow redistributing its text (MELD is GPL-3.0)."""
    for run in report["runs"].values():
        for item in run.get("items", []):
            for key in TEXT_FIELDS:
                item.pop(key, None)
    report["item_text"] = f"omitted ({', '.join(TEXT_FIELDS)}): the dataset's text stays with it"
    return report


def write(report: dict, out: Path, item_text: bool = True) -> list[Path]:
    """Write the report's files into ``out``; the plots first (their names go in the JSON).
    ``item_text`` False: per-item clues and explanations are left out (``omit_item_text``)."""
    out.mkdir(parents=True, exist_ok=True)
    if not item_text:
        omit_item_text(report)
    written = []
    for name, run in report["runs"].items():
        title = f"{report['dataset']['name']} {report['modality']} {name}"
        run["plots"] = []
        if run["metrics"]["n"] == 0:
            continue
        for kind, plot in (("confusion", plot_confusion), ("reliability", plot_reliability)):
            path = out / f"{kind}_{name}.png"
            plot(run["metrics"], path, title)
            run["plots"].append(path.name)
            written.append(path)
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return [out / "report.json", out / "report.md", *written]


__all__ = ["ABSTAINED", "compression", "markdown", "omit_item_text", "write"]
