"""What this machine can run: NVIDIA GPU, Jetson, and a memory budget per stage.

Read-only probes, no model loaded: ``emo-live doctor`` reports them. Jetson boards are found
by L4T's release file (``/etc/nv_tegra_release``) or the device tree's model string; their CPU
and GPU share one DRAM (unified memory), so a graph on the GPU needs no pinned host copy and
every stage's memory comes out of the same 8 GB on an Orin Nano.

The budget is what the bundle's files say, not a measurement: per stage, the bytes of the
graph variants the runtime would load for the device (file + external data), side files
(ASR, embeddings, tokenizers) and the LLM's KV cache at its context length. Activations,
ONNX Runtime/CUDA workspaces and the OS are not in it; ``reserve_gb`` stands for them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emolive.runtime.bundle import KV_IO, Bundle
from emolive.runtime.names import (
    EXPRESSION,
    FACE_DETECTOR,
    FACE_LANDMARKS,
    LLM_DECODER,
    VAD,
    WORDS_ENCODER,
)

ORIN_NANO_GB = 8.0
# Stage of each graph / side file key prefix (anything else: "other").
_STAGES = {
    FACE_DETECTOR: "vision", f"{FACE_DETECTOR}_full": "vision", FACE_LANDMARKS: "vision",
    EXPRESSION: "vision", VAD: "audio", WORDS_ENCODER: "words", LLM_DECODER: "llm",
    "affectgpt_vision": "affectgpt encoders", "affectgpt_audio": "affectgpt encoders",
    "affectgpt_fusion": "affectgpt encoders",
}  # fmt: skip
_PREFIX_STAGES = {"affectgpt_": "affectgpt encoders", "emollama_": "emotion_llama encoders"}
_FILE_STAGES = {"asr/": "audio", "llm_": "llm", "words_": "words", "affectgpt_": "llm",
                "emollama_": "llm"}  # fmt: skip
_ELEMENT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def nvidia_gpus() -> list[dict]:
    """GPUs nvidia-smi lists (name, driver, memory); [] without a driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = "--query-gpu=name,driver_version,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, memory = (p.strip() for p in line.split(",")[:3])
        gpus.append({"name": name, "driver": driver, "memory_mb": int(float(memory))})
    return gpus


@dataclass(frozen=True)
class Jetson:
    model: str | None  # the device tree's model string
    l4t: str | None  # "36.4.0" from /etc/nv_tegra_release

    @property
    def jetpack(self) -> str | None:
        """JetPack major line of this L4T (R36: JetPack 6, R35: 5), TensorRT it ships."""
        major = int(self.l4t.split(".")[0]) if self.l4t else None
        return {36: "6.x (TensorRT 10.3)", 35: "5.x (TensorRT 8.5)"}.get(major)


def jetson(root: Path = Path("/")) -> Jetson | None:
    """The Jetson this is, or None. ``root``: where to look (tests pass a fake tree)."""
    release = root / "etc" / "nv_tegra_release"
    model_file = root / "proc" / "device-tree" / "model"
    model = None
    if model_file.is_file():
        model = model_file.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
        if "jetson" not in model.lower() and "nvidia" not in model.lower():
            model = None
    l4t = None
    if release.is_file():
        # "# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, ..."
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release.read_text())
        l4t = f"{m.group(1)}.{m.group(2)}" if m else "unknown"
    if model is None and l4t is None:
        return None
    return Jetson(model, l4t)


def _bytes_of(bundle: Bundle, spec: dict) -> int:
    total = (bundle.root / spec["file"]).stat().st_size
    return total + sum(
        (bundle.root / x["file"]).stat().st_size for x in spec.get("external_data", [])
    )


def memory_budget(
    bundle: Bundle,
    device: str = "cuda",
    total_gb: float = ORIN_NANO_GB,
    reserve_gb: float = 2.0,
    max_context: int | None = None,
) -> dict:
    """Bytes per stage of what the runtime would load for ``device`` from ``bundle``;
    ``max_context``: the LLM's KV slots (None: the decoder's own ``max_context``, else 1024)."""
    stages: dict[str, dict] = {}

    def add(stage: str, what: str, nbytes: int) -> None:
        s = stages.setdefault(stage, {"bytes": 0, "parts": {}})
        s["bytes"] += nbytes
        s["parts"][what] = nbytes

    graph_files = set()
    for name, entry in bundle.graphs.items():
        variant = entry.variant(None, device)
        graph_files.add(variant.info["file"])
        graph_files.update(x["file"] for x in variant.info.get("external_data", []))
        stage = _STAGES.get(name) or next(
            (st for p, st in _PREFIX_STAGES.items() if name.startswith(p)), "other"
        )
        add(
            stage,
            f"{name} {variant.precision}",
            _bytes_of(bundle, variant.info),
        )
        if name == LLM_DECODER:
            a = entry.attrs
            kv = next((i for i in entry.inputs if i["name"].startswith("past_key_values")), None)
            size = _ELEMENT_BYTES.get(kv["dtype"], 4) if kv else 4
            if variant.info.get("io") == KV_IO:  # build's fp16 device variant: an fp16 cache
                size = 2
            tokens = max_context or int(a.get("max_context", 1024))  # what the session allocates
            cache = (
                2 * int(a.get("layers", 0)) * int(a.get("kv_heads", 0)) * int(a.get("head_dim", 0))
            )
            add("llm", f"KV cache ({tokens} tokens)", cache * tokens * size)
    for key, spec in bundle.manifest.get("files", {}).items():
        if spec["file"] in graph_files or key.startswith("probe."):
            continue
        stage = next((s for p, s in _FILE_STAGES.items() if key.startswith(p)), "other")
        add(stage, key, _bytes_of(bundle, spec))
    total = sum(s["bytes"] for s in stages.values())
    available = int((total_gb - reserve_gb) * 1e9)
    return {
        "device": device,
        "memory_gb": total_gb,
        "reserve_gb": reserve_gb,
        "stages": stages,
        "total_bytes": total,
        "fits": total <= available,
        "headroom_bytes": available - total,
        "note": "weights, side files and KV cache from the bundle's files; activations, "
        "runtime workspaces and the OS come out of reserve_gb (an assumption, not measured)",
    }
