"""Fit the lite profile's fusion on the labelled development data, and write it.

    python -m emolive.calibrate.fusion_lite --bundle bundles/lite --data ../shared/data \\
        --out export/fitted/lite_fusion.json [--write-bundle]

Items: MELD dev's utterances and GoEmotions dev's single-Ekman-group comments, read by the
bundle's words model (its encoder and head), and the first ``--llm-items`` MELD dev utterances
also read by the reasoning LLM (its calibrated label scores over the transcript alone). Each
dataset is split by item order into halves: the weights and the uncertainty threshold are
fitted on the even items and measured on the odd ones, so the reported calibration (ECE) is
on data the fit did not see. The face's weight stays at 1.0: no labelled face data is
available here beyond four posed photos, too few to fit a temperature on (see README).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emolive.calibrate.eval.readers import read_goemotions, read_meld
from emolive.calibrate.fusion import Item, fit, measure
from emolive.runtime.bundle import Bundle
from emolive.runtime.cpu import cpu_record
from emolive.runtime.fusion import FusionModel
from emolive.runtime.names import FER_LABELS, FUSION_FILE


def words_items(reader, texts: Sequence[str], labels: Sequence[str], batch: int = 64) -> list[Item]:
    out = []
    for i in range(0, len(texts), batch):
        probs = reader.fer_probabilities(list(texts[i : i + batch]))
        for p, lab in zip(probs, labels[i : i + batch], strict=True):
            out.append(Item({"words": np.asarray(p, np.float64)}, FER_LABELS.index(lab)))
    return out


def add_llm(items: list[Item], texts: Sequence[str], bundle: Bundle, log) -> int:
    """Add the LLM's calibrated scores to ``items`` (in place); how many it read."""
    from emolive.runtime.llm.model import LlmOptions
    from emolive.runtime.reasoning.clues import Clues
    from emolive.runtime.reasoning.reasoner import Reasoner, ReasonerConfig

    reasoner = Reasoner.from_bundle(bundle, ReasonerConfig(explain=False), LlmOptions())
    read = 0
    for i, (item, text) in enumerate(zip(items, texts, strict=True)):
        scored = reasoner.score(Clues(transcript=text), FER_LABELS)
        if scored.probs is not None:
            items[i] = Item({**item.dists, "llm": np.asarray(scored.probs)}, item.label)
            read += 1
        if (i + 1) % 20 == 0:
            log(f"  llm {i + 1}/{len(items)}")
    return read


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="the fitted model (JSON)")
    ap.add_argument("--llm-items", type=int, default=120)
    ap.add_argument("--write-bundle", action="store_true", help="also put it in --bundle")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    from emolive.runtime.words import WordsReader

    bundle = Bundle.open(args.bundle)
    reader = WordsReader.from_bundle(bundle)
    sets = {
        "meld_dev": read_meld(args.data / "text/meld/dev_sent_emo.csv"),
        "goemotions_dev": read_goemotions(args.data / "text/goemotions/dev.tsv"),
    }
    fit_items: list[Item] = []
    held: dict[str, list[Item]] = {}
    for name, ds in sets.items():
        texts = [it.text for it in ds.items]
        labels = [it.label for it in ds.items]
        log(f"{name}: {len(texts)} items through the words model")
        items = words_items(reader, texts, labels)
        if name == "meld_dev" and args.llm_items:
            n = min(args.llm_items, len(items))
            log(f"{name}: the first {n} also through the reasoning LLM")
            llm_part = items[:n]
            add_llm(llm_part, texts[:n], bundle, log)
            items[:n] = llm_part
        fit_items += items[0::2]
        held[name] = items[1::2]
    modalities = ["words", "llm"] if args.llm_items else ["words"]
    fitted_on = {
        "data": {n: {**ds.record(), "half": "even items"} for n, ds in sets.items()},
        "words_head": reader.card.get("trained_on") if isinstance(reader.card, dict) else None,
        "words_encoder_precision": reader.precision,
        "llm_items": args.llm_items,
        "face": "weight 1.0, not fitted: no labelled face set here beyond four posed photos",
        "voice": "weight 0: the voice measured at chance (FACTS; benchmarks/voice_clues.py)",
        "date": _dt.date.today().isoformat(),
        "cpu": cpu_record(),
        "command": "python -m emolive.calibrate.fusion_lite " + " ".join(sys.argv[1:]),
    }
    start = FusionModel({"face": 1.0, "words": 1.0, "voice": 0.0, "llm": 1.0})
    model, report = fit(fit_items, modalities, fitted_on, start)
    held_out = {
        name: {"hand_set": measure(items, start), "fitted": measure(items, model)}
        for name, items in held.items()
    }
    model = FusionModel(
        model.weights, model.llm_max_ratio, model.threshold,
        {**model.fitted_on, "held_out": held_out},
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model.as_dict(), indent=2) + "\n")
    if args.write_bundle:
        from emolive.export.bundle import BundleWriter

        writer = BundleWriter.reopen(args.bundle)
        writer.add_json(FUSION_FILE, "fusion.json", model.as_dict(), role="fitted fusion")
        writer.write()
    summary = {"fit": report, "held_out": held_out, "out": str(args.out)}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
