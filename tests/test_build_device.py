"""`emo-live build`: fp16 device variants made from a bundle's fp32 graphs, checked on the
device before they are written (here the CPU, the only device this machine has), picked by
the runtime for that device, and refused, at build and at load, when they disagree."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from emolive.cli.main import main
from emolive.export.device import BuildConfig, build_device_variants, to_fp16
from emolive.runtime import backends
from emolive.runtime.bundle import FORMAT, FORMAT_VERSION, MANIFEST, Bundle, sha256_of
from emolive.runtime.cpu import CpuInfo
from emolive.runtime.parity import load_checked
from tests.helpers import tiny_onnx

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
OTHER_CPU = CpuInfo("another", "aarch64", "arm64", ())


def scaled_onnx(path, scale: float):
    """y = (x @ W + b) * scale: with scale 1e5 the constant does not fit fp16 (max 65504)."""
    tiny_onnx(path)
    model = onnx.load(str(path))
    model.graph.node[-1].output[0] = "pre"
    model.graph.initializer.append(numpy_helper.from_array(np.float32(scale), "s"))
    model.graph.node.append(helper.make_node("Mul", ["pre", "s"], ["y"]))
    onnx.save(model, str(path))
    return path


def tiny_bundle(root, graphs: dict[str, float]):
    """A lite bundle of fp32 graphs ``name -> scale`` (no probes: build makes them)."""
    root.mkdir()
    entries = {}
    for name, scale in graphs.items():
        path = scaled_onnx(root / f"{name}.fp32.onnx", scale)
        entries[name] = {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 3]}],
            "opset": 17,
            "variants": {"fp32": {"file": path.name, "sha256": sha256_of(path)}},
            "prefer": {"cpu": "fp32", "cuda": "fp32"},
        }
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "profile": "lite",
                "graphs": entries, "files": {}}  # fmt: skip
    (root / MANIFEST).write_text(json.dumps(manifest))
    return root


def _build(root, *args):
    return CliRunner().invoke(main, ["build", "--bundle", str(root), *args])


def _cpu_loader(variant, device):
    return backends.load("ort", variant.path, variant.precision, threads=1)


def test_build_on_cpu_writes_a_checked_fp16_variant_the_runtime_picks(tmp_path):
    root = tiny_bundle(tmp_path / "b", {"g": 1.0})
    kept = _build(root, "--device", "cpu", "--graph", "g")  # checks; the CPU's choice stays
    assert kept.exit_code == 0, kept.output
    assert Bundle.open(root).graph("g").variant(None, "cpu").precision == "fp32"
    result = _build(root, "--device", "cpu", "--prefer", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["graphs"]["g"]["written"] and report["graphs"]["g"]["deviation"] < 1e-3

    bundle = Bundle.open(root)
    entry = bundle.graph("g")
    assert entry.variant(None, "cpu").precision == "fp16"  # build made it the CPU's choice
    assert entry.variant(None, "cuda").precision == "fp32"  # never checked on cuda
    fp16 = entry.variant("fp16")
    record = fp16.info["devices"]["cpu"]
    assert record["route"] == "onnxruntime-cpu" and record["probe_tolerance"] > 0
    assert bundle.probe("g").is_file()  # the made probe travels with the bundle
    model = onnx.load(str(fp16.path))
    assert {i.data_type for i in model.graph.initializer} == {TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # IO fp32

    runner, chosen, note = load_checked(bundle, "g", fp16, _cpu_loader, lambda g: g.run, OTHER_CPU)
    assert chosen.precision == "fp16" and note is None  # the gate re-ran the probe: passed
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    want = backends.load("ort", entry.variant("fp32").path, "fp32").run({"x": x})["y"]
    assert np.abs(runner.run({"x": x})["y"] - want).max() < 1e-2


def test_a_variant_that_disagrees_is_refused_at_build(tmp_path):
    # 1e5 does not fit fp16: the converted graph is really wrong, and the check sees it.
    root = tiny_bundle(tmp_path / "b", {"good": 1.0, "overflow": 1e5})
    result = _build(root, "--device", "cpu")
    assert result.exit_code == 1
    assert "overflow: refused: strays" in result.output
    assert "1 of 2 graphs got no fp16 variant for cpu: overflow" in result.output
    bundle = Bundle.open(root)
    assert sorted(bundle.graph("overflow").variants) == ["fp32"]
    assert bundle.graph("overflow").prefer == {"cpu": "fp32", "cuda": "fp32"}
    assert sorted(bundle.graph("good").variants) == ["fp16", "fp32"]
    assert not list(root.glob(".build-*"))  # nothing left of the refused file


def test_a_variant_that_disagrees_is_refused_at_load(tmp_path):
    root = tiny_bundle(tmp_path / "b", {"g": 1.0})
    build_device_variants(root, BuildConfig(device="cpu", prefer=True), log=lambda m: None)
    manifest = json.loads((root / MANIFEST).read_text())
    spec = manifest["graphs"]["g"]["variants"]["fp16"]
    model = onnx.load(str(root / spec["file"]))  # swapped for wrong weights after the build
    w = next(i for i in model.graph.initializer if i.name == "W")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * np.float16(1.3), "W"))
    onnx.save(model, str(root / spec["file"]))
    spec["sha256"] = sha256_of(root / spec["file"])
    (root / MANIFEST).write_text(json.dumps(manifest))
    bundle = Bundle.open(root)
    variant = bundle.graph("g").variant(None, "cpu")
    _, chosen, note = load_checked(bundle, "g", variant, _cpu_loader, lambda g: g.run, OTHER_CPU)
    assert chosen.precision == "fp32" and "g fp16: strays" in note and "fell back to fp32" in note


@pytest.mark.skipif(HAS_CUDA, reason="this machine has the CUDA provider")
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_building_for_a_missing_device_says_what_to_install(tmp_path, device):
    root = tiny_bundle(tmp_path / "b", {"g": 1.0})
    before = (root / MANIFEST).read_text()
    result = _build(root, "--device", device)
    assert result.exit_code == 1
    assert f"cannot build for {device} on this machine" in result.output
    assert "emo-live[gpu] (onnxruntime-gpu)" in result.output
    assert (root / MANIFEST).read_text() == before


def test_unknown_graph_is_named(tmp_path):
    root = tiny_bundle(tmp_path / "b", {"g": 1.0})
    result = _build(root, "--device", "cpu", "--graph", "nope")
    assert result.exit_code == 1 and "no graph 'nope'" in result.output and "['g']" in result.output


def test_resize_with_empty_scales_survives_the_conversion(tmp_path):
    # TFLite-made graphs (BlazeFace full-range) pass an empty scales tensor next to sizes.
    nodes = [helper.make_node("Resize", ["x", "roi", "scales", "sizes"], ["y"], mode="nearest")]
    inits = [
        numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
        numpy_helper.from_array(np.zeros(0, np.float32), "scales"),
        numpy_helper.from_array(np.array([1, 1, 4, 4], np.int64), "sizes"),
    ]
    graph = helper.make_graph(
        nodes, "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "r.onnx"))
    half = to_fp16(tmp_path / "r.onnx", tmp_path / "r16.onnx")
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    y = backends.load("ort", half, "fp16").run({"x": x})["y"]
    assert y.shape == (1, 1, 4, 4) and y[0, 0, 3, 3] == 3.0


def test_the_llm_decoder_in_fp16_runs_on_the_cpu_and_is_picked(tmp_path):
    pytest.importorskip("torch")
    from emolive.runtime.llm import Llm
    from tests.test_llm_export import tiny_bundle as tiny_llm_bundle
    from tests.test_llm_export import tiny_tokenizer

    tok = tiny_tokenizer(tmp_path / "tokenizer.json")
    tiny_llm_bundle(tmp_path / "llm", tmp_path / "work", tok)
    out = build_device_variants(
        tmp_path / "llm",
        BuildConfig(device="cpu", graphs=("llm_decoder",), prefer=True),
        log=lambda m: None,
    )
    assert out["llm_decoder"].written, out["llm_decoder"].reason
    bundle = Bundle.open(tmp_path / "llm")
    ops = {
        n.op_type
        for n in onnx.load(str(bundle.graph("llm_decoder").variant("fp16").path)).graph.node
    }
    assert "GroupQueryAttention" in ops
    fp16 = bundle.graph("llm_decoder").variant("fp16")
    graph = onnx.load(str(fp16.path), load_external_data=False).graph
    kinds = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output)}
    # The KV cache goes fp16 (no cast of the whole cache per step); embeds and logits stay fp32.
    assert fp16.info["io"] == "fp16-kv"
    assert kinds["past_key_values.0.key"] == kinds["present.0.value"] == TensorProto.FLOAT16
    assert kinds["inputs_embeds"] == kinds["logits"] == TensorProto.FLOAT
    llm = Llm.from_bundle(bundle)
    assert llm.session.precision == "fp16"
    assert llm.session._kv[0].numpy().dtype == np.float16  # buffers in the graph's dtype
    ref = Llm.from_bundle(bundle, runtime=backends.RuntimeConfig(precision={"llm_decoder": "fp32"}))
    ids = list(range(5, 25))
    a, b = llm.session.forward(ids), ref.session.forward(ids)
    assert np.abs(a - b).max() < 0.02 * np.abs(b).max()
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.9
    # Only a variant that says so may carry an fp16 cache where the manifest says float32.
    from emolive.runtime.bundle import BundleError

    manifest = json.loads((tmp_path / "llm" / MANIFEST).read_text())
    manifest["graphs"]["llm_decoder"]["variants"]["fp16"]["io"] = "fp32"
    (tmp_path / "llm" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'past_key_values.0.key' is float16 in the graph"):
        Bundle.open(tmp_path / "llm")


def test_an_affectgpt_bundle_gets_fp16_encoders_and_decoder(tmp_path):
    pytest.importorskip("torch")
    from emolive.export.profiles import export_profile
    from emolive.runtime.affectgpt import spec
    from emolive.runtime.affectgpt.reasoner import AffectGptModel
    from tests.test_affectgpt_tiny import build_folders, write_checkpoint

    folders = build_folders(tmp_path)
    ckpt = write_checkpoint(tmp_path / "checkpoint_000003_loss_0.500.pth")
    export_profile(
        "affectgpt", tmp_path / "bundle", ["model"], log=lambda m: None,
        options={"checkpoint": ckpt, "vision": folders["vision"], "audio": folders["audio"],
                 "llm": folders["llm"]},
    )  # fmt: skip
    config = BuildConfig(device="cpu", prefer=True)
    out = build_device_variants(tmp_path / "bundle", config, log=lambda m: None)
    graphs = (spec.VISION, spec.AUDIO, spec.FUSION, "llm_decoder")
    assert all(out[g].written for g in graphs), {g: out[g].reason for g in graphs}
    bundle = Bundle.open(tmp_path / "bundle")
    half = AffectGptModel.from_bundle(bundle)
    full = AffectGptModel.from_bundle(
        bundle, backends.RuntimeConfig(precision=dict.fromkeys(graphs, "fp32"))
    )
    assert half.precision == "fp16" and full.precision == "fp32"
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (8, 3, 224, 224)).astype(np.float32)
    clips = (0.1 * rng.standard_normal((8, 32000))).astype(np.float32)
    a, b = half.encode(pixels, clips), full.encode(pixels, clips)
    for key in b:
        assert np.abs(a[key] - b[key]).max() <= 0.02 * np.abs(b[key]).max(), key


def test_an_exported_4bit_form_is_checked_on_the_device_and_recorded(tmp_path):
    pytest.importorskip("torch")
    from tests.test_llm_export import tiny_bundle as tiny_llm_bundle
    from tests.test_llm_export import tiny_tokenizer

    tok = tiny_tokenizer(tmp_path / "tokenizer.json")
    tiny_llm_bundle(tmp_path / "llm", tmp_path / "work", tok)
    before = Bundle.open(tmp_path / "llm").graph("llm_decoder").variant("int4")
    got = _build(tmp_path / "llm", "--device", "cpu", "--precision", "int4", "--prefer", "--json")
    assert got.exit_code == 0, got.output
    report = json.loads(got.output[got.output.index("{") :])
    assert report["graphs"]["llm_decoder"]["written"]
    entry = Bundle.open(tmp_path / "llm").graph("llm_decoder")
    int4 = entry.variant("int4")
    assert int4.sha256 == before.sha256  # checked, not rebuilt
    record = int4.info["devices"]["cpu"]
    assert 0 < record["probe_deviation"] <= 0.02 and record["route"] == "onnxruntime-cpu"
    assert entry.prefer["cpu"] == "int4"
    # A graph named without the form is refused; a bundle where none has it is an error.
    root = tiny_bundle(tmp_path / "plain", {"g": 1.0})
    named = _build(root, "--device", "cpu", "--precision", "int4", "--graph", "g")
    assert named.exit_code == 1 and "g: has no int4 variant" in named.output
    none = _build(root, "--device", "cpu", "--precision", "int4")
    assert none.exit_code == 1 and "no graph of" in none.output and "int4 variant" in none.output
    # A bound no 4-bit form meets: refused, nothing recorded.
    out = build_device_variants(tmp_path / "llm", BuildConfig(device="cpu", precision="int4f",
                                bound=1e-9), log=lambda m: None)  # fmt: skip
    assert not out["llm_decoder"].written and "strays" in out["llm_decoder"].reason
    assert "devices" not in Bundle.open(tmp_path / "llm").graph("llm_decoder").variant("int4f").info
