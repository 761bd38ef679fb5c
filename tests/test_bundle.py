import json

import pytest

from emolive.export.bundle import BundleWriter
from emolive.runtime.bundle import Bundle, BundleError
from tests.helpers import tiny_onnx


@pytest.fixture
def bundle_dir(tmp_path):
    graph = tiny_onnx(tmp_path / "g.onnx")
    w = BundleWriter(tmp_path / "b", profile="lite")
    w.add_graph("expression", {"fp32": graph}, prefer={"cpu": "fp32"}, attrs={"labels": ["a"]})
    w.add_json("labels", "labels.json", ["a", "b", "c"], role="label set")
    w.write()
    return tmp_path / "b"


def _manifest(root):
    return json.loads((root / "manifest.json").read_text())


def _rewrite(root, manifest):
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_written_bundle_opens_and_records_everything(bundle_dir):
    b = Bundle.open(bundle_dir)
    g = b.graph("expression")
    assert g.opset == 17
    assert [i["name"] for i in g.inputs] == ["x"]
    assert g.inputs[0]["shape"] == ["batch", 4]
    assert g.variant(device="cpu").precision == "fp32"
    assert b.file("labels").read_text().startswith("[")
    m = b.manifest
    assert m["format_version"] == 1 and m["profile"] == "lite" and m["emolive_version"]


def test_reopen_adds_a_variant(bundle_dir, tmp_path):
    w = BundleWriter.reopen(bundle_dir)
    w.add_variant("expression", "int8", tiny_onnx(tmp_path / "q.onnx"), info={"method": "test"})
    w.set_graph_field("expression", "prefer", {"cpu": "int8"})
    b = w.write()
    assert sorted(b.graph("expression").variants) == ["fp32", "int8"]
    assert b.graph("expression").variant().precision == "int8"


def test_missing_manifest(tmp_path):
    tmp_path.joinpath("b").mkdir()
    with pytest.raises(BundleError, match=r"manifest.json: missing"):
        Bundle.open(tmp_path / "b")


def test_missing_graph_file_is_named(bundle_dir):
    (bundle_dir / "expression.fp32.onnx").unlink()
    with pytest.raises(BundleError, match=r"expression.fp32.onnx: missing"):
        Bundle.open(bundle_dir)


