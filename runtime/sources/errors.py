"""Typed errors of the audio stage; each names the file, device or field at fault."""

from __future__ import annotations


class AudioSourceError(RuntimeError):
    """An audio source could not be opened or read."""


class NoAudioTrack(AudioSourceError):
    """A media file has no audio stream."""


class AudioDeviceError(AudioSourceError):
    """A microphone is missing, unknown or refuses the requested format."""


class AudioDependencyError(RuntimeError):
    """An optional audio package is not installed."""


def missing_audio_extra(package: str, what: str) -> AudioDependencyError:
    return AudioDependencyError(
        f"{what} needs the {package!r} package, which is not installed: "
        f"pip install 'emo-live[audio]'"
    )
