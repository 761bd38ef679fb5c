"""The package installs as one `emolive` namespace and the runtime stays torch-free."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = {"export": "export", "calibrate": "calibrate", "runtime": "runtime", "cli": "cli"}


def _subpackages() -> set[str]:
    found = {"emolive"}
    for ns, folder in CODE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join(["emolive", ns, *rel.parts]))
    return found


def test_every_subpackage_is_listed_in_pyproject():
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    assert _subpackages() <= listed, f"not in pyproject packages: {_subpackages() - listed}"


@pytest.mark.slow
def test_regular_install_imports_every_module(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    code = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        import emolive
        names = []
        for sub in ("export", "calibrate", "runtime", "cli"):
            pkg = importlib.import_module("emolive." + sub)
            assert pkg.__file__.startswith(sys.argv[1]), pkg.__file__
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                names.append(m.name)
        print(json.dumps(names))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = json.loads(proc.stdout)
    for sub in ("emolive.runtime.bundle", "emolive.runtime.vision.analyzer", "emolive.cli.main"):
        assert sub in names
    # Importing each found module from the installed copy: a file left out of the wheel fails.
    for name in names:
        if name.startswith(("emolive.runtime", "emolive.cli")):
            r = subprocess.run(
                [sys.executable, "-c", f"import {name}"],
                capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin"},
            )  # fmt: skip
            assert r.returncode == 0, f"{name}: {r.stderr[-500:]}"


def test_runtime_never_imports_torch(vision_bundle, astronaut):
    code = textwrap.dedent(
        f"""
        import sys, cv2, pkgutil, importlib
        import emolive.runtime
        for m in pkgutil.walk_packages(emolive.runtime.__path__, "emolive.runtime."):
            importlib.import_module(m.name)
        from emolive.runtime.bundle import Bundle
        from emolive.runtime.media import Frame
        from emolive.runtime.vision.analyzer import FaceAnalyzer
        analyzer = FaceAnalyzer(Bundle.open({str(vision_bundle)!r}))
        events = analyzer.analyze(Frame(0.0, 0, cv2.imread({str(astronaut)!r})))
        assert events, "no face found in the astronaut"
        heavy = [m for m in ("torch", "transformers", "optimum") if m in sys.modules]
        assert not heavy, heavy
        print("ok", len(events))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
