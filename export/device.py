"""Device variants: a bundle's graphs in fp16, each checked on the device it is built for.

``emo-live build --device cuda|tensorrt|cpu`` runs this on the target machine. For every
graph in the manifest (both profiles) the fp32 variant is converted to fp16 with ONNX
Runtime's own converter (``onnxruntime.transformers.float16``): weights and activations in
fp16, graph inputs and outputs kept fp32 (the bundle's manifest declares them fp32 and the
runtime feeds fp32), contrib ops such as GroupQueryAttention and MatMulNBits take fp16 like
the ops around them. The variant is then run on the device through the runtime's own backend
and compared with the graph's parity probe (the same ``deviation`` the gate at load uses);
only a variant within ``BUILD_BOUND`` is written, recorded under its ``devices.<device>``
with the tolerance the load gate then applies, and made the graph's preferred precision for
that device. A graph without a probe gets one here (inputs from its manifest, fp32 outputs on
the CPU), written into the bundle so the gate at load can use it too.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolive.export.bundle import BundleWriter
from emolive.runtime import backends
from emolive.runtime.backends import RuntimeConfig, check_device
from emolive.runtime.bundle import KV_IO, Bundle, GraphEntry, graph_digest, sha256_of
from emolive.runtime.cpu import this_cpu
from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS, VAD, VAD_RATE
from emolive.runtime.parity import Probe, deviation, probe_key, tolerance_for

BUILD_PRECISIONS = ("fp16",)  # made by converting the fp32 variant
# Forms export or calibrate made (e.g. the LLM's 4-bit): checked on the device, not rebuilt.
CHECK_PRECISIONS = ("int8", "int4", "int4f", "w8a8")
# The most an fp16 variant may stray from fp32 on its probe, relative to each output's
# largest value: fp16 rounding (11-bit mantissa) stays near 1e-3 on these graphs; an
# overflow or a wrong kernel is tens of percent.
BUILD_BOUND = 0.02
# Protobuf's 2 GB limit: bigger graphs keep their weights in a side file.
INLINE_LIMIT = 1_800_000_000
PROBE_TOKENS = 16
PROBE_BATCH = 2  # named (dynamic) dims of a made probe: batch 2 exercises batching


class BuildError(ValueError):
    """A device variant cannot be built; the message names the graph, file or device."""


@dataclass
class GraphOutcome:
    graph: str
    written: bool
    deviation: float | None = None
    fp32_deviation: float | None = None
    reason: str | None = None
    providers: list[str] = field(default_factory=list)
    kept: bool = False  # left in fp32 by design (``KEEP_FP32``), not refused

    def record(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "graph"}


def is_kv(name: str) -> bool:
    """A decoder's KV-cache input or output (``past_key_values.*`` / ``present.*``)."""
    return name.startswith(("past_key_values.", "present."))


def to_fp16(src: Path, dst: Path) -> Path:
    """``src`` (fp32 ONNX, external data beside it) as fp16 at ``dst``. IO stays fp32, except
    a decoder's KV cache, which goes fp16 too (``KV_IO``): the session allocates its buffers
    in the graph's dtype, so no step casts the whole cache at the graph's edge (FACTS.md:
    395 tok/s on an H200 with fp16 IO)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    names = [v.name for v in (*model.graph.input, *model.graph.output)]
    keep = [n for n in names if not is_kv(n)]
    # Shape inference needs the whole model in one proto (fails past 2 GB); ORT's own
    # optimizer re-infers shapes at load, so the converter's value_info is not needed.
    half = convert_float_to_float16(
        model, keep_io_types=keep if len(keep) < len(names) else True, disable_shape_infer=True
    )
    _omit_empty_resize_inputs(half)
    if half.ByteSize() > INLINE_LIMIT:
        onnx.save(half, str(dst), save_as_external_data=True, location=f"{dst.name}.data")
    else:
        onnx.save(half, str(dst))
    return dst


def _omit_empty_resize_inputs(model) -> None:
    """The converter casts an empty ``roi``/``scales`` initializer of a Resize (as TFLite
    converters write them) through a Cast node, which hides that it is empty: ONNX Runtime then
    sees both scales and sizes and refuses the graph. Such an input becomes omitted ("")."""
    empty = {i.name for i in model.graph.initializer if len(i.dims) == 1 and i.dims[0] == 0}
    cast_of = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        for k in (1, 2):  # roi, scales
            if k < len(node.input) and cast_of.get(node.input[k]) in empty:
                node.input[k] = ""


def probe_of(bundle: Bundle, name: str) -> tuple[Probe, bool]:
    """The graph's probe, and whether it was made here (the bundle had none)."""
    path = bundle.probe(name)
    return (Probe.load(path), False) if path else (made_probe(bundle, name), True)


