"""The parity gate on the LLM: a reduced form measured on one CPU class, loaded on another."""

from __future__ import annotations

import json

import numpy as np

from emolive.runtime.bundle import MANIFEST, Bundle
from emolive.runtime.cpu import this_cpu
from emolive.runtime.llm.model import Llm, LlmOptions
from emolive.runtime.names import LLM_DECODER
from emolive.runtime.parity import Probe, check_variant, deviation, tolerance_for
from tests.test_llm_export import tiny_bundle, tiny_tokenizer

REDUCED = ("int8", "int4", "int4f", "w8a8")


def _claim(root, precision: str, **fields) -> None:
    """Rewrite what the manifest says measured ``precision`` (as another machine would have)."""
    manifest = json.loads((root / MANIFEST).read_text())
    info = manifest["graphs"][LLM_DECODER]["variants"][precision]
    for key, value in fields.items():
        info[key] = {**info[key], **value} if isinstance(value, dict) else value
    (root / MANIFEST).write_text(json.dumps(manifest))


def test_export_records_cpu_and_probe_for_every_reduced_form(tmp_path):
    root = tmp_path / "bundle"
    tiny_bundle(root, tmp_path / "work", tiny_tokenizer(tmp_path / "tokenizer.json"))
    bundle = Bundle.open(root)
    entry = bundle.graph(LLM_DECODER)
    probe = Probe.load(bundle.probe(LLM_DECODER))
    assert probe.inputs["token_ids"].shape == (16,)
    assert probe.reference["logits"].shape == (16, entry.attrs["vocab"])
    assert entry.attrs["measured_on"] == this_cpu().record()
    for precision in REDUCED:
        info = entry.variant(precision).info
        assert info["measured_on"] == this_cpu().record()
        assert 0 < info["probe_deviation"] <= info["probe_tolerance"]
        assert abs(info["probe_tolerance"] - tolerance_for(info["probe_deviation"])) < 1e-5
    assert "probe_deviation" not in entry.variant("fp32").info

    # Same CPU class: trusted as measured. Another class: re-checked, and it holds.
    for precision in REDUCED:
        llm = Llm.from_bundle(bundle, LlmOptions(precision=precision, max_context=64))
        assert llm.precision == precision
        assert not [n for n in llm.notes if "fell back" in n or "not re-checked" in n]
        _claim(root, precision, measured_on={"cpu_class": "arm64"})
        llm = Llm.from_bundle(Bundle.open(root), LlmOptions(precision=precision, max_context=64))
        assert llm.precision == precision and not [n for n in llm.notes if "fell back" in n]


def test_form_that_strays_on_this_cpu_falls_back_to_fp32(tmp_path):
    root = tmp_path / "bundle"
    tiny_bundle(root, tmp_path / "work", tiny_tokenizer(tmp_path / "tokenizer.json"))
    # As if w8a8 had been measured on a VNNI machine with no noise at all: here it strays.
    _claim(root, "w8a8", measured_on={"cpu_class": "x86-64-avx512-vnni"}, probe_tolerance=0.0)
    llm = Llm.from_bundle(Bundle.open(root), LlmOptions(precision="w8a8", max_context=64))
    assert llm.precision == "fp32"
    (note,) = [n for n in llm.notes if "fell back" in n]
    assert "w8a8" in note and "x86-64-avx512-vnni" in note and this_cpu().cpu_class in note
    # The fallback answers like fp32 itself.
    fp32 = Llm.from_bundle(Bundle.open(root), LlmOptions(precision="fp32", max_context=64))
    ids = [5, 17, 42, 99]
    np.testing.assert_array_equal(llm.session.forward(ids), fp32.session.forward(ids))


def test_gate_without_probe_says_it_could_not_check():
    info = {"measured_on": {"cpu_class": "x86-64-amx"}, "probe_tolerance": 0.1}
    got = check_variant(info, None, lambda feed: feed, this_cpu(), "g int8")
    assert got.passed and not got.checked and "not re-checked" in got.note


def test_deviation_is_relative_to_each_outputs_range():
    ref = {"a": np.array([10.0, -20.0]), "b": np.array([0.5, 0.25])}
    assert deviation(ref, ref) == 0.0
    got = {"a": np.array([10.0, -18.0]), "b": np.array([0.5, 0.30])}
    assert np.isclose(deviation(got, ref), 0.1)  # b: 0.05 / 0.5; a: 2 / 20


def test_fallback_note_reaches_backend_info(tmp_path):
    root = tmp_path / "bundle"
    tiny_bundle(root, tmp_path / "work", tiny_tokenizer(tmp_path / "tokenizer.json"))
    _claim(root, "w8a8", measured_on={"cpu_class": "x86-64-avx512-vnni"}, probe_tolerance=0.0)
    llm = Llm.from_bundle(Bundle.open(root), LlmOptions(precision="w8a8", max_context=64))
    info = llm.backend_info[LLM_DECODER]
    assert info["route"] == "onnxruntime-cpu" and info["precision"] == "fp32"
    assert "fell back" in info["fallback"] and "w8a8" in info["fallback"]
    plain = Llm.from_bundle(Bundle.open(root), LlmOptions(precision="fp32", max_context=64))
    assert "fallback" not in plain.backend_info[LLM_DECODER]
