"""Small video files with an audio track, made on the spot for the LLM profiles' live tests
(affectgpt, emotion_llama): frames written by OpenCV, 16 kHz mono audio, muxed by ffmpeg
into an H.264 + AAC mp4 as a phone would record one (the test is skipped where ffmpeg is
absent); and a session that reads such a file, every event checked against the schema."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest

RATE = 16000
SENTENCE = "I am so happy today, this is wonderful."


def mux(path: Path, frames: Iterable[np.ndarray], fps: int, audio: np.ndarray) -> Path:
    """``frames`` (BGR uint8, one size) at ``fps`` and ``audio`` (float in [-1, 1] at 16 kHz)
    -> ``path`` (.mp4), cut to the shorter of the two."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("needs ffmpeg")
    frames = list(frames)
    h, w = frames[0].shape[:2]
    silent = path.with_suffix(".avi")
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for img in frames:
        writer.write(img)
    writer.release()
    wav = path.with_suffix(".wav")
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(RATE)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(silent), "-i", str(wav),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(path)], check=True)  # fmt: skip
    return path


def clip_with_audio(path: Path, seconds: float = 3.0) -> Path:
    """15 fps of a red disc moving over a grey that brightens, and a 220 Hz tone."""
    frames = []
    for i in range(int(seconds * 15)):
        img = np.full((120, 160, 3), (i * 5) % 255, np.uint8)
        cv2.circle(img, (20 + 3 * i, 60), 15, (0, 0, 255), -1)
        frames.append(img)
    t = np.arange(int(RATE * seconds)) / RATE
    return mux(path, frames, 15, 0.3 * np.sin(2 * np.pi * 220 * t))


def face_clip(path: Path, face: np.ndarray, seconds: float = 4.0, fps: int = 10) -> Path:
    """``face`` for the first half (moving a little), an empty room for the second; a voice
    speaking ``SENTENCE`` at the start."""
    from tests.audio_speech import speak

    small = cv2.resize(face, (200, 200))
    frames = []
    for i in range(int(seconds * fps)):
        img = np.full((240, 320, 3), 90, np.uint8)
        if i < seconds * fps / 2:
            x = 40 + 2 * i
            img[20:220, x : x + 200] = small
        frames.append(img)
    voice = speak(SENTENCE)
    audio = np.zeros(int(RATE * seconds), np.float32)
    audio[4000 : 4000 + len(voice)] = voice[: len(audio) - 4000]
    return mux(path, frames, fps, audio)


def read_file(bundle: Path, clip: Path, every_s: float) -> tuple[list[dict], list[dict], dict]:
    """A session over ``clip`` as a file (not paced in real time), a reading at least every
    ``every_s`` over the FER labels: (its events, the readings among them, its statistics)."""
    from emolive.runtime.names import FER_LABELS
    from emolive.runtime.readings import validate
    from emolive.runtime.session import Session, SessionConfig

    config = SessionConfig(bundle=bundle, source=str(clip), every_s=every_s, labels=FER_LABELS,
                           realtime=False)  # fmt: skip
    with Session(config) as session:
        events = list(session)
    for e in events:
        validate(e)
    return events, [e for e in events if e["type"] == "reading"], session.stats()
