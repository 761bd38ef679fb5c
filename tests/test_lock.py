"""The install that was tested: `make` installs from constraints.txt, and this suite runs on
exactly those versions (unless `make upgrade-check` runs it on the newest ones on purpose)."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{LOCK.name}: {line!r} is not an exact pin"
            pins[_norm(name)] = version
    return pins


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("export", "audio", "test", "eval"):  # what the Makefile installs
        reqs += project["optional-dependencies"][extra]
    return [_norm(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in reqs]


def test_every_requirement_the_makefile_installs_is_pinned():
    pins = _pins()
    missing = [r for r in _requirements() if r not in pins]
    assert not missing, f"{LOCK.name} lacks pins for {missing}; run `make lock` after `make test`"
    assert "emo-live" not in pins  # the project itself is never pinned


@pytest.mark.skipif(
    os.environ.get("EMOLIVE_UPGRADE_CHECK") == "1", reason="upgrade-check runs newer versions"
)
def test_this_environment_is_the_locked_one():
    differ = {}
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            differ[name] = (version, None)
            continue
        if installed != version:
            differ[name] = (version, installed)
    assert not differ, f"installed versions differ from {LOCK.name} (locked, installed): {differ}"


def test_makefile_installs_with_the_lock_and_torch_first():
    recipe = (ROOT / "Makefile").read_text()
    torch = recipe.index("pip install -q -c $(LOCK) torch==")
    rest = recipe.index('pip install -q -c $(LOCK) -e ".[export,audio,test,eval]"')
    assert torch < rest and "LOCK := constraints.txt" in recipe
    assert "upgrade-check:" in recipe and "EMOLIVE_UPGRADE_CHECK=1" in recipe