def test_sha256_mismatch_is_named(bundle_dir):
    with open(bundle_dir / "labels.json", "a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match=r"labels.json: sha256 mismatch"):
        Bundle.open(bundle_dir)


def test_unknown_format_version(bundle_dir):
    m = _manifest(bundle_dir)
    m["format_version"] = 99
    _rewrite(bundle_dir, m)
    with pytest.raises(BundleError, match="unknown format version 99"):
        Bundle.open(bundle_dir)


def test_unsupported_opset(bundle_dir, tmp_path):
    new = tiny_onnx(tmp_path / "old.onnx", opset=9)
    target = bundle_dir / "expression.fp32.onnx"
    target.write_bytes(new.read_bytes())
    m = _manifest(bundle_dir)
    from emolive.runtime.bundle import sha256_of

    m["graphs"]["expression"]["variants"]["fp32"]["sha256"] = sha256_of(target)
    _rewrite(bundle_dir, m)
    with pytest.raises(BundleError, match=r"expression.fp32.onnx: unsupported opset 9"):
        Bundle.open(bundle_dir)


def test_inputs_that_differ_from_the_manifest(bundle_dir):
    m = _manifest(bundle_dir)
    m["graphs"]["expression"]["inputs"][0]["name"] = "face"
    _rewrite(bundle_dir, m)
    with pytest.raises(BundleError, match=r"graph inputs do not match the manifest: names \['x'\]"):
        Bundle.open(bundle_dir)
    m["graphs"]["expression"]["inputs"][0]["name"] = "x"
    m["graphs"]["expression"]["inputs"][0]["shape"] = ["batch", 5]
    _rewrite(bundle_dir, m)
    with pytest.raises(BundleError, match=r"'x' has shape"):
        Bundle.open(bundle_dir)


def test_not_json(bundle_dir):
    (bundle_dir / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.open(bundle_dir)


def _graph(m):
    return m["graphs"]["expression"]


@pytest.mark.parametrize(
    "break_it, match",
    [
        (lambda m: _graph(m)["variants"]["fp32"].pop("sha256"),
         r"manifest.json: missing graph 'expression' fp32 field 'sha256'"),
        (lambda m: _graph(m)["variants"]["fp32"].update(sha256=12),
         r"graph 'expression' fp32 field 'sha256' should be a str, not int"),
        (lambda m: _graph(m)["variants"]["fp32"].update(file=["x.onnx"]),
         r"graph 'expression' fp32 field 'file' should be a str, not list"),
        (lambda m: _graph(m).update(variants=["fp32"]),
         r"graph 'expression' field 'variants' should be a dict, not list"),
        (lambda m: _graph(m)["variants"].update(fp32="expression.fp32.onnx"),
         r"graph 'expression' fp32 should be an object"),
        (lambda m: _graph(m).update(inputs={"x": 1}),
         r"graph 'expression' field 'inputs' should be a list, not dict"),
        (lambda m: _graph(m)["inputs"][0].pop("shape"),
         r"missing graph 'expression' inputs field 'shape'"),
        (lambda m: _graph(m).update(opset="17"),
         r"graph 'expression' field 'opset' should be a int, not str"),
        (lambda m: _graph(m).update(opset=18),
         r"expression.fp32.onnx: graph has opset 17, the manifest's graph 'expression' says 18"),
        (lambda m: _graph(m).update(prefer={"cpu": "int8"}),
         r"field 'prefer' names 'int8' for 'cpu', but the graph has only \['fp32'\]"),
        (lambda m: _graph(m).update(prefer=["fp32"]),
         r"graph 'expression' field 'prefer' should be a dict"),
        (lambda m: m.update(files=[]), r"field 'files' should be a dict"),
        (lambda m: m["files"]["labels"].pop("file"), r"missing file 'labels' field 'file'"),
        (lambda m: m.update(graphs=[]), r"field 'graphs' should be a dict, not list"),
        (lambda m: m.update(profile=3), r"field 'profile' should be a str, not int"),
    ],
)  # fmt: skip
def test_malformed_manifest_names_the_file_and_field(bundle_dir, break_it, match):
    m = _manifest(bundle_dir)
    break_it(m)
    _rewrite(bundle_dir, m)
    with pytest.raises(BundleError, match=match):
        Bundle.open(bundle_dir)


def test_corrupt_graph_with_updated_sha256_is_named(bundle_dir):
    from emolive.runtime.bundle import sha256_of

    target = bundle_dir / "expression.fp32.onnx"
    target.write_bytes(b"\x08\x07\x12\xff\xff garbage, not a protobuf")
    m = _manifest(bundle_dir)
    _graph(m)["variants"]["fp32"]["sha256"] = sha256_of(target)
    _rewrite(bundle_dir, m)
    with pytest.raises(BundleError, match=r"expression.fp32.onnx: not a readable ONNX graph"):
        Bundle.open(bundle_dir)


def test_weights_beside_a_graph_travel_with_it_in_one_file(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from emolive.export.onnx_check import _one_data_file
    from emolive.runtime import backends

    src = tmp_path / "src"
    src.mkdir()
    path = src / "g.onnx"
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(64, 64)).astype(np.float32), f"W{i}")
               for i in range(2)]  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W0"], ["h"]), helper.make_node("MatMul", ["h", "W1"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64])], weights,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = np.ones((2, 64), np.float32)
    want = backends.load("ort", path, "fp32").run({"x": x})["y"]
    # What the exporter writes past 2 GB: one file per weight, beside the graph.
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True,
              all_tensors_to_one_file=False, size_threshold=0)  # fmt: skip
    assert len(list(src.iterdir())) > 2
    _one_data_file(path)
    assert sorted(p.name for p in src.iterdir()) == ["g.onnx", "g.onnx.data"]
    writer = BundleWriter(tmp_path / "b", "lite")
    writer.add_graph("g", {"fp32": path})
    writer.write()
    variant = Bundle.open(tmp_path / "b").graph("g").variant("fp32")  # sha256s verified
    assert [e["file"] for e in variant.info["external_data"]] == ["g.onnx.data"]
    got = backends.load("ort", variant.path, "fp32").run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)