def _keep_probe(bundle: Bundle, writer, name: str, probe: Probe) -> None:
    """A probe made here travels with the bundle (the load gate re-runs it)."""
    made = probe.save(bundle.root / f"{name}.probe.npz")
    writer.add_file(probe_key(name), made, made.name, role="parity probe")


def made_probe(bundle: Bundle, name: str, seed: int = 0) -> Probe:
    """A probe for a graph the bundle has none for: inputs from the manifest (floats uniform
    in [-1, 1], named dims PROBE_BATCH; the LLM: token ids; the VAD: its rate and state),
    outputs from the fp32 variant on the CPU."""
    entry = bundle.graph(name)
    rng = np.random.default_rng(seed)
    if name == LLM_DECODER:
        vocab = int(entry.attrs.get("vocab", 0))
        if vocab <= 0:
            raise BuildError(f"{bundle.root}/manifest.json: graph {name!r} lacks attrs.vocab")
        feeds = {"token_ids": rng.integers(0, vocab, PROBE_TOKENS).astype(np.int64)}
        runner = _decoder_probe(bundle, _load(RuntimeConfig(), entry, "fp32"))
        return Probe(feeds, runner(feeds))
    feeds = {}
    for spec in entry.inputs:
        feeds[spec["name"]] = _probe_input(bundle, entry, spec, rng)
    return Probe(feeds, _load(RuntimeConfig(), entry, "fp32").run(feeds))


def _probe_input(bundle: Bundle, entry: GraphEntry, spec: dict, rng) -> np.ndarray:
    if entry.name == VAD:  # Silero as shipped: [1, context + frame], state, sr
        a = entry.attrs
        if spec["name"] == VAD_RATE:
            return np.array(int(a.get("sample_rate", 16000)), np.int64)
        if spec["dtype"] == "float32" and len(spec["shape"]) == 3:
            return np.zeros(a.get("state", [2, 1, 128]), np.float32)
        n = int(a.get("context", 64)) + int(a.get("frame", 512))
        return (0.1 * rng.standard_normal((1, n))).astype(np.float32)
    if not spec["dtype"].startswith("float"):
        raise BuildError(
            f"{bundle.root}/manifest.json: graph {entry.name!r} input {spec['name']!r} is "
            f"{spec['dtype']} and the bundle has no probe ({probe_key(entry.name)}) giving it "
            "values; export one with the graph"
        )
    shape = [d if isinstance(d, int) and d > 0 else PROBE_BATCH for d in spec["shape"]]
    return rng.uniform(-1.0, 1.0, shape).astype(spec["dtype"])


def _load(runtime: RuntimeConfig, entry: GraphEntry, precision: str, path: Path | None = None):
    variant = entry.variant(precision)
    return backends.load(runtime, path or variant.path, precision, threads=None)


def _decoder_probe(bundle: Bundle, runner) -> Callable[[dict], dict]:
    """The LLM's probe run: its token ids through a decoder session on ``runner``."""
    from emolive.runtime.llm.decoder import DecoderLayout, DecoderSession

    entry = bundle.graph(LLM_DECODER)
    layout = DecoderLayout.from_attrs(entry.attrs, f"{bundle.root}/manifest.json {LLM_DECODER}")
    embeddings = np.load(bundle.file(LLM_EMBEDDINGS), mmap_mode="r")
    session = DecoderSession(runner, embeddings, layout, max_context=4 * PROBE_TOKENS)
    return session.probe


def probe_run(bundle: Bundle, name: str, runner) -> Callable[[dict], dict]:
    """How the gate runs graph ``name``'s probe on a loaded ``runner`` (as the stages do)."""
    return _decoder_probe(bundle, runner) if name == LLM_DECODER else runner.run


@dataclass
class BuildConfig:
    device: str = "cpu"
    precision: str = "fp16"
    graphs: tuple[str, ...] = ()  # empty: every graph of the manifest
    bound: float = BUILD_BOUND
    # Make a written variant the device's preferred precision. None: on a GPU yes; on the
    # CPU no (there fp16 is slower than fp32 and calibrate chose the fastest form: build
    # --device cpu checks, it does not change what a CPU session loads unless asked).
    prefer: bool | None = None

    @property
    def prefers(self) -> bool:
        return self.device != "cpu" if self.prefer is None else self.prefer

    convert: Callable[[Path, Path], Path] = to_fp16


