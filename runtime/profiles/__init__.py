"""Profiles: one module per bundle profile, keyed by the manifest's ``profile``.

A profile builds, from a bundle and the session's config, the stages of a session: the vision
stage (frames in, ``expression`` events out), the audio stage (audio chunks in, utterances
out), and the reasoning stage (windows of evidence in, ``reading`` events out), plus the notes
and backend record every reading carries. The session only schedules and joins them: adding a
profile is one module here and one line in ``PROFILES`` (or ``register`` at run time, e.g. a
plug-in or a test), never an edit of the session.

A profile module has one function::

    def build(bundle: Bundle, config: SessionConfig, ctx: BuildContext) -> Pipeline
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.names import LLM_DECODER

# profile name -> the module that builds it
PROFILES: dict[str, str] = {
    "lite": "emolive.runtime.profiles.lite",
    "affectgpt": "emolive.runtime.profiles.affectgpt",
    "emotion_llama": "emolive.runtime.profiles.emotion_llama",
}
_BUILDERS: dict[str, Callable[..., Pipeline]] = {}


@dataclass
class BuildContext:
    """What the session hands a profile besides the bundle and config: its clock, which
    modalities its sources deliver, the failure callback for every stage, and an optional
    reasoner that replaces the bundle's (Python API, tests)."""

    clock: Any
    video: bool
    audio: bool
    on_failure: Callable[[Any], None]
    reasoner: Any = None


@dataclass
class Pipeline:
    """A profile's stages for one session. ``vision`` / ``audio``: None when that modality
    is off. ``notes``: how the graphs were loaded (e.g. an int8 form refused by the parity
    gate), carried by every reading. ``backend``: the readings' ``backend`` record: what ran
    each graph, where, at which precision."""

    vision: Any | None
    audio: Any | None
    reasoning: Any
    notes: list[str] = field(default_factory=list)
    backend: dict = field(default_factory=dict)


def register(name: str, build: Callable[..., Pipeline]) -> None:
    """Register ``build`` for bundles whose manifest says ``"profile": name``."""
    _BUILDERS[name] = build


def builder(bundle: Bundle) -> Callable[..., Pipeline]:
    """The build function of ``bundle``'s profile; a ``BundleError`` naming the manifest and
    the known profiles if there is none."""
    name = bundle.profile
    if name in _BUILDERS:
        return _BUILDERS[name]
    if name not in PROFILES:
        known = ", ".join(sorted({*PROFILES, *_BUILDERS}))
        raise BundleError(
            bundle.root / "manifest.json",
            f"field 'profile': no runtime profile {name!r} (this emo-live knows {known})",
        )
    return importlib.import_module(PROFILES[name]).build


def forced_precision(root: Path | str, precision: str) -> dict[str, str]:
    """What ``--precision`` forces for the bundle at ``root``: graph -> ``precision`` for the
    graphs its profile lets a user force (the profile module's ``PRECISION_GRAPHS``, e.g.
    lite's vision graphs), else for every graph but the LLM decoder (whose forms the bundle
    chooses per CPU) that has that variant. Read from the manifest alone, before anything
    loads; an unreadable manifest is the session's to report, so lite's rule applies."""
    try:
        manifest = json.loads((Path(root) / "manifest.json").read_text())
        profile, graphs = manifest["profile"], dict(manifest["graphs"])
    except (OSError, ValueError, KeyError, TypeError):
        profile, graphs = "lite", {}
    module = importlib.import_module(PROFILES.get(profile, PROFILES["lite"]))
    chosen = getattr(module, "PRECISION_GRAPHS", None)
    if chosen is None:
        chosen = [g for g, e in graphs.items()
                  if g != LLM_DECODER and precision in (e.get("variants") or {})]  # fmt: skip
    return {g: precision for g in chosen}


def build(bundle: Bundle, config, ctx: BuildContext) -> Pipeline:
    """The stages of ``bundle``'s profile for a session with ``config``."""
    return builder(bundle)(bundle, config, ctx)
