"""Reading and validating a bundle: ``manifest.json`` plus the graph files it names.

A bundle is refused, with the file and the reason, when its manifest is missing or of an
unknown format version, a file is missing or its sha256 differs, a graph's opset is outside
what this runtime supports, or a graph's inputs/outputs differ from what the manifest says.
The manifest format is written by ``emolive.export.bundle``; both sides share the constants
here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from emolive.runtime.names import LLM_PRECISIONS

MANIFEST = "manifest.json"
FORMAT = "emo-live-bundle"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
# Default-domain opsets this runtime accepts; ONNX Runtime 1.18+ implements up to 21.
MIN_OPSET, MAX_OPSET = 13, 21
# Every graph's precision names: the vision graphs' plus the LLM decoder's own forms.
PRECISIONS = tuple(dict.fromkeys(("fp32", "fp16", "int8", "int4", *LLM_PRECISIONS)))
DEVICES = ("cpu", "cuda", "tensorrt")

_ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
    9: "bool", 10: "float16", 11: "float64", 16: "bfloat16",
}  # fmt: skip


class BundleError(ValueError):
    """The bundle at ``path`` is not usable; the message says which file and why."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def graph_digest(path: Path) -> str:
    """The sha256 of an ONNX graph *and* the external-data files it names: a graph saved with
    its weights beside it keeps the same ``.onnx`` bytes when only its weights change, so the
    ``.onnx`` file's sha alone cannot key a compiled engine or a device check."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    locations = sorted({
        e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"
    })  # fmt: skip
    parts = [sha256_of(path), *(f"{loc}:{sha256_of(path.parent / loc)}" for loc in locations)]
    return parts[0] if len(parts) == 1 else hashlib.sha256("|".join(parts).encode()).hexdigest()


def onnx_signature(path: Path) -> dict:
    """Opset, inputs and outputs of an ONNX file, as the manifest records them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)

    def describe(values) -> list[dict]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
            dtype = _ONNX_DTYPES.get(t.elem_type, str(t.elem_type))
            out.append({"name": v.name, "dtype": dtype, "shape": dims})
        return out

    return {
        "opset": opset,
        "inputs": describe(model.graph.input),
        "outputs": describe(model.graph.output),
    }


@dataclass(frozen=True)
class GraphVariant:
    graph: str
    precision: str
    path: Path
    sha256: str
    info: dict

    @property
    def digest(self) -> str:
        """The ``.onnx`` file's sha with those of its external data (from the manifest)."""
        extra = [e.get("sha256", "") for e in self.info.get("external_data") or []]
        return "+".join([self.sha256, *extra])


@dataclass(frozen=True)
class GraphEntry:
    name: str
    opset: int
    inputs: list[dict]
    outputs: list[dict]
    variants: dict[str, GraphVariant]
    prefer: dict[str, str]
    attrs: dict

    def variant(self, precision: str | None = None, device: str = "cpu") -> GraphVariant:
        """The variant asked for, or the one the bundle measured best for ``device``: its
        ``prefer`` entry, else on a GPU an fp16 variant meant for it (GPUs run fp16 natively;
        int8 Q/DQ suits TensorRT, not the CUDA provider), else fp32."""
        if precision is None:
            precision = self.prefer.get(device)
            if precision is None and device != "cpu" and self._runs_on("fp16", device):
                precision = "fp16"
            precision = precision or ("fp32" if "fp32" in self.variants else None)
            usable = [p for p in self.variants if self._runs_on(p, device)]
            precision = precision or next(iter(usable or self.variants))
        if precision not in self.variants:
            raise KeyError(
                f"graph {self.name!r} has no {precision} variant; it has {sorted(self.variants)}"
            )
        return self.variants[precision]

    def _runs_on(self, precision: str, device: str) -> bool:
        """Whether the bundle has ``precision`` and does not restrict it to other devices
        (a variant's optional ``devices``: the devices it is meant for)."""
        variant = self.variants.get(precision)
        if variant is None:
            return False
        devices = variant.info.get("devices")
        return not devices or device in devices


