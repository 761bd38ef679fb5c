"""`emo-live doctor` on this CPU machine: routes, GPU and Jetson probes, and the Orin Nano
memory budget computed from a bundle's files."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from emolive.cli.main import main
from emolive.runtime.bundle import MANIFEST, Bundle
from emolive.runtime.machine import jetson, memory_budget
from tests.test_build_device import tiny_bundle


def test_jetson_is_found_by_its_release_file_or_device_tree(tmp_path):
    assert jetson(tmp_path) is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(
        "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n"
    )
    board = jetson(tmp_path)
    assert board.l4t == "36.4.0" and board.jetpack == "6.x (TensorRT 10.3)" and board.model is None
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(
        b"NVIDIA Jetson Orin Nano Developer Kit\0"
    )
    assert jetson(tmp_path).model == "NVIDIA Jetson Orin Nano Developer Kit"
    (tmp_path / "etc" / "nv_tegra_release").unlink()
    assert jetson(tmp_path).l4t is None and jetson(tmp_path).jetpack is None


def test_budget_adds_the_files_the_device_would_load_and_the_kv_cache(tmp_path):
    root = tiny_bundle(tmp_path / "b", {"vad": 1.0, "llm_decoder": 1.0})
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["graphs"]["llm_decoder"]["attrs"] = {"layers": 2, "kv_heads": 3, "head_dim": 4}
    (root / MANIFEST).write_text(json.dumps(manifest))
    bundle = Bundle.open(root)
    budget = memory_budget(bundle, "cuda", max_context=10)
    graph_bytes = (root / "vad.fp32.onnx").stat().st_size
    assert budget["stages"]["audio"]["bytes"] == graph_bytes
    kv = budget["stages"]["llm"]["parts"]["KV cache (10 tokens)"]
    assert kv == 2 * 2 * 3 * 4 * 10 * 4  # k and v, layers, heads, dim, tokens, fp32
    assert budget["total_bytes"] == 2 * graph_bytes + kv and budget["fits"]
    assert not memory_budget(bundle, "cuda", total_gb=2.0 + 1e-9, reserve_gb=2.0)["fits"]
    # Without --context, the decoder's own max_context (what the session allocates); an
    # fp16-kv variant's cache counts 2 bytes a value.
    manifest["graphs"]["llm_decoder"]["attrs"]["max_context"] = 2048
    manifest["graphs"]["llm_decoder"]["variants"]["fp32"]["io"] = "fp16-kv"
    (root / MANIFEST).write_text(json.dumps(manifest))
    parts = memory_budget(Bundle.open(root, verify=False), "cuda")["stages"]["llm"]["parts"]
    assert parts["KV cache (2048 tokens)"] == 2 * 2 * 3 * 4 * 2048 * 2


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_doctor_reports_what_this_cpu_machine_can_run(tmp_path):
    root = tiny_bundle(tmp_path / "b", {"expression": 1.0})
    result = CliRunner().invoke(main, ["doctor", "--bundle", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    routes = report["routes"]
    assert set(routes) == {"onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt-ep",
                           "tensorrt-native"}  # fmt: skip
    assert routes["onnxruntime-cpu"] == "ok"
    if "CUDAExecutionProvider" not in report["onnxruntime"]["providers"]:
        assert "onnxruntime-gpu" in routes["onnxruntime-cuda"]
    assert report["gpus"] == [] and report["jetson"] is None
    budget = report["orin_nano_budget"]
    assert budget["memory_gb"] == 8.0 and budget["stages"]["vision"]["bytes"] > 0
    text = CliRunner().invoke(main, ["doctor", "--bundle", str(root)]).output
    assert "route onnxruntime-cpu: ok" in text and "Orin Nano 8 GB budget" in text
    assert "jetson: no" in text
