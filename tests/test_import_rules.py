"""The house's import rules (the "never" arrows of the architecture drawing, summed up in the
README's design section), read from the source of every module, lazy imports inside functions included:
``sys.modules`` after an import cannot see a function-level import that has not run yet."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"export": "emolive.export", "calibrate": "emolive.calibrate",
            "runtime": "emolive.runtime", "cli": "emolive.cli"}  # fmt: skip
STAGES = ("emolive.runtime.vision", "emolive.runtime.audio", "emolive.runtime.reasoning",
          "emolive.runtime.llm", "emolive.runtime.words", "emolive.runtime.affectgpt")  # fmt: skip
SINKS = ("emolive.runtime.sinks", "emolive.runtime.server")
SESSION = ("emolive.runtime.session", "emolive.runtime.stage", "emolive.runtime.windows")
BACKENDS = "emolive.runtime.backends"
SOURCES = "emolive.runtime.sources"
TORCH = ("torch", "transformers", "optimum")

# (who, what it must never import, why)
RULES = [
    ("emolive.runtime", ("emolive.export", "emolive.calibrate", "emolive.cli"),
     "the runtime is torch-free and knows no command line"),
    ("emolive.runtime", TORCH, "the runtime is torch-free"),
    ("emolive.export", ("emolive.cli",), "export is a library"),
    ("emolive.calibrate", ("emolive.cli",), "calibrate is a library"),
    (BACKENDS, (*STAGES, *SESSION, "emolive.runtime.profiles"),
     "a backend runs graphs, knows no stage"),
    *[(stage, SINKS, "stages produce, sinks consume; the session joins them") for stage in STAGES],
    (SOURCES, (*STAGES, BACKENDS, "onnxruntime", "emolive.runtime.profiles", *SESSION),
     "capture knows nothing of inference"),
    *[(part, STAGES, "the session schedules; profiles build the stages") for part in SESSION],
    # The session may name a RuntimeConfig (the backends package's contract); it loads no graph.
    *[(part, (f"{BACKENDS}.ort", f"{BACKENDS}.trt", "onnxruntime"),
       "the session runs no graph itself") for part in SESSION],
]  # fmt: skip


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[parts[0]], *parts[1:]])


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as an absolute name."""
    return imported(path.read_text(), _module_name(path), path.name == "__init__.py")


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    package = module if is_package else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("who, never, why", RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_never_imports(who, never, why):
    broken = []
    for path in _modules():
        if not _under(_module_name(path), who):
            continue
        bad = sorted(m for m in imports_of(path) if any(_under(m, n) for n in never))
        if bad:
            broken.append(f"{path.relative_to(ROOT)}: {', '.join(bad)}")
    assert not broken, f"{why}:\n" + "\n".join(broken)


def test_the_reader_sees_lazy_and_relative_imports():
    source = (
        "import numpy as np\n"
        "from ..bundle import Bundle\n"
        "from . import clues\n"
        "def load():\n"
        "    from emolive.export.sources import fetch\n"
        "    import torch\n"
    )
    got = imported(source, "emolive.runtime.vision.stage")
    assert {"numpy", "emolive.runtime.bundle", "emolive.runtime.vision.clues"} <= got
    assert {"emolive.export.sources", "torch"} <= got  # inside a function: still seen
    assert _module_name(ROOT / "runtime" / "vision" / "__init__.py") == "emolive.runtime.vision"
