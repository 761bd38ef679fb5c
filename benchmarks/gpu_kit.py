"""The GPU benchmark's kit (``benchmarks/gpu.py pack``): what travels to a GPU machine that
takes 64 MiB per call. A small bundle (the vision graphs and the VAD with their parity probes,
a few MB), the LLM's shape, and, given the onnxruntime-gpu wheel, its CUDA provider's files as
xz pieces of ``PIECE_MB`` to carry in successive calls; ``unpack_ort`` joins them there."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PIECE_MB = 60
KIT_GRAPHS = ("face_detector", "face_landmarks", "expression", "vad")
ORT_FILES = ("capi/onnxruntime_pybind11_state", "capi/libonnxruntime_providers_shared.so",
             "capi/libonnxruntime_providers_cuda.so")  # fmt: skip


def pack(args) -> None:
    from emolive.export.bundle import BundleWriter
    from emolive.runtime.bundle import Bundle
    from emolive.runtime.names import LLM_DECODER
    from emolive.runtime.parity import probe_key

    src = Bundle.open(args.bundle)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    writer = BundleWriter(out / "bundle", profile=src.profile)
    for name in KIT_GRAPHS:
        entry = src.graph(name)
        fp32 = entry.variant("fp32")
        writer.add_graph(name, {"fp32": fp32.path}, attrs=entry.attrs)
        if src.probe(name):
            writer.add_file(probe_key(name), src.probe(name), f"{name}.probe.npz", "parity probe")
    writer.write()
    llm = src.graph(LLM_DECODER).attrs
    keep = ("layers", "kv_heads", "head_dim", "hidden", "vocab", "heads", "max_positions")
    (out / "llm_shape.json").write_text(json.dumps({k: llm[k] for k in keep}))
    if args.ort_wheel:
        _pack_ort(Path(args.ort_wheel), out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"kit {out}: {size / 1e6:.1f} MB; carry it (and each ort.tar.xz.* piece in its own call)")


def _pack_ort(wheel: Path, out: Path) -> None:
    """The wheel's CUDA-provider files as xz pieces (the device tool carries 64 MiB a call)."""
    with zipfile.ZipFile(wheel) as zf, tempfile.TemporaryDirectory() as tmp:
        names = [n for n in zf.namelist() if n.startswith("onnxruntime/") and (
            n.endswith(".py") or any(f in n for f in ORT_FILES))]  # fmt: skip
        missing = [f for f in ORT_FILES if not any(f in n for n in names)]
        if missing:
            raise SystemExit(f"{wheel}: has no {missing}; is it an onnxruntime-gpu wheel?")
        zf.extractall(tmp, names)
        archive = out / "ort.tar.xz"
        with tarfile.open(archive, "w:xz", preset=6) as tar:
            tar.add(Path(tmp) / "onnxruntime", "onnxruntime")
    data, n = archive.read_bytes(), PIECE_MB << 20
    for i in range(0, len(data), n):
        (out / f"ort.tar.xz.{i // n:02d}").write_bytes(data[i : i + n])
    archive.unlink()


def unpack_ort(kit: Path) -> str | None:
    """The pieces joined and unpacked in the temp folder, put ahead on sys.path."""
    pieces = sorted(kit.glob("ort.tar.xz.*"))
    if not pieces:
        return None
    target = Path(tempfile.gettempdir()) / "emolive-ortgpu"
    if not (target / "onnxruntime").is_dir():
        archive = target.with_suffix(".tar.xz")
        target.mkdir(parents=True, exist_ok=True)
        with open(archive, "wb") as f:
            for p in pieces:
                f.write(p.read_bytes())
        with tarfile.open(archive) as tar:
            tar.extractall(target)
    sys.path.insert(0, str(target))
    return str(target)