class Bundle:
    """A validated bundle folder."""

    def __init__(self, root: Path, manifest: dict, graphs: dict[str, GraphEntry]):
        self.root = root
        self.manifest = manifest
        self.graphs = graphs

    @property
    def profile(self) -> str:
        return self.manifest["profile"]

    def graph(self, name: str) -> GraphEntry:
        if name not in self.graphs:
            raise BundleError(
                self.root / MANIFEST,
                f"bundle has no graph {name!r} (it has {sorted(self.graphs)})",
            )
        return self.graphs[name]

    def file(self, key: str) -> Path:
        files = self.manifest.get("files", {})
        if key not in files:
            raise BundleError(self.root / MANIFEST, f"bundle has no file {key!r}")
        return self.root / files[key]["file"]

    def probe(self, graph: str) -> Path | None:
        """The graph's parity probe (inputs + fp32 outputs), if the bundle carries one."""
        from emolive.runtime.parity import probe_key

        spec = self.manifest.get("files", {}).get(probe_key(graph))
        return self.root / spec["file"] if spec else None

    @classmethod
    def open(cls, root: Path | str, verify: bool = True) -> Bundle:
        root = Path(root)
        mpath = root / MANIFEST
        if not root.is_dir():
            raise BundleError(root, "bundle folder does not exist")
        if not mpath.is_file():
            raise BundleError(mpath, "missing: a bundle needs manifest.json")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(mpath, f"not valid JSON: {e}") from e
        _check_header(mpath, manifest)
        graphs = {
            name: _graph_entry(root, name, spec, verify)
            for name, spec in _require(mpath, manifest, "graphs", dict).items()
        }
        files = manifest.get("files", {})
        if not isinstance(files, dict):
            raise BundleError(mpath, "field 'files' should be a dict")
        for key, spec in files.items():
            _check_file(root, spec, f"file {key!r}", verify)
        return cls(root, manifest, graphs)


