"""Where frames and audio come from: camera, microphone, video and audio files, synthetic.

Every source yields timestamped ``Frame`` s or 16 kHz mono ``AudioChunk`` s on one session
clock (``emolive.runtime.media``). Capture knows nothing of inference: nothing here imports a
stage, a backend or ONNX Runtime (``tests/test_import_rules.py`` holds it to that).

``open_sources`` turns the user's source options (``--source``, ``--audio-source``,
``--no-audio`` / ``--no-video``) into the video and audio sources of one session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emolive.runtime.media import AUDIO_RATE, SessionClock
from emolive.runtime.sources.errors import AudioSourceError
from emolive.runtime.sources.video import (
    Camera,
    SourceError,
    StillImage,
    SyntheticVideo,
    open_video,
)

SYNTHETIC_S = 10.0  # length of `--source synthetic` without --duration

__all__ = ["SYNTHETIC_S", "OpenedSources", "SourceError", "open_sources"]


@dataclass
class OpenedSources:
    """A session's sources. ``realtime``: whether they are paced like live capture."""

    video: object | None
    audio: object | None
    realtime: bool
    notes: list[str] = field(default_factory=list)


def is_microphone(spec: str) -> bool:
    return spec == "mic" or spec.startswith("mic:")


def open_sources(
    source: str,
    *,
    video: bool = True,
    audio: bool = True,
    audio_source: str | None = None,
    duration: float | None = None,
    realtime: bool | None = None,
    clock: SessionClock,
) -> OpenedSources:
    """Open the video source ``source`` (a camera index, "camera:N", a file, or "synthetic")
    and its audio: ``audio_source`` when given, else the video file's track, the default
    microphone beside a camera, or ``source`` itself when video is off. ``realtime`` None:
    live sources are real time, files are read as fast as they are analysed."""
    opened_video = None
    if video:
        opened_video = (
            SyntheticVideo(seconds=duration or SYNTHETIC_S)
            if source == "synthetic"
            else open_video(source, clock)
        )
    live = opened_video.live if opened_video is not None else is_microphone(audio_source or source)
    realtime = live if realtime is None else realtime
    notes: list[str] = []
    if audio and isinstance(opened_video, StillImage) and audio_source is None:
        audio = False  # an image has no audio track
        notes.append("video only: the source is a still image, which has no audio")
    opened_audio = None
    if audio:
        opened_audio = _open_audio(source, audio_source, opened_video, duration, realtime, clock)
    return OpenedSources(opened_video, opened_audio, realtime, notes)


def _open_audio(source, spec, video, duration, realtime, clock):
    from emolive.runtime.sources.audio_files import FileSourceConfig, open_audio_file

    if spec is None and source == "synthetic":
        from emolive.runtime.sources.audio_files import SyntheticAudioSource

        seconds = duration or SYNTHETIC_S
        # Paced like a file: unpaced, it filled the audio queue at once and lost most chunks.
        return SyntheticAudioSource(
            np.zeros(int(seconds * AUDIO_RATE), np.float32),
            config=FileSourceConfig(realtime=realtime),
            clock=clock,
        )
    if spec is None and isinstance(video, Camera):
        spec = "mic"
    if spec is None and video is None:
        spec = source
    if spec is None:
        spec = str(getattr(video, "path", ""))
    try:
        if is_microphone(spec):
            from emolive.runtime.sources.microphone import Microphone

            device = spec.split(":", 1)[1] if ":" in spec else None
            return Microphone(
                device=int(device) if device and device.isdigit() else device, clock=clock
            )
        # A file replayed in real time is paced on the session clock, like the video.
        return open_audio_file(spec, FileSourceConfig(realtime=realtime), clock=clock)
    except AudioSourceError as e:
        raise AudioSourceError(f"{e} (or run video-only: --no-audio)") from e
