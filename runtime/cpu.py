"""Which CPU class this is, as int8 numerics see it.

ONNX Runtime's int8 kernels (MLAS) differ by CPU class. On x86-64 with AVX2, or AVX-512 without
VNNI, the u8×s8 GEMM and convolution kernels add each pair of u8·s8 products in a 16-bit
register with saturation (VPMADDUBSW): 255·127·2 = 64770 does not fit, so a graph whose
values reach that far computes something else than on a VNNI, AMX or ARM64 CPU, which
accumulate in 32 bits. The project's int8 forms are built so that no pair can saturate
(see ``emolive.calibrate.qdq`` and ``emolive.export.llm.quant``); reports record the class
that measured them, and the runtime re-checks a variant measured on another class
(``emolive.runtime.parity``).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

# The flags that decide which int8 kernels MLAS picks (Linux /proc/cpuinfo names).
INT8_FLAGS = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile",
    "asimddp", "i8mm", "sve",
)  # fmt: skip
# Largest pair sum of u8·s8 products a 16-bit saturating accumulator holds exactly.
INT16_MAX = 32767


@dataclass(frozen=True)
class CpuInfo:
    """The CPU a report or a check ran on: model, architecture, int8 class and its flags."""

    model: str
    arch: str
    cpu_class: str
    flags: tuple[str, ...]

    @property
    def u8s8_saturates(self) -> bool:
        """Whether MLAS's u8×s8 kernels here add product pairs in 16 bits with saturation."""
        return self.cpu_class in ("x86-64-avx2", "x86-64-avx512")

    def record(self) -> dict:
        out = asdict(self)
        out["flags"] = list(self.flags)
        out["u8s8_saturates"] = self.u8s8_saturates
        return out


def classify(arch: str, flags: set[str]) -> str:
    """The int8 class of a CPU from its architecture and flags."""
    arch = arch.lower()
    if arch in ("aarch64", "arm64"):
        return "arm64"
    if arch not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return arch or "unknown"
    if "amx_int8" in flags:
        return "x86-64-amx"
    if "avx512_vnni" in flags:
        return "x86-64-avx512-vnni"
    if "avx_vnni" in flags:
        return "x86-64-avx-vnni"
    if "avx512bw" in flags:
        return "x86-64-avx512"
    if "avx2" in flags:
        return "x86-64-avx2"
    return "x86-64"


def _cpuinfo(path: Path) -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


@functools.cache
def this_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's CPU (Linux reads /proc/cpuinfo; elsewhere only the architecture)."""
    arch = platform.machine()
    model, flags = _cpuinfo(cpuinfo)
    model = model or platform.processor() or arch
    kept = tuple(f for f in INT8_FLAGS if f in flags)
    return CpuInfo(model=model, arch=arch, cpu_class=classify(arch, flags), flags=kept)


def cpu_class_of(record: dict | None) -> str | None:
    """The class a report's ``measured_on`` record names (None when it names none)."""
    if not isinstance(record, dict):
        return None
    value = record.get("cpu_class")
    return value if isinstance(value, str) else None


def cpu_record() -> dict:
    """This CPU as benchmark results name it: model, int8 class and the int8 flags."""
    cpu = this_cpu()
    return {"cpu": cpu.model, "cpu_class": cpu.cpu_class, "cpu_flags": list(cpu.flags)}
