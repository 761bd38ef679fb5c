"""Export profiles: one module per profile in a table, one way to write their bundles.

A profile module declares ``PROFILE`` (the name its bundles' manifests carry, which picks the
runtime builder in ``runtime/profiles/``) and ``STAGES``: stage -> (module, function), each
function taking (writer, work folder, log) and returning that stage's checks. Adding a
profile is one module and one line in ``PROFILES``.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from emolive.export.bundle import BundleWriter

# profile name -> the module that declares its stages
PROFILES: dict[str, str] = {
    "lite": "emolive.export.lite",
    "affectgpt": "emolive.export.affectgpt",
    "emotion_llama": "emolive.export.emotion_llama",
}


def profile_module(name: str) -> ModuleType:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return importlib.import_module(PROFILES[name])


def stages_of(profile: str) -> dict[str, tuple[str, str]]:
    return dict(profile_module(profile).STAGES)


def export_profile(
    profile: str,
    out: Path | str,
    stages: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    work: Path | None = None,
    options: dict | None = None,
) -> dict:
    """Export ``profile``'s ``stages`` (default: all) into the bundle folder ``out``, which
    is replaced whole only once every stage's checks passed; returns the checks.
    ``options``: keyword arguments for every stage function, for profiles that declare them
    (``OPTIONS``, e.g. affectgpt's checkpoint and model folders); others take none."""
    module = profile_module(profile)
    options = dict(options or {})
    declared = tuple(getattr(module, "OPTIONS", ()))
    extra = sorted(set(options) - set(declared))
    if extra:
        raise ValueError(f"profile {profile!r} takes no option(s) {extra}")
    absent = [o for o in declared if options.get(o) is None]
    if absent:
        raise ValueError(f"profile {profile!r} needs option(s) {absent}")
    table = dict(module.STAGES)
    stages = list(stages or table)
    unknown = [s for s in stages if s not in table]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(table)}")
    out = Path(out)
    # Build next to the destination and swap in at the end: a failed check leaves the
    # previous bundle, if any, untouched.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        writer = BundleWriter(staging, profile=module.PROFILE)
        checks = {}
        with tempfile.TemporaryDirectory(prefix="emolive-export-") as tmp:
            for stage in stages:
                mod, func = table[stage]
                log(f"exporting {stage} ...")
                add = getattr(importlib.import_module(mod), func)
                checks[stage] = add(writer, Path(work or tmp) / stage, log, **options)
        writer.manifest["checks"] = checks
        writer.write()
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return checks
