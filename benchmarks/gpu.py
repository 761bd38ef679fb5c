"""GPU benchmark: every stage on ONNX Runtime's CUDA provider, side by side with the same model
in PyTorch on the same GPU; writes benchmarks/results/gpu.json (device, driver, versions).

Prepared for a GPU session; on a machine without CUDA ``run`` refuses and says why. Two steps:

    # here, on the CPU machine: a kit that fits the device tool's 64 MiB per call
    # (keep it out of git: echo /.gpukit/ >> .git/info/exclude; carry it by name)
    python benchmarks/gpu.py pack --bundle bundles/lite --out .gpukit \\
        [--ort-wheel onnxruntime_gpu-1.31.1-...whl]
    # there, in the repo root (the kit carried; ORT's pieces carried over several calls)
    python3 benchmarks/gpu.py run --kit .gpukit [--affectgpt real]

``pack`` writes a small bundle (the vision graphs and the VAD, with their parity probes: a
few MB) and, given the onnxruntime-gpu wheel, the files its CUDA provider needs (FACTS.md:
the pybind module, libonnxruntime_providers_shared/_cuda and the Python files; ~186 MB with
xz) as .tar.xz pieces of PIECE_MB each, to carry in successive calls to a warm machine.
``run`` joins and unpacks the pieces (when present) ahead of the image's CPU-only
onnxruntime, regenerates the lite LLM decoder at its real shape (SmolLM2-135M: the graph the
exporter writes, random weights) into the kit bundle, then:

1. ``emo-live build --device cuda`` on the kit bundle: fp16 variants, each checked against
   its probe on the GPU (deviations recorded);
2. every graph on CUDA (fp32 and fp16) and on the CPU, batch 1 and 16 faces;
3. the LLM through the runtime's decoder session (IOBinding, KV cache on the device):
   prefill and decode tokens/s, fp32, fp16 as build writes it (KV cache fp16, embeddings and
   logits fp32) and fp16 with all IO fp16; an explained reading
   (a 200-token prompt + 48 tokens) in ms;
4. the same shapes in PyTorch on the same GPU: the Llama decoder in eager fp16 with a static
   KV cache, then torch.compile (reduce-overhead) where it compiles in time; the expression
   CNN (mini-Xception) eager and compiled;
5. with ``--affectgpt real``: CLIP ViT-L/14 over 8 frames, HuBERT-large over 8 x 2 s clips
   and a Qwen2.5-7B-shaped decoder in torch eager fp16, and the encoders exported to ONNX
   and the 7B decoder built by the exporter's graph writer, on ONNX Runtime with fp16
   activations: 4-bit weights (benchmarks/decoder7b.py's graph), then fp16 weights.

A section that fails is recorded with its error, never dropped; sections stop starting once
``--budget-s`` (default 420 s, so the whole run stays under 8 minutes on an H200) is spent.
Not in it: the live session with capture and ASR (faster-whisper/CTranslate2 are not in the
GPU image), native TensorRT (not installable there). ``--smoke`` runs every section at tiny
shapes on the CPU, to check this script where there is no GPU; it never writes results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

sys.path.insert(0, str(HERE))  # run as a script: its sibling module
from gpu_kit import KIT_GRAPHS, pack, unpack_ort  # noqa: E402

RESULTS = HERE / "results" / "gpu.json"
PROMPT_TOKENS, DECODE_TOKENS, EXPLAIN_TOKENS = 200, 64, 48
TARGETS = {"vision_fps": 2000, "lite_decode_tok_s": 600, "lite_decode_vs_torch_eager": 3.0,
           "lite_explained_ms": 150, "affectgpt_decode_tok_s": 200,
           "affectgpt_explained_s": 0.6}  # fmt: skip
# SmolLM2-135M, and AffectGPT's Qwen2.5-7B language model, as shapes.
QWEN7B = {"layers": 28, "hidden": 3584, "heads": 28, "kv_heads": 4, "head_dim": 128,
          "intermediate": 18944, "vocab": 152064}  # fmt: skip
TINY = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16,
        "intermediate": 128, "vocab": 300}  # fmt: skip


def _importable_emolive() -> None:
    """The repo as the ``emolive`` namespace without installing it (the GPU image has no venv
    of ours): a folder whose ``emolive`` links to the four top-level folders."""
    try:
        import emolive  # noqa: F401

        return
    except ImportError:
        pass
    shim = Path(tempfile.gettempdir()) / "emolive-shim" / "emolive"
    shim.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "emolive" / "__init__.py", shim / "__init__.py")
    for part in ("runtime", "export", "calibrate", "cli"):
        link = shim / part
        if not link.exists():
            link.symlink_to(ROOT / part)
    sys.path.insert(0, str(shim.parent))


def environment(device: str) -> dict:
    import onnxruntime as ort

    env = {"python": platform.python_version(), "onnxruntime": ort.__version__,
           "providers": ort.get_available_providers(), "cpu_cores": os.cpu_count()}  # fmt: skip
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        if device == "cuda":
            env["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        env["torch"] = None
    if shutil.which("nvidia-smi"):
        q = "--query-gpu=name,driver_version,memory.total"
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", q, "--format=csv,noheader"],
                                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return env


class Sections:
    """Runs named sections in order; records results or the error; stops at the deadline."""

    def __init__(self, budget_s: float, save=None) -> None:
        self.t0, self.budget_s, self.out, self.save = time.monotonic(), budget_s, {}, save

    def __call__(self, name: str, fn, *a, **kw):
        left = self.budget_s - (time.monotonic() - self.t0)
        if left <= 0:
            self.out[name] = {"skipped": f"time budget of {self.budget_s:.0f} s spent"}
            return None
        t = time.monotonic()
        print(f"[{time.monotonic() - self.t0:6.1f}s] {name}", flush=True)
        try:
            result = fn(*a, **kw)
            self.out[name] = {**(result or {}), "section_s": round(time.monotonic() - t, 1)}
            return result
        except Exception as e:  # recorded, not swallowed: the JSON carries the traceback
            self.out[name] = {"error": f"{type(e).__name__}: {e}",
                              "traceback": traceback.format_exc(limit=6)}  # fmt: skip
            print(f"  failed: {type(e).__name__}: {e}", flush=True)
            return None
        finally:
            if self.save:
                self.save()  # what ran so far is on disk even if a later section is killed


def median_ms(fn, warmup: int = 3, iters: int = 20, sync=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 4)


def add_llm(bundle_dir: Path, shape: dict, work: Path, seed: int = 0) -> None:
    """The lite decoder at ``shape`` (the exporter's graph, random weights) into the bundle."""
    from emolive.export.bundle import BundleWriter
    from emolive.export.llm.bundle import ExportedLlm, add_exported

    graph, emb, decoder_shape = write_decoder(shape, work, "llm_decoder.fp32.onnx", seed)
    exported = ExportedLlm({"fp32": graph}, emb, None, None, decoder_shape)
    writer = BundleWriter.reopen(bundle_dir)
    add_exported(writer, exported, report={})
    writer.write()


def write_decoder(shape: dict, work: Path, name: str, seed: int = 0):
    """An fp32 decoder graph of ``shape`` with random weights (std 0.02, norms ~1), its
    external data beside it, and a random embedding table."""
    import onnx

    from emolive.export.llm.graph import DecoderShape, DecoderWeights, LayerWeights, build_decoder

    s = DecoderShape(shape["layers"], shape["hidden"], shape["heads"], shape["kv_heads"],
                     shape["head_dim"], shape.get("intermediate", 4 * shape["hidden"]),
                     shape["vocab"], 1e-5, 10000.0, int(shape.get("max_positions", 4096)))  # fmt: skip
    rng = np.random.default_rng(seed)

    def w(n, k):
        return rng.standard_normal((n, k), dtype=np.float32) * np.float32(0.02)

    def norm():
        return rng.uniform(0.8, 1.2, s.hidden).astype(np.float32)

    h, q = s.hidden, s.heads * s.head_dim
    layers = [LayerWeights(norm(), w(s.qkv_out, h), w(h, q), norm(), w(2 * s.intermediate, h),
                           w(h, s.intermediate)) for _ in range(s.layers)]  # fmt: skip
    emb = rng.standard_normal((s.vocab, h), dtype=np.float32) * np.float32(0.02)
    model = build_decoder(s, DecoderWeights(layers, norm(), emb.copy()), name)
    work.mkdir(parents=True, exist_ok=True)
    path = work / name
    onnx.save(model, str(path), save_as_external_data=True, location=f"{name}.data")
    np.save(work / "llm_embeddings.npy", emb)
    return path, work / "llm_embeddings.npy", s


def bench_graphs(bundle_dir: Path, device: str) -> dict:
    """Each kit graph: ms per run on ``device`` (fp32, fp16 if built) and on the CPU."""
    from emolive.export.device import probe_of
    from emolive.runtime import backends
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.bundle import Bundle

    bundle = Bundle.open(bundle_dir)
    out = {}
    for name in KIT_GRAPHS:
        entry = bundle.graph(name)
        # Build leaves some graphs (the VAD) in fp32 and so makes them no probe: made here.
        feeds = probe_of(bundle, name)[0].inputs
        row = {}
        for where, precision in ((device, "fp32"), (device, "fp16"), ("cpu", "fp32")):
            if precision not in entry.variants:
                continue
            runner = backends.load(RuntimeConfig(device=where), entry.variant(precision).path,
                                   precision)  # fmt: skip
            row[f"{where} {precision}"] = {
                "batch1_ms": median_ms(lambda r=runner, f=feeds: r.run(f))
            }
            if name in ("face_landmarks", "expression"):  # batched faces
                key = entry.inputs[0]["name"]
                batched = {key: np.repeat(feeds[key][:1], 16, axis=0)}
                row[f"{where} {precision}"]["batch16_ms"] = median_ms(
                    lambda r=runner, b=batched: r.run(b)
                )
            row[f"{where} {precision}"]["providers"] = runner.info["providers"]
        out[name] = row
    best = {n: min(v["batch1_ms"] for k, v in out[n].items() if not k.startswith("cpu") or
                   device == "cpu") for n in ("face_detector", "face_landmarks", "expression")}  # fmt: skip
    out["vision_frames_per_s_one_face"] = round(1000 / sum(best.values()), 1)
    return out


def bench_llm(bundle_dir: Path, device: str, work: Path) -> dict:
    """Prefill/decode tok/s through the runtime's decoder session for each form on device."""
    from emolive.runtime import backends
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.llm.decoder import DecoderLayout
    from emolive.runtime.names import LLM_DECODER, LLM_EMBEDDINGS

    bundle = Bundle.open(bundle_dir)
    entry = bundle.graph(LLM_DECODER)
    layout = DecoderLayout.from_attrs(entry.attrs)
    emb = np.load(bundle.file(LLM_EMBEDDINGS), mmap_mode="r")
    forms = {p: entry.variant(p).path for p in entry.variants}
    io16 = work / "llm_decoder.fp16io.onnx"
    _fp16_io(entry.variant("fp32").path, io16)
    forms["fp16 (fp16 IO)"] = io16
    out = {}
    for label, path in forms.items():
        precision = "fp16" if "fp16" in label else label
        runner = backends.load(RuntimeConfig(device=device), path, precision)
        out[label] = decode_speed(runner, emb, layout)
        out[label]["providers"] = runner.info["providers"]
        del runner
    return out


def _fp16_io(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=False,
                                    disable_shape_infer=True)  # fmt: skip
    onnx.save(half, str(dst), save_as_external_data=True, location=f"{dst.name}.data")


def decode_speed(runner, emb, layout, prompt: int = PROMPT_TOKENS) -> dict:
    from emolive.runtime.llm.decoder import DecoderSession

    session = DecoderSession(runner, emb, layout, max_context=prompt + DECODE_TOKENS + 8)
    ids = list(np.random.default_rng(0).integers(3, layout.vocab, prompt))

    def prefill():
        session.reset()
        session.forward(ids, last_only=True)

    prefill_ms = median_ms(prefill, warmup=2, iters=5)
    prefill()
    t = time.perf_counter()
    token = 5
    for _ in range(DECODE_TOKENS):
        token = int(np.argmax(session.forward([token], last_only=True)[-1]))
    decode_s = time.perf_counter() - t

    def explain():
        session.reset()
        tok = int(np.argmax(session.forward(ids, last_only=True)[-1]))
        for _ in range(EXPLAIN_TOKENS):
            tok = int(np.argmax(session.forward([tok], last_only=True)[-1]))

    return {"prefill_tok_s": round(prompt / prefill_ms * 1000, 1),
            "decode_tok_s": round(DECODE_TOKENS / decode_s, 1),
            "explained_ms": median_ms(explain, warmup=1, iters=3)}  # fmt: skip


def torch_llm(shape: dict, device: str, compile_s: float) -> dict:
    """The same decoder shape as a transformers Llama, fp16, static cache: eager, compiled."""
    import torch
    import transformers

    dtype = torch.float16 if device == "cuda" else torch.float32
    cfg = transformers.LlamaConfig(
        vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"], intermediate_size=shape.get("intermediate", 4 * shape["hidden"]),
        max_position_embeddings=4096,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    return _torch_decode(model, shape["vocab"], device, dtype, compile_s)


def _torch_decode(model, vocab: int, device: str, dtype, compile_s: float) -> dict:
    import torch
    from transformers import StaticCache

    sync = torch.cuda.synchronize if device == "cuda" else None
    ids = torch.randint(3, vocab, (1, PROMPT_TOKENS), device=device)
    total = PROMPT_TOKENS + DECODE_TOKENS + 8
    cache = StaticCache(config=model.config, max_cache_len=total)

    def step(fwd, tok, pos):
        return fwd(input_ids=tok, past_key_values=cache, cache_position=pos, use_cache=True).logits

    def run(fwd) -> dict:
        with torch.no_grad():
            cache.reset()
            t = time.perf_counter()
            logits = step(fwd, ids, torch.arange(PROMPT_TOKENS, device=device))
            if sync:
                sync()
            prefill_s = time.perf_counter() - t
            tok = logits[:, -1:].argmax(-1)
            t = time.perf_counter()
            for i in range(DECODE_TOKENS):
                pos = torch.tensor([PROMPT_TOKENS + i], device=device)
                tok = step(fwd, tok, pos)[:, -1:].argmax(-1)
            if sync:
                sync()
            return {"prefill_tok_s": round(PROMPT_TOKENS / prefill_s, 1),
                    "decode_tok_s": round(DECODE_TOKENS / (time.perf_counter() - t), 1)}  # fmt: skip

    run(model.forward)
    out = {"eager": run(model.forward)}
    if device == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    t = time.monotonic()
    if compile_s <= 0:
        out["compiled"] = {"skipped": "--compile-s 0"}
        return out
    try:
        compiled = torch.compile(model.forward, mode="reduce-overhead", fullgraph=False)
        run(compiled)
        if time.monotonic() - t > compile_s:
            out["compiled"] = {"skipped": f"compiling took over {compile_s:.0f} s"}
        else:
            out["compiled"] = run(compiled)
    except Exception as e:  # torch.compile fails on some shapes/versions: say so
        out["compiled"] = {"error": f"{type(e).__name__}: {e}"[:400]}
    out["compile_s"] = round(time.monotonic() - t, 1)
    return out


def torch_expression(device: str, compile_s: float) -> dict:
    import torch

    from emolive.export.fer_net import MiniXception

    dtype = torch.float16 if device == "cuda" else torch.float32
    model = MiniXception().to(device=device, dtype=dtype).eval()
    sync = torch.cuda.synchronize if device == "cuda" else None
    out = {}
    with torch.no_grad():
        for batch in (1, 16):
            x = torch.randn(batch, 1, 64, 64, device=device, dtype=dtype)
            out[f"eager_batch{batch}_ms"] = median_ms(lambda x=x: model(x), sync=sync)
        try:
            if compile_s <= 0:
                raise RuntimeError("skipped: --compile-s 0")
            compiled = torch.compile(model)
            x = torch.randn(16, 1, 64, 64, device=device, dtype=dtype)
            out["compiled_batch16_ms"] = median_ms(lambda: compiled(x), warmup=3, sync=sync)
        except Exception as e:
            out["compiled"] = {"error": f"{type(e).__name__}: {e}"[:400]}
    return out


def affectgpt(device: str, real: bool, work: Path, compile_s: float) -> dict:
    """AffectGPT's encoders and decoder at their real shapes (random weights): torch eager
    fp16, and the same on ONNX Runtime fp16 (encoders exported, decoder written)."""
    import torch
    import transformers

    from emolive.export.device import to_fp16
    from emolive.runtime import backends
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.llm.decoder import DecoderLayout

    dtype = torch.float16 if device == "cuda" else torch.float32
    sync = torch.cuda.synchronize if device == "cuda" else None
    big = real
    clip_cfg = transformers.CLIPVisionConfig(
        hidden_size=1024 if big else 32, intermediate_size=4096 if big else 64,
        num_hidden_layers=24 if big else 2, num_attention_heads=16 if big else 2,
        patch_size=14, image_size=224,
    )  # fmt: skip
    hub_cfg = transformers.HubertConfig(
        hidden_size=1024 if big else 32, intermediate_size=4096 if big else 64,
        num_hidden_layers=24 if big else 2, num_attention_heads=16 if big else 2,
        conv_dim=(512,) * 7 if big else (16,) * 7, do_stable_layer_norm=big,
        feat_extract_norm="layer" if big else "group",
    )  # fmt: skip
    encoders = {
        "clip_vit_l14_8_frames": (transformers.CLIPVisionModel(clip_cfg), torch.randn(8, 3, 224, 224)),
        "hubert_large_8x2s": (transformers.HubertModel(hub_cfg), torch.randn(8, 32000)),
    }  # fmt: skip
    out: dict = {"size": "real" if real else "tiny"}
    work.mkdir(parents=True, exist_ok=True)
    for name, (model, x) in encoders.items():
        model.eval()
        onnx_path = work / f"{name}.onnx"
        with torch.no_grad():  # export in fp32 on the CPU, then the fp16 form for ORT
            torch.onnx.export(model, (x[:2],), str(onnx_path), input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}}, opset_version=17,
                              dynamo=False)  # fmt: skip
        half = to_fp16(onnx_path, work / f"{name}.fp16.onnx")
        model = model.to(device=device, dtype=dtype)
        xd = x.to(device=device, dtype=dtype)
        with torch.no_grad():
            out[name] = {
                "torch_eager_ms": median_ms(lambda m=model, x=xd: m(x), sync=sync, iters=10)
            }
        runner = backends.load(RuntimeConfig(device=device), half, "fp16")
        feeds = {"x": x.numpy()}
        out[name]["ort_fp16_ms"] = median_ms(lambda r=runner, f=feeds: r.run(f), iters=10)
        del model, runner
    shape = QWEN7B if real else TINY
    qcfg = transformers.Qwen2Config(
        vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"],
        intermediate_size=shape["intermediate"], max_position_embeddings=4096,
    )  # fmt: skip
    with torch.device(device):
        qwen = transformers.Qwen2ForCausalLM(qcfg).to(dtype=dtype).eval()
    out["decoder_torch"] = _torch_decode(qwen, shape["vocab"], device, dtype, compile_s)
    del qwen
    if device == "cuda":
        torch.cuda.empty_cache()
    out["decoder_ort_int4"] = _ort_int4_decoder(device, real, work / "qwen4")
    graph, emb, _ = write_decoder(shape, work / "qwen", "decoder.fp32.onnx")
    half = work / "qwen" / "decoder.fp16io.onnx"
    _fp16_io(graph, half)
    runner = backends.load(RuntimeConfig(device=device), half, "fp16")
    layout = DecoderLayout(shape["layers"], shape["kv_heads"], shape["head_dim"],
                           shape["hidden"], shape["vocab"])  # fmt: skip
    out["decoder_ort_fp16"] = decode_speed(runner, np.load(emb, mmap_mode="r"), layout, 300)
    out["decoder_ort_fp16"]["note"] = "random weights; parity not checked at this size"
    return out


