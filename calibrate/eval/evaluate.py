"""One evaluation: a dataset through the bundle at one or two precisions, scored, reported."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emolive.calibrate.eval import emer
from emolive.calibrate.eval.items import ItemResult, ItemRunner
from emolive.calibrate.eval.metrics import label_metrics
from emolive.calibrate.eval.readers import Dataset, DatasetError


@dataclass(frozen=True)
class EvalConfig:
    bundle: Path
    modality: str = "all"
    precisions: tuple[str | None, ...] = (None,)  # None: what the bundle prefers per graph
    labels: tuple[str, ...] | None = None  # None: the dataset's
    limit: int | None = None
    emer: bool = True  # score items with reference clues (LLM judge + embeddings)
    command: str = ""


def check_labels(dataset: Dataset, labels: Sequence[str]) -> None:
    """Every item's label must be one the readings can name."""
    missing = Counter(i.label for i in dataset.items if i.label not in labels)
    if missing:
        found = ", ".join(f"{k} ({v})" for k, v in missing.most_common())
        raise DatasetError(
            f"{dataset.source}: labels {found} are not in --labels {','.join(labels)}"
        )


def evaluate(
    dataset: Dataset,
    config: EvalConfig,
    progress: Callable[[Sequence, str], object] | None = None,
) -> dict:
    """The report dict; ``progress(items, label)`` wraps the item loop (a progress bar)."""
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.cpu import cpu_record

    labels = tuple(config.labels or dataset.labels)
    check_labels(dataset, labels)
    items = dataset.items[: config.limit] if config.limit else list(dataset.items)
    bundle = Bundle.open(config.bundle)
    report: dict = {
        "command": config.command,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_record(),
        "bundle": {
            "path": str(config.bundle),
            "created_utc": bundle.manifest.get("created_utc"),
            "profile": bundle.profile,
        },  # fmt: skip
        "code": _code_version(),
        "dataset": dataset.record(),
        "modality": config.modality,
        "limit": config.limit,
        "labels": list(labels),
        "runs": {},
    }
    for precision in config.precisions:
        name = precision or "bundle"
        runner = ItemRunner(config.bundle, labels, config.modality, precision)
        loop = progress(items, f"{dataset.name} {config.modality} {name}") if progress else items
        results: list[ItemResult] = []
        t0 = time.perf_counter()
        with loop if hasattr(loop, "__enter__") else _null(loop) as bar:
            for item in bar:
                results.append(runner.run(item))
        run = _run_record(results, labels, runner, time.perf_counter() - t0)
        if config.emer and any(r.reading is not None and r.item.clues for r in results):
            run["emer"] = _emer(results, runner, bundle)
        report["runs"][name] = run
        del runner
    from emolive.calibrate.eval.report import compression

    report["compression"] = compression(report["runs"])
    return report


def _code_version() -> dict:
    """The commit evaluated, and whether the working tree differed from it."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "modified": None}
    return {"commit": head, "modified": bool(dirty)}


class _null:
    def __init__(self, it) -> None:
        self.it = it

    def __enter__(self):
        return self.it

    def __exit__(self, *exc) -> None:
        return None


def _run_record(results: list[ItemResult], labels, runner: ItemRunner, seconds: float) -> dict:
    scored = [r for r in results if r.skipped is None]
    skipped = Counter(r.skipped for r in results if r.skipped is not None)
    metrics = label_metrics(
        [r.item.label for r in scored],
        [r.emotion for r in scored],
        [r.confidence for r in scored],
        labels,
    )
    abstentions = Counter(r.reading["abstained"] for r in scored if r.emotion is None)
    return {
        "metrics": metrics,
        "skipped": sum(skipped.values()),
        "skipped_reasons": [f"{n}: {why}" for why, n in skipped.most_common()],
        "abstention_reasons": dict(abstentions),
        "seconds_per_item": sum(r.seconds for r in scored) / len(scored) if scored else None,
        "wall_s": round(seconds, 1),
        "notes": runner.notes,
        "backend": json.loads(json.dumps(runner.backend, default=str)),
        "items": [r.record() for r in results],
    }


def _emer(results: list[ItemResult], runner: ItemRunner, bundle) -> dict:
    unavailable: dict[str, str] = {}
    judge = None
    llm = getattr(getattr(runner.reasoner, "reasoner", None), "llm", None)
    if llm is None:
        from emolive.runtime.names import LLM_DECODER

        if LLM_DECODER in bundle.graphs:
            from emolive.runtime.llm.model import Llm

            llm = Llm.from_bundle(bundle)
    if llm is not None:
        judge = emer.LlmJudge.from_llm(llm)
    else:
        unavailable["llm"] = "the bundle has no LLM to judge with"
    encoder, why = emer.load_encoder(bundle)
    scorer = emer.EmbeddingScorer(encoder) if encoder is not None else None
    if scorer is None:
        unavailable["embedding"] = why
    out = emer.score_items(results, judge, scorer)
    out["unavailable"] = unavailable
    return out