def build_device_variants(
    root: Path | str, config: BuildConfig, log: Callable[[str], None] = print
) -> dict[str, GraphOutcome]:
    """Add ``config.precision`` variants of the bundle's graphs, checked on ``config.device``.

    Raises ``DeviceUnavailable`` (what to install) before anything is read, ``BuildError``
    for a bad precision or graph name. Variants that pass are written, with the manifest;
    one that strays past ``config.bound`` or does not run on the device is not, and its
    outcome says why."""
    if config.precision not in (*BUILD_PRECISIONS, *CHECK_PRECISIONS):
        raise BuildError(
            f"precision {config.precision!r}: build makes {', '.join(BUILD_PRECISIONS)} and "
            f"checks {', '.join(CHECK_PRECISIONS)} forms the bundle already has"
        )
    runtime = RuntimeConfig(device=config.device)
    route = check_device(runtime)
    bundle = Bundle.open(root)
    names = list(config.graphs or bundle.graphs)
    for name in names:
        bundle.graph(name)  # BundleError naming the graph and what the bundle has
    writer = BundleWriter.reopen(bundle.root)
    outcomes: dict[str, GraphOutcome] = {}
    with tempfile.TemporaryDirectory(prefix=".build-", dir=bundle.root) as tmp:
        for name in names:
            log(f"{name}: {config.precision} for {config.device} ({route})")
            try:
                outcomes[name] = _build_one(bundle, writer, name, config, runtime, Path(tmp))
            except (BuildError, ValueError, OSError) as e:  # e.g. a probe it cannot make:
                # that graph is refused by name; the ones already checked are still written
                outcomes[name] = GraphOutcome(name, False, reason=f"refused: {e}")
            o = outcomes[name]
            log(f"{name}: " + (f"written, deviation {o.deviation:.3g}" if o.written else o.reason))
        if any(o.written for o in outcomes.values()):
            writer.write()
    return outcomes


# Graphs build leaves in fp32 whatever the device, and why (measured on the AVX2 CPU).
KEEP_FP32 = {
    VAD: "kept in fp32: its recurrent state carries fp16 rounding from frame to frame (speech "
    "probability 0.06 off fp32 within 15 frames of a stream, though a one-step probe passes); "
    "it costs well under a millisecond per frame in fp32",
}


def _build_one(bundle, writer, name, config, runtime, tmp: Path) -> GraphOutcome:
    entry = bundle.graph(name)
    if config.precision in CHECK_PRECISIONS:
        return _check_existing(bundle, writer, name, config, runtime)
    if name in KEEP_FP32 and config.precision == "fp16":
        return GraphOutcome(name, False, reason=KEEP_FP32[name], kept=True)
    if "fp32" not in entry.variants:
        return GraphOutcome(name, False, reason="no fp32 variant to convert from")
    existing = entry.variants.get(config.precision)
    if existing is not None and "converted_from" not in existing.info:
        return GraphOutcome(
            name, False, reason=f"the bundle's {config.precision} variant came from export; "
            "build does not replace it",
        )  # fmt: skip
    probe, made = probe_of(bundle, name)
    dst = tmp / f"{name}.{config.precision}.onnx"
    try:
        config.convert(entry.variant("fp32").path, dst)
    except Exception as e:  # the converter raises whatever onnx raises
        return GraphOutcome(name, False, reason=f"conversion failed: {e}")
    out = _measure(bundle, name, dst, config, runtime, probe)
    if out.reason:
        return out
    _write(bundle, writer, name, config, runtime, dst, probe, made, existing, out)
    out.written = True
    return out


def _measure(bundle, name, path: Path, config, runtime, probe: Probe) -> GraphOutcome:
    """``path`` (precision ``config.precision``) and the graph's fp32 run on the device
    against the probe; the outcome carries the reason when it is refused."""
    entry = bundle.graph(name)
    try:
        fp32 = _load(runtime, entry, "fp32")
        fp32_dev = deviation(probe_run(bundle, name, fp32)(probe.inputs), probe.reference)
        del fp32
        runner = backends.load(runtime, path, config.precision)
        dev = deviation(probe_run(bundle, name, runner)(probe.inputs), probe.reference)
        providers = list(runner.info.get("providers", []))
        fallback = runner.info.get("fallback")
        del runner
    except Exception as e:  # ORT's own error types: a kernel missing on this device
        return GraphOutcome(name, False, reason=f"does not run on {runtime.route}: {e}")
    out = GraphOutcome(name, False, round(dev, 6), round(fp32_dev, 6), providers=providers)
    if fallback:
        out.reason = f"refused: {fallback}"
    elif not dev <= config.bound:  # nan/inf fail too
        out.reason = (
            f"refused: strays {dev:.3g} from fp32 on {config.device} (bound {config.bound})"
        )
    return out


