"""Writing a bundle: graph files, their fp32/int8 variants, side files and the manifest.

The reader and validator live in ``emolive.runtime.bundle``; this writer records exactly
what that reader checks (sha256 of every file, each graph's opset, inputs and outputs read
back from the written ONNX), so a bundle it writes always opens.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path

import emolive
from emolive.runtime.bundle import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PRECISIONS,
    Bundle,
    onnx_signature,
    sha256_of,
)


def external_files(graph: Path) -> list[Path]:
    """The external-data files an ONNX graph names (beside it), in name order."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    names = {e.value for t in model.graph.initializer for e in t.external_data
             if e.key == "location"}  # fmt: skip
    return [graph.parent / n for n in sorted(names)]


class BundleWriter:
    """Collects graphs and files into ``root`` and writes ``manifest.json`` last."""

    def __init__(self, root: Path | str, profile: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest: dict = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "profile": profile,
            "emolive_version": emolive.__version__,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "graphs": {},
            "files": {},
            "sources": [],
            "calibration": {},
        }

    def _place(self, src: Path, name: str) -> dict:
        dest = self.root / name
        if Path(src).resolve() != dest.resolve():
            shutil.copyfile(src, dest)
        return {"file": name, "sha256": sha256_of(dest), "bytes": dest.stat().st_size}

    def add_graph(
        self,
        name: str,
        variants: dict[str, Path],
        prefer: dict[str, str] | None = None,
        attrs: dict | None = None,
        checks: dict | None = None,
    ) -> None:
        """Add one graph in one or more precisions; I/O are read from the fp32 (or first) file.
        Weights a graph keeps beside it (external data) travel with it."""
        first = "fp32" if "fp32" in variants else next(iter(variants))
        sig = onnx_signature(Path(variants[first]))
        entry = {
            "opset": sig["opset"],
            "inputs": sig["inputs"],
            "outputs": sig["outputs"],
            "variants": {},
            "prefer": dict(prefer or {}),
            "attrs": dict(attrs or {}),
            "checks": dict(checks or {}),
        }
        self.manifest["graphs"][name] = entry
        for precision, path in variants.items():
            self.add_variant(name, precision, Path(path))

    @classmethod
    def reopen(cls, root: Path | str) -> BundleWriter:
        """A writer over an existing bundle, to add variants (calibration) and rewrite it."""
        bundle = Bundle.open(root)
        writer = cls.__new__(cls)
        writer.root = bundle.root
        writer.manifest = bundle.manifest
        return writer

    def add_variant(self, name: str, precision: str, path: Path, info: dict | None = None) -> None:
        """Add or replace one precision of a graph already in the bundle."""
        if precision not in PRECISIONS:
            raise ValueError(f"graph {name!r}: unknown precision {precision!r}")
        entry = self.manifest["graphs"][name]
        vsig = onnx_signature(Path(path))
        want = [i["name"] for i in entry["inputs"]]
        if [i["name"] for i in vsig["inputs"]] != want:
            raise ValueError(
                f"graph {name!r}: {precision} variant {path} has inputs "
                f"{[i['name'] for i in vsig['inputs']]}, the bundle's graph has {want}"
            )
        spec = self._place(Path(path), f"{name}.{precision}.onnx")
        extra = [self._place(x, x.name) for x in external_files(Path(path))]
        if extra:  # weights beside the graph travel with it, under the names it gives them
            spec["external_data"] = extra
        spec["precision"] = precision
        spec.update(info or {})
        entry["variants"][precision] = spec

    def update_variant(self, name: str, precision: str, info: dict) -> None:
        """Add fields to one variant's manifest entry (what measured it, its parity record)."""
        self.manifest["graphs"][name]["variants"][precision].update(info)

    def set_graph_field(self, name: str, key: str, value) -> None:
        self.manifest["graphs"][name][key] = value

    def add_file(self, key: str, src: Path, name: str | None = None, role: str = "") -> None:
        spec = self._place(Path(src), name or Path(src).name)
        spec["role"] = role
        self.manifest["files"][key] = spec

    def add_json(self, key: str, name: str, data, role: str = "") -> None:
        path = self.root / name
        path.write_text(json.dumps(data, indent=2))
        self.add_file(key, path, name, role)

    def add_sources(self, records: list[dict]) -> None:
        self.manifest["sources"].extend(records)

    def set_calibration(self, summary: dict) -> None:
        self.manifest["calibration"] = summary

    def write(self) -> Bundle:
        (self.root / MANIFEST).write_text(json.dumps(self.manifest, indent=2))
        # Read it back through the runtime's validator: a bundle we write must open.
        return Bundle.open(self.root)