def _ort_int4_decoder(device: str, real: bool, work: Path) -> dict:
    """AffectGPT's decoder as benchmarks/decoder7b.py writes it (Qwen2.5-7B shape, random
    4-bit MatMulNBits weights, q/k/v biases), activations and IO in fp16, on ``device``."""
    import decoder7b

    from emolive.export.llm.graph import DecoderShape
    from emolive.runtime import backends
    from emolive.runtime.backends import RuntimeConfig
    from emolive.runtime.llm.decoder import DecoderLayout

    shape = decoder7b.QWEN25_7B
    if not real:
        shape = DecoderShape(**{**vars(shape), **{k: v for k, v in TINY.items() if k != "layers"},
                                "layers": TINY["layers"]})  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    built = decoder7b.build(shape, work / "decoder.int4.onnx")
    half = work / "decoder.int4.fp16io.onnx"
    _fp16_io(work / "decoder.int4.onnx", half)
    runner = backends.load(RuntimeConfig(device=device), half, "int4")
    row = np.random.default_rng(1).normal(0, 0.02, (1, shape.hidden)).astype(np.float32)
    table = np.broadcast_to(row, (shape.vocab, shape.hidden))  # lookups only
    layout = DecoderLayout(shape.layers, shape.kv_heads, shape.head_dim, shape.hidden, shape.vocab)
    out = decode_speed(runner, table, layout, 300)
    return {**out, "build": built, "providers": runner.info["providers"],
            "note": "random 4-bit weights; parity not checked at this size"}  # fmt: skip


