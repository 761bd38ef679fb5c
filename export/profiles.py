"""Export profiles: one module per profile in a table, one way to write their bundles.

A profile module declares ``PROFILE`` (the name its bundles' manifests carry, which picks the
runtime builder in ``runtime/profiles/``) and ``STAGES``: stage -> (module, function), each
function taking (writer, work folder, log) and returning that stage's checks. Adding a
profile is one module and one line in ``PROFILES``.

A profile that takes options (``emo-live export --checkpoint ...``) declares them: ``OPTIONS``,
the names every export must give, and ``OPTIONAL_OPTIONS``, name -> the value used when one is
not given (None: the stage decides, e.g. affectgpt's ``mode`` from the checkpoint). Every
stage function receives them all as keyword arguments; any other name is refused.
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


def options_of(profile: str) -> tuple[tuple[str, ...], dict]:
    """(the options ``profile`` requires, its optional ones with their defaults)."""
    module = profile_module(profile)
    return tuple(getattr(module, "OPTIONS", ())), dict(getattr(module, "OPTIONAL_OPTIONS", {}))


def option_problems(profile: str, options: dict) -> tuple[list[str], list[str]]:
    """(options given that ``profile`` does not take, required ones not given); None counts
    as not given."""
    required, optional = options_of(profile)
    given = {k for k, v in options.items() if v is not None}
    return sorted(given - set(required) - set(optional)), [o for o in required if o not in given]


def resolve_options(profile: str, options: dict | None) -> dict:
    """``options`` checked against what ``profile`` declares (a ValueError naming unknown or
    missing ones; None counts as not given), with the optional ones' defaults filled in."""
    required, optional = options_of(profile)
    options = dict(options or {})
    extra, absent = option_problems(profile, options)
    extra += sorted(k for k, v in options.items() if v is None and k not in (*required, *optional))
    if extra:
        raise ValueError(f"profile {profile!r} takes no option(s) {sorted(extra)}")
    if absent:
        raise ValueError(f"profile {profile!r} needs option(s) {absent}")
    for name, default in optional.items():
        if options.get(name) is None:
            options[name] = default
    return options


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
    (``OPTIONS``, ``OPTIONAL_OPTIONS``: e.g. affectgpt's checkpoint and model folders, and
    its mode); others take none."""
    module = profile_module(profile)
    options = resolve_options(profile, options)
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