def _check_existing(bundle, writer, name, config, runtime) -> GraphOutcome:
    """A reduced form export or calibrate already made (e.g. the LLM's int4): checked on the
    device as a converted variant is, and recorded under its ``devices.<device>`` (the file
    is not touched), so the runtime's gate may pick it there."""
    entry = bundle.graph(name)
    existing = entry.variants.get(config.precision)
    if existing is None:
        # Skipped quietly when building every graph; a graph named with --graph is refused.
        return GraphOutcome(name, False, reason=f"has no {config.precision} variant to check "
                            "(export or calibrate makes it)", kept=not config.graphs)  # fmt: skip
    if "fp32" not in entry.variants:
        return GraphOutcome(name, False, reason="no fp32 variant to check against")
    probe, made = probe_of(bundle, name)
    out = _measure(bundle, name, existing.path, config, runtime, probe)
    if out.reason:
        return out
    if made:
        _keep_probe(bundle, writer, name, probe)
    devices = dict(existing.info.get("devices") or {})
    devices[config.device] = record = _device_record(out, runtime)
    info = {"devices": devices}
    if config.device == "cpu":  # what the CPU gate reads: this CPU measured it now
        info.update(measured_on=this_cpu().record(), probe_deviation=record["probe_deviation"],
                    probe_tolerance=record["probe_tolerance"])  # fmt: skip
    writer.update_variant(name, config.precision, info)
    if config.prefers:
        _prefer(writer, name, config)
    out.written = True
    return out


def _io_of(path: Path) -> str:
    """The variant's IO record: "fp16-kv" when its KV cache is fp16 (the bundle reader then
    accepts float16 where the manifest says float32 for those tensors), else "fp32"."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    half = onnx.TensorProto.FLOAT16
    kv16 = any(is_kv(v.name) and v.type.tensor_type.elem_type == half for v in graph.input)
    return KV_IO if kv16 else "fp32"


def _write(bundle, writer, name, config, runtime, dst, probe, made, existing, out) -> None:
    if made:
        _keep_probe(bundle, writer, name, probe)
    final = bundle.root / dst.name
    data = dst.with_name(f"{dst.name}.data")
    shutil.move(str(dst), final)
    extra = []
    if data.is_file():
        shutil.move(str(data), bundle.root / data.name)
        d = bundle.root / data.name
        extra = [{"file": d.name, "sha256": sha256_of(d), "bytes": d.stat().st_size}]
    record = _device_record(out, runtime)
    devices = {}
    if existing is not None and graph_digest(existing.path) == graph_digest(final):
        devices = dict(existing.info.get("devices") or {})  # same file: keep other devices
    devices[config.device] = record
    info = {"converted_from": "fp32", "io": _io_of(final), "devices": devices}
    if config.device == "cpu":  # the CPU gate reads these at the top (parity.check_variant)
        info.update(
            measured_on=this_cpu().record(),
            probe_deviation=record["probe_deviation"],
            probe_tolerance=record["probe_tolerance"],
        )
    writer.add_variant(name, config.precision, final, info)
    if extra:
        writer.update_variant(name, config.precision, {"external_data": extra})
    if config.prefers:
        _prefer(writer, name, config)


def _device_record(out: GraphOutcome, runtime) -> dict:
    """What a variant's ``devices.<device>`` says: how far it strayed there, what it may
    stray at load (the gate's tolerance), what ran it, when."""
    return {
        "probe_deviation": out.deviation,
        "probe_tolerance": round(tolerance_for(out.deviation), 6),
        "fp32_deviation": out.fp32_deviation,
        "route": runtime.route,
        "providers": out.providers,
        "checked_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _prefer(writer, name: str, config) -> None:
    prefer = dict(writer.manifest["graphs"][name].get("prefer") or {})
    prefer[config.device] = config.precision
    writer.set_graph_field(name, "prefer", prefer)