def _require(where: Path, obj: dict, key: str, kind: type | tuple, what: str = ""):
    """``obj[key]``, or a BundleError naming the file and the field (and ``what`` holds it)."""
    field = f"{what} field {key!r}" if what else f"field {key!r}"
    if not isinstance(obj, dict):
        raise BundleError(where, f"{what or 'an entry'} should be an object")
    if key not in obj:
        raise BundleError(where, f"missing {field}")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = obj[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise BundleError(where, f"{field} should be a {names}, not {type(value).__name__}")
    return value


def _check_header(mpath: Path, manifest: dict) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(mpath, f"not an emo-live bundle manifest (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(
            mpath,
            f"unknown format version {version!r}; this emo-live reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}",
        )
    _require(mpath, manifest, "profile", str)


def _check_file(root: Path, spec: dict, what: str, verify: bool) -> Path:
    where = root / MANIFEST
    name = _require(where, spec, "file", str, what)
    digest = _require(where, spec, "sha256", str, what)
    path = root / name
    if not path.is_file():
        raise BundleError(path, f"missing ({what} in the manifest)")
    if verify:
        got = sha256_of(path)
        if got != digest:
            raise BundleError(path, f"sha256 mismatch: manifest says {digest}, file has {got}")
    extras = spec.get("external_data", [])
    if not isinstance(extras, list):
        raise BundleError(where, f"{what} field 'external_data' should be a list")
    for extra in extras:
        _check_file(root, extra, f"external data of {what}", verify)
    return path


# A device variant whose decoder keeps its KV cache in fp16 (``io`` in its manifest entry):
# its past/present tensors are float16 where the graph's manifest IO says float32.
KV_IO = "fp16-kv"


def _kv_fp16(name: str, declared: str, actual: str) -> bool:
    return (name.startswith(("past_key_values.", "present.")) and declared == "float32"
            and actual == "float16")  # fmt: skip


def _same_values(declared: list[dict], actual: list[dict], io: str = "fp32") -> str | None:
    """Why two input/output lists differ, or None. ``io``: the variant's IO record."""
    dn = [v["name"] for v in declared]
    an = [v["name"] for v in actual]
    if dn != an:
        return f"names {an} in the graph, {dn} in the manifest"
    for d, a in zip(declared, actual, strict=True):
        if io == KV_IO and _kv_fp16(d["name"], d["dtype"], a["dtype"]):
            continue
        if d["dtype"] != a["dtype"]:
            return f"{d['name']!r} is {a['dtype']} in the graph, {d['dtype']} in the manifest"
        if len(d["shape"]) != len(a["shape"]):
            return f"{d['name']!r} has rank {len(a['shape'])} in the graph, {len(d['shape'])} in the manifest"
        for dd, ad in zip(d["shape"], a["shape"], strict=True):
            if isinstance(dd, int) and isinstance(ad, int) and dd != ad:
                return f"{d['name']!r} has shape {a['shape']} in the graph, {d['shape']} in the manifest"
    return None


def _io_list(where: Path, spec: dict, side: str, what: str) -> list[dict]:
    values = _require(where, spec, side, list, what)
    for v in values:
        _require(where, v, "name", str, f"{what} {side}")
        _require(where, v, "dtype", str, f"{what} {side}")
        _require(where, v, "shape", list, f"{what} {side}")
    return values


def _graph_entry(root: Path, name: str, spec: dict, verify: bool) -> GraphEntry:
    where = root / MANIFEST
    what = f"graph {name!r}"
    variants_spec = _require(where, spec, "variants", dict, what)
    if not variants_spec:
        raise BundleError(where, f"{what} has no variants")
    inputs = _io_list(where, spec, "inputs", what)
    outputs = _io_list(where, spec, "outputs", what)
    opset = _require(where, spec, "opset", int, what) if "opset" in spec else None
    prefer = spec.get("prefer", {})
    attrs = spec.get("attrs", {})
    for key, value in (("prefer", prefer), ("attrs", attrs)):
        if not isinstance(value, dict):
            raise BundleError(where, f"{what} field {key!r} should be a dict")
    # The manifest's opset is the one the writer read from this variant (export/bundle.py).
    reference = "fp32" if "fp32" in variants_spec else next(iter(variants_spec))
    variants = {}
    for precision, vspec in variants_spec.items():
        if precision not in PRECISIONS:
            raise BundleError(where, f"{what} has unknown precision {precision!r}")
        vwhat = f"{what} {precision}"
        path = _check_file(root, vspec, vwhat, verify)
        if verify:
            try:
                sig = onnx_signature(path)
            except Exception as e:  # onnx raises DecodeError and friends on corrupt files
                raise BundleError(path, f"not a readable ONNX graph ({vwhat}): {e}") from e
            if sig["opset"] is None or not MIN_OPSET <= sig["opset"] <= MAX_OPSET:
                raise BundleError(
                    path,
                    f"unsupported opset {sig['opset']}; this runtime runs opsets "
                    f"{MIN_OPSET}..{MAX_OPSET}",
                )
            if opset is not None and precision == reference and sig["opset"] != opset:
                raise BundleError(
                    path, f"graph has opset {sig['opset']}, the manifest's {what} says {opset}"
                )
            for side, declared in (("inputs", inputs), ("outputs", outputs)):
                why = _same_values(declared, sig[side], vspec.get("io", "fp32"))
                if why:
                    raise BundleError(path, f"graph {side} do not match the manifest: {why}")
        variants[precision] = GraphVariant(name, precision, path, vspec["sha256"], vspec)
    for device, precision in prefer.items():
        if precision not in variants:
            raise BundleError(
                where,
                f"{what} field 'prefer' names {precision!r} for {device!r}, but the graph has "
                f"only {sorted(variants)}",
            )
    return GraphEntry(
        name=name,
        opset=int(opset or 0),
        inputs=inputs,
        outputs=outputs,
        variants=variants,
        prefer=dict(prefer),
        attrs=dict(attrs),
    )
