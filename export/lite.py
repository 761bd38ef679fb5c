"""The lite bundle: every stage's graphs and files from the pinned sources, checked, in one folder."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from emolive.export.bundle import BundleWriter

# stage -> (module, function). Each function takes (writer, work, log) and returns its checks.
STAGES: dict[str, tuple[str, str]] = {
    "vision": ("emolive.export.vision", "add_vision_graphs"),
    "audio": ("emolive.export.audio", "add_audio_models"),
    "llm": ("emolive.export.llm.bundle", "add_llm_graphs"),
}


def export_lite(
    out: Path | str,
    stages: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    work: Path | None = None,
) -> dict:
    """Export the lite profile into ``out`` (replaced whole only once everything checked out)."""
    stages = list(stages or STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    out = Path(out)
    # Build next to the destination and swap in at the end: a failed check leaves the
    # previous bundle, if any, untouched.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        writer = BundleWriter(staging, profile="lite")
        checks = {}
        with tempfile.TemporaryDirectory(prefix="emolive-export-") as tmp:
            for stage in stages:
                module, func = STAGES[stage]
                log(f"exporting {stage} ...")
                add = getattr(importlib.import_module(module), func)
                checks[stage] = add(writer, Path(work or tmp) / stage, log)
        writer.manifest["checks"] = checks
        writer.write()
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return checks