def run(args) -> None:
    device = "cpu" if args.smoke else "cuda"
    kit = Path(args.kit)
    ort_dir = unpack_ort(kit)
    _importable_emolive()
    import onnxruntime as ort

    if device == "cuda":
        why = []
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            why.append(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (carry the "
                       f"onnxruntime-gpu pieces: `pack --ort-wheel`)")  # fmt: skip
        try:
            import torch

            if not torch.cuda.is_available():
                why.append("torch sees no CUDA device")
        except ImportError:
            why.append("torch is not installed")
        if why:
            raise SystemExit("benchmarks/gpu.py run needs a CUDA GPU: " + "; ".join(why) +
                             " (on a CPU machine, --smoke checks the script at tiny shapes)")  # fmt: skip
        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA 13 libraries from torch's wheels
    work = Path(tempfile.mkdtemp(prefix="emolive-gpu-"))
    bundle_dir = work / "bundle"
    shutil.copytree(kit / "bundle", bundle_dir)
    lite = json.loads((kit / "llm_shape.json").read_text())
    if args.smoke:
        lite = {**TINY, "max_positions": 512}
    out = Path(args.out) if not args.smoke else work / "gpu.smoke.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = Sections(args.budget_s)
    result = {"benchmark": "gpu", "command": " ".join(["python", *sys.argv]),
              "date": time.strftime("%Y-%m-%d"), "device": device, "smoke": args.smoke,
              "onnxruntime_from": ort_dir or "installed", "environment": environment(device),
              "targets": TARGETS, "sections": sections.out}  # fmt: skip

    def save() -> None:
        result["wall_s"] = round(time.monotonic() - sections.t0, 1)
        out.write_text(json.dumps(result, indent=2, default=str))

    sections.save = save
    sections("make lite llm (random weights, real shape)", add_llm, bundle_dir, lite, work / "llm")

    def build():
        from emolive.export.device import BuildConfig, build_device_variants

        done = build_device_variants(bundle_dir, BuildConfig(device=device), log=print)
        return {n: {"written": o.written, **o.record()} for n, o in done.items()}

    sections("emo-live build --device " + device, build)
    sections("graphs on the device", bench_graphs, bundle_dir, device)
    sections("lite llm through the runtime", bench_llm, bundle_dir, device, work)
    sections("lite llm in torch", torch_llm, lite, device, args.compile_s)
    sections("expression cnn in torch", torch_expression, device, args.compile_s)
    if args.affectgpt != "off":
        sections(f"affectgpt ({args.affectgpt})", affectgpt, device,
                 args.affectgpt == "real" and not args.smoke, work / "affectgpt", args.compile_s)  # fmt: skip
    save()
    print(json.dumps({k: v for k, v in sections.out.items()}, indent=1, default=str)[:6000])
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: a small kit bundle (+ onnxruntime-gpu xz pieces)")
    p.add_argument("--bundle", default="bundles/lite")
    p.add_argument("--out", default=".gpukit")
    p.add_argument("--ort-wheel", default=None, help="an onnxruntime-gpu wheel to carry")
    r = sub.add_parser("run", help="on the GPU machine: every stage, ORT vs torch")
    r.add_argument("--kit", default=".gpukit")
    r.add_argument("--out", default=str(RESULTS))
    r.add_argument("--affectgpt", choices=["real", "tiny", "off"], default="real")
    r.add_argument("--budget-s", type=float, default=420.0)
    r.add_argument("--compile-s", type=float, default=90.0,
                   help="give up on torch.compile numbers past this many seconds")  # fmt: skip
    r.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (no GPU needed)")
    args = ap.parse_args()
    if args.command == "pack":
        _importable_emolive()
        pack(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
