"""The lite profile's export: every stage's graphs and files from the pinned sources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

PROFILE = "lite"

# stage -> (module, function). Each function takes (writer, work, log) and returns its checks.
STAGES: dict[str, tuple[str, str]] = {
    "vision": ("emolive.export.vision", "add_vision_graphs"),
    "audio": ("emolive.export.audio", "add_audio_models"),
    "llm": ("emolive.export.llm.bundle", "add_llm_graphs"),
    "words": ("emolive.export.words", "add_words_graphs"),
    "fusion": ("emolive.export.fusion", "add_fitted_fusion"),
}


def export_lite(
    out: Path | str,
    stages: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    work: Path | None = None,
) -> dict:
    """Export the lite profile into ``out`` (replaced whole only once everything checked out)."""
    from emolive.export.profiles import export_profile

    return export_profile(PROFILE, out, stages, log, work)
