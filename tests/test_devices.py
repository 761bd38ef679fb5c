"""Devices: the CLI checks --device before loading, and the parity gate on a device refuses a
variant that disagrees with its probe (the "device" here is the CPU standing in for a GPU:
the gate's logic, not the GPU's numerics, is what runs)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from emolive.cli.main import main
from emolive.runtime import backends
from emolive.runtime.backends import DeviceUnavailable, RuntimeConfig, check_device
from emolive.runtime.bundle import FORMAT, FORMAT_VERSION, MANIFEST, Bundle, sha256_of
from emolive.runtime.parity import Probe, load_checked
from tests.helpers import tiny_onnx

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _perturbed(src, dst, scale: float):
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.name == "W":
            w = numpy_helper.to_array(init) * scale
            init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), "W"))
    onnx.save(model, str(dst))
    return dst


def tiny_device_bundle(root, fp16_scale: float = 1.3, fp32_reference_scale: float = 1.0):
    """A bundle with graph ``g``: fp32 and an fp16 "device variant" for cuda whose weights
    are ``fp16_scale`` times fp32's (1.3: deliberately wrong), plus the fp32 probe (its
    reference outputs from weights scaled by ``fp32_reference_scale``)."""
    root.mkdir()
    fp32 = tiny_onnx(root / "g.fp32.onnx")
    fp16 = _perturbed(fp32, root / "g.fp16.onnx", fp16_scale)
    ref_graph = _perturbed(fp32, root / "ref.onnx", fp32_reference_scale)
    x = np.random.default_rng(7).normal(size=(6, 4)).astype(np.float32)
    ref = backends.load("ort", ref_graph, "fp32").run({"x": x})
    ref_graph.unlink()
    Probe({"x": x}, ref).save(root / "probe.g.npz")
    io = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 3]}],
    }

    def spec(path, **info):
        return {"file": path.name, "sha256": sha256_of(path), **info}

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "profile": "lite",
        "graphs": {
            "g": {
                **io,
                "opset": 17,
                "variants": {
                    "fp32": spec(fp32),
                    "fp16": spec(
                        fp16,
                        devices={"cuda": {"probe_deviation": 0.001, "probe_tolerance": 0.0115}},
                    ),
                },
            }
        },
        "files": {"probe.g": spec(root / "probe.g.npz")},
    }
    (root / MANIFEST).write_text(json.dumps(manifest))
    return Bundle.open(root)


def _loader(asked: list):
    """Loads on the CPU whatever device is asked (recording it): the CPU stands in."""

    def load(variant, device):
        asked.append((variant.precision, device))
        return backends.load("ort", variant.path, variant.precision, threads=1)

    return load


def test_device_variant_is_chosen_for_its_device_only(tmp_path):
    entry = tiny_device_bundle(tmp_path / "b").graph("g")
    assert entry.variant(None, "cuda").precision == "fp16"
    assert entry.variant(None, "tensorrt").precision == "fp32"  # fp16 is meant for cuda
    assert entry.variant(None, "cpu").precision == "fp32"


def test_variant_that_disagrees_on_the_device_is_refused(tmp_path):
    bundle = tiny_device_bundle(tmp_path / "b")
    asked: list = []
    variant = bundle.graph("g").variant(None, "cuda")
    runner, chosen, note = load_checked(
        bundle, "g", variant, _loader(asked), lambda g: g.run, None, device="cuda"
    )
    assert chosen.precision == "fp32" and asked == [("fp16", "cuda"), ("fp32", "cuda")]
    assert "g fp16 on cuda: strays" in note and "fell back to fp32 on cuda" in note
    assert runner.precision == "fp32"


def test_right_variant_passes_on_the_device(tmp_path):
    bundle = tiny_device_bundle(tmp_path / "b", fp16_scale=1.0)
    asked: list = []
    _, chosen, note = load_checked(
        bundle, "g", bundle.graph("g").variant("fp16"), _loader(asked), lambda g: g.run, None,
        device="cuda",
    )  # fmt: skip
    assert chosen.precision == "fp16" and note is None and asked == [("fp16", "cuda")]


def test_a_variant_that_will_not_load_on_the_device_falls_back_and_refused_ones_are_freed(
    tmp_path,
):
    bundle = tiny_device_bundle(tmp_path / "b")  # fp16 strays on "cuda"
    asked: list = []
    closed: list = []
    base = _loader(asked)

    class Closable:
        def __init__(self, runner, precision):
            self.runner, self.precision, self.run = runner, precision, runner.run

        def close(self):
            closed.append(self.precision)

    def load(variant, device):
        runner = base(variant, device)
        if variant.precision == "fp16":
            return Closable(runner, "fp16")
        return runner

    _, chosen, note = load_checked(
        bundle, "g", bundle.graph("g").variant("fp16"), load, lambda g: g.run, None,
        device="cuda",
    )  # fmt: skip
    assert chosen.precision == "fp32" and closed == ["fp16"]  # freed before fp32 loaded

    def failing(variant, device):  # e.g. an engine that will not build there
        if variant.precision == "fp16":
            raise RuntimeError("no kernel for this op")
        return base(variant, device)

    other = tiny_device_bundle(tmp_path / "c", fp16_scale=1.0)
    _, chosen, note = load_checked(
        other, "g", other.graph("g").variant("fp16"), failing, lambda g: g.run, None,
        device="cuda",
    )  # fmt: skip
    assert chosen.precision == "fp32"
    assert "g fp16: does not run on cuda: no kernel for this op" in note
    assert "fell back to fp32 on cuda" in note


def test_nothing_agrees_on_the_device_falls_back_to_the_cpu(tmp_path):
    # The probe's reference is from other weights: fp16 and fp32 both disagree "on cuda".
    bundle = tiny_device_bundle(tmp_path / "b", fp32_reference_scale=2.0)
    asked: list = []
    _, chosen, note = load_checked(
        bundle, "g", bundle.graph("g").variant("fp16"), _loader(asked), lambda g: g.run, None,
        device="cuda",
    )  # fmt: skip
    assert asked == [("fp16", "cuda"), ("fp32", "cuda"), ("fp32", "cpu")]
    assert chosen.precision == "fp32" and "fell back to fp32 on the CPU" in note
    assert "g fp32 on cuda: strays" in note


def test_cpu_loads_are_unchanged_by_device_variants(tmp_path):
    bundle = tiny_device_bundle(tmp_path / "b")
    asked: list = []
    _, chosen, note = load_checked(
        bundle, "g", bundle.graph("g").variant(None, "cpu"), _loader(asked), lambda g: g.run,
        None,
    )  # fmt: skip
    assert chosen.precision == "fp32" and note is None and asked == [("fp32", "cpu")]


@pytest.mark.skipif(HAS_CUDA, reason="this machine has the CUDA provider")
def test_check_device_says_what_to_install():
    assert check_device(RuntimeConfig()) == "onnxruntime-cpu"
    with pytest.raises(DeviceUnavailable) as e:
        check_device(RuntimeConfig(device="cuda"))
    msg = str(e.value)
    assert "\n" not in msg and "CUDAExecutionProvider" in msg and "emo-live[gpu]" in msg
    assert "onnxruntime-cuda" in msg
    with pytest.raises(DeviceUnavailable, match="onnxruntime-tensorrt-ep"):
        check_device(RuntimeConfig(device="tensorrt"))


@pytest.mark.skipif(HAS_CUDA, reason="this machine has the CUDA provider")
@pytest.mark.parametrize("command", ["run", "serve", "reason", "bench"])
def test_cli_refuses_a_missing_device_before_loading(tmp_path, command):
    # The bundle does not exist: only a check made before any model loads can answer.
    extra = {"reason": ["--visual", "smiling"], "bench": ["vision"]}.get(command, [])
    args = [command, "--device", "cuda", "--bundle", str(tmp_path / "none"), *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no CUDAExecutionProvider" in lines[0]
    assert "install emo-live[gpu] (onnxruntime-gpu)" in lines[0]


def test_cli_names_which_tensorrt_it_means(tmp_path):
    result = CliRunner().invoke(
        main, ["run", "--backend", "trt", "--device", "cuda", "--bundle", str(tmp_path)]
    )
    assert result.exit_code == 1 and "tensorrt-native" in result.output


def test_run_maps_precision_into_the_runtime(tmp_path, monkeypatch):
    from emolive.cli import run as run_cli
    from emolive.runtime.names import EXPRESSION, FACE_DETECTOR

    seen = {}

    def stop(config, cleanup=None):
        seen["config"] = config
        raise SystemExit(3)

    monkeypatch.setattr(run_cli, "open_session", stop)
    result = CliRunner().invoke(
        main, ["run", "--source", "synthetic", "--precision", "fp32", "--threads", "2",
               "--bundle", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    config = seen["config"]
    assert config.runtime.device == "cpu" and config.runtime.backend == "ort"
    assert config.runtime.precision[EXPRESSION] == "fp32"
    assert config.runtime.precision[FACE_DETECTOR] == "fp32"
    assert config.vision.threads == 2


def test_vad_loads_through_the_backend_and_reports_it():
    from emolive.runtime.audio.vad import FRAME, SileroVad
    from emolive.runtime.names import VAD
    from tests.audio_speech import vad_path

    vad = SileroVad(vad_path(), runtime=RuntimeConfig())
    info = vad.backend_info[VAD]
    assert info["route"] == "onnxruntime-cpu" and info["providers"] == ["CPUExecutionProvider"]
    assert 0.0 <= vad.score(np.zeros(FRAME, np.float32)) < 0.5


def test_build_keeps_the_vad_in_fp32_because_its_state_drifts_in_fp16(tmp_path):
    from click.testing import CliRunner

    from emolive.cli.main import main
    from emolive.export.bundle import BundleWriter
    from emolive.export.device import to_fp16
    from emolive.runtime.audio.vad import FRAME, SileroVad
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.names import VAD
    from tests.audio_speech import vad_path

    # Why: over a stream the fp16 graph's state drifts from fp32's past the probe's bound.
    fp16 = SileroVad(to_fp16(vad_path(), tmp_path / "vad.fp16.onnx"))
    ref = SileroVad(vad_path())
    t = np.arange(FRAME) / 16000
    noise = np.random.default_rng(0).normal(0, 0.01, (10, FRAME))
    frames = [*noise, *(0.3 * np.sin(2 * np.pi * 220 * t) for _ in range(10))]
    drift = max(abs(fp16.score(x.astype(np.float32)) - ref.score(x.astype(np.float32)))
                for x in frames)  # fmt: skip
    assert drift > 0.02

    writer = BundleWriter(tmp_path / "b", "lite")
    writer.add_graph(VAD, {"fp32": vad_path()})
    writer.write()
    got = CliRunner().invoke(main, ["build", "--bundle", str(tmp_path / "b"), "--device", "cpu"])
    assert got.exit_code == 0, got.output  # kept by design, not refused
    assert "kept in fp32" in got.output
    bundle = Bundle.open(tmp_path / "b")
    assert sorted(bundle.graph(VAD).variants) == ["fp32"]
    vad = SileroVad.from_bundle(bundle, runtime=RuntimeConfig())  # through the gate
    assert vad.backend_info[VAD]["precision"] == "fp32" and vad.notes == []


def test_the_decoder_never_goes_to_native_tensorrt():
    from emolive.runtime.llm.bundled import decoder_route
    from emolive.runtime.names import LLM_DECODER

    asked = RuntimeConfig(backend="trt", device="tensorrt", precision={LLM_DECODER: "fp16"})
    placed, note = decoder_route(asked)
    assert (placed.backend, placed.device) == ("ort", "cuda")
    assert placed.precision_for(LLM_DECODER) == "fp16"  # the session's choice travels along
    assert "GroupQueryAttention" in note and "tensorrt-native" in note
    same, none = decoder_route(RuntimeConfig(device="cuda"))
    assert (same.backend, same.device, none) == ("ort", "cuda", None)
