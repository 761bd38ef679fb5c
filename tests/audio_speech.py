"""Speech made on the spot with Debian's espeak-ng, read back at 16 kHz (tests only)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from emolive.export.sources import fetch

SENTENCES = (
    "The weather is lovely today and I feel great.",
    "I cannot believe you forgot my birthday again.",
    "Please leave the door open when you go out.",
)


def need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return exe


def speak(text: str, words_per_minute: int = 160, pitch: int = 50) -> np.ndarray:
    """16 kHz mono float32 speech of ``text``."""
    from emolive.runtime.sources.audio_files import WavSource

    exe = need_espeak()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            [exe, "-w", str(wav), "-s", str(words_per_minute), "-p", str(pitch), text],
            check=True,
            capture_output=True,
        )
        return np.concatenate([c.samples for c in WavSource(wav)])


def vad_path() -> Path:
    return fetch("silero-vad").path("silero_vad.onnx")


def whisper_dir() -> Path:
    return fetch("whisper-tiny-en").path("model/model.bin").parent


def words(text: str) -> list[str]:
    return "".join(ch.lower() if ch.isalnum() or ch == "'" else " " for ch in text).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))
