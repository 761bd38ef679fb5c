"""The decode-step ablation benchmark (benchmarks/llm_parts.py) on a tiny exported int4f
graph: each variant takes out exactly the part it names and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.test_llm_export import exported  # noqa: E402,F401  (module-scoped fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import llm_parts  # noqa: E402

from emolive.runtime.llm.decoder import DecoderSession  # noqa: E402

IDS = [5, 17, 42, 99, 3, 250, 8]


@pytest.fixture(scope="module")
def variants(exported, tmp_path_factory):  # noqa: F811
    ex, _ = exported
    out = tmp_path_factory.mktemp("parts")
    graph = ex.graphs["int4f"]
    built = {
        n: llm_parts.build_variant(graph, n, ex.layout.head_dim, out) for n in llm_parts.VARIANTS
    }
    return ex, graph, built


def _run(ex, graph, ids=IDS):
    s = DecoderSession(graph, np.load(ex.embeddings), ex.layout, max_context=32)
    return s, s.forward(ids)


def test_no_remainder_and_pad_remainder_compute_the_same_product(variants, exported):  # noqa: F811
    ex, graph, built = variants
    intermediate = exported[1].model.config.intermediate_size
    _, whole = _run(ex, graph)
    _, cut = _run(ex, built["no_remainder"])
    _, padded = _run(ex, built["pad_remainder"])
    np.testing.assert_allclose(padded, cut, atol=1e-4)
    assert np.abs(whole - cut).max() > 1e-3  # the remainder did contribute
    nodes = onnx.load(str(built["no_remainder"]), load_external_data=False).graph.node
    assert not {"Concat", "MatMul"} & {n.op_type for n in nodes}
    widths = {
        a.i for n in nodes if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "K"
    }
    assert widths == {ex.layout.hidden, intermediate}


def test_no_lm_head_keeps_the_first_rows_and_zeros_the_rest(variants):
    ex, graph, built = variants
    _, whole = _run(ex, graph)
    _, cut = _run(ex, built["no_lm_head"])
    kept = ex.layout.vocab // llm_parts.KEPT_FRACTION
    np.testing.assert_allclose(cut[:, :kept], whole[:, :kept], atol=1e-5)
    assert not cut[:, kept:].any()


def test_no_attention_leaves_the_kv_cache_untouched(variants):
    ex, graph, built = variants
    s, _ = _run(ex, built["no_attention"])
    assert all(not kv.any() for kv in s.kv_snapshot())
    s, _ = _run(ex, graph)
    assert all(kv.any() for kv in s.kv_snapshot())


def test_lm_head_4bit_top256_rescoring_restores_the_exact_rows(variants):
    ex, graph, built = variants
    _, whole = _run(ex, graph)
    _, approx = _run(ex, built["lm_head_4bit"])
    _, rescored = _run(ex, built["lm_head_4bit_top256"])
    four_bit_error = np.abs(approx - whole).max()
    assert four_bit_error > 1e-2  # 4-bit rows differ from the 8-bit ones
    # Each position's 256 best tokens get the 8-bit rows back (computed in fp32, while the
    # graph's lm_head quantizes its input to int8: close, not equal).
    same = (np.abs(rescored - whole) < four_bit_error / 10).sum(-1)
    assert (same >= 256).all()
    assert (rescored.argmax(-1) == whole.argmax(-1)).all()
