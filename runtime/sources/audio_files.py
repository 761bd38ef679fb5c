"""Audio sources: WAV file, any media file's audio track (PyAV), synthetic signal.

Every source yields ``AudioChunk`` s of 16 kHz mono float32, whatever the input's rate and
channel count (stereo is averaged, other rates resampled). File sources stamp chunks with
the media's own time (plus ``t0``), exactly as the video file source stamps frames, so an
utterance lines up with the frames it was spoken over; with ``realtime=True`` they are
paced on the session clock like a live capture. The microphone lives in ``microphone.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.media import AUDIO_RATE, AudioChunk, SessionClock, file_damage, paced
from emolive.runtime.sources.errors import AudioSourceError, NoAudioTrack, missing_audio_extra
from emolive.runtime.sources.resample import Resampler, to_mono
from emolive.runtime.sources.wav import iter_wav_blocks, read_wav_info

WAV_SUFFIXES = (".wav", ".wave")


@dataclass(frozen=True)
class FileSourceConfig:
    chunk_samples: int = 1024  # per yielded chunk, at 16 kHz (64 ms)
    t0: float = 0.0  # session time of the file's start
    realtime: bool = False  # pace chunks on the session clock, as a live capture would


class _Rechunker:
    """Turns blocks at any rate/channel count into fixed-size 16 kHz mono chunks."""

    def __init__(self, rate_in: int, chunk: int, t0: float, name: str) -> None:
        if chunk < 1:
            raise ValueError(f"chunk_samples must be >= 1, got {chunk}")
        self.resampler = Resampler(rate_in, AUDIO_RATE)
        self.chunk = chunk
        self.t0 = t0
        self.name = name
        self.emitted = 0
        self._pending = np.zeros(0, np.float32)

    def _cut(self, final: bool) -> Iterator[AudioChunk]:
        while len(self._pending) >= self.chunk or (final and len(self._pending)):
            piece, self._pending = self._pending[: self.chunk], self._pending[self.chunk :]
            yield AudioChunk(self.t0 + self.emitted / AUDIO_RATE, piece, self.name)
            self.emitted += len(piece)

    def feed(self, block: np.ndarray) -> Iterator[AudioChunk]:
        y = self.resampler.process(to_mono(block))
        self._pending = np.concatenate([self._pending, y])
        yield from self._cut(final=False)

    def finish(self) -> Iterator[AudioChunk]:
        self._pending = np.concatenate([self._pending, self.resampler.flush()])
        yield from self._cut(final=True)


class _ChunkedSource:
    """What the file and synthetic sources share: chunks from ``_chunks()``, paced on the
    session clock when ``config.realtime`` (a file replayed like a live capture)."""

    live = False
    config: FileSourceConfig
    clock: SessionClock | None

    def _chunks(self) -> Iterator[AudioChunk]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[AudioChunk]:
        it = self._chunks()
        if self.config.realtime:
            return paced(it, self.clock or SessionClock(), due=lambda c: c.end)
        return it


class WavSource(_ChunkedSource):
    """A WAV file, streamed from disk."""

    def __init__(
        self,
        path: Path | str,
        config: FileSourceConfig = FileSourceConfig(),
        clock: SessionClock | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = read_wav_info(self.path)
        self.config = config
        self.clock = clock
        self.name = f"wav:{self.path.name}"

    @property
    def duration(self) -> float:
        return self.info.duration

    def _chunks(self) -> Iterator[AudioChunk]:
        r = _Rechunker(self.info.rate, self.config.chunk_samples, self.config.t0, self.name)
        for block in iter_wav_blocks(self.info, frames_per_block=self.info.rate // 2):
            yield from r.feed(block)
        yield from r.finish()


class MediaAudioSource(_ChunkedSource):
    """The first audio stream of a media file (mp4, mov, mkv, mp3, flac, ...), via PyAV."""

    def __init__(
        self,
        path: Path | str,
        config: FileSourceConfig = FileSourceConfig(),
        clock: SessionClock | None = None,
        stream_index: int = 0,
    ) -> None:
        try:
            import av
        except ImportError as e:
            raise missing_audio_extra("av", f"reading the audio of {path}") from e
        self._av = av
        self.path = Path(path)
        if not self.path.is_file():
            raise AudioSourceError(f"media file {self.path} does not exist")
        damage = file_damage(self.path)
        if damage is not None and damage.startswith("is empty"):
            raise AudioSourceError(f"media file {self.path} {damage}")
        try:
            with av.open(str(self.path)) as container:
                streams = list(container.streams.audio)
                kinds = sorted({s.type for s in container.streams})
        except av.error.FFmpegError as e:
            why = f"the file {damage}" if damage is not None else str(e)
            raise AudioSourceError(f"cannot open media file {self.path}: {why}") from e
        if not streams and damage is not None:
            # A cut-short file can open with only some of its streams known.
            raise AudioSourceError(f"cannot read the audio of {self.path}: the file {damage}")
        if not streams:
            raise NoAudioTrack(
                f"{self.path} has no audio track (streams: {', '.join(kinds) or 'none'}); "
                f"run the session video-only or give an audio file"
            )
        if stream_index >= len(streams):
            raise AudioSourceError(
                f"{self.path} has {len(streams)} audio streams; stream {stream_index} asked for"
            )
        self.stream_index = stream_index
        self.rate = streams[stream_index].rate
        self.channels = streams[stream_index].channels
        self.config = config
        self.clock = clock
        self.name = f"media:{self.path.name}"

    def _chunks(self) -> Iterator[AudioChunk]:
        av = self._av
        # PyAV converts to float mono; our own resampler does the rate, as for every source.
        to_flt = None
        rechunker = None
        with av.open(str(self.path)) as container:
            stream = container.streams.audio[self.stream_index]
            # Times from the container's start, as the video file source's frames are from
            # its stream's start: an MPEG-TS file starts at 1.4 s, and the audio must not
            # run 1.4 s behind the frames it was recorded with.
            origin = container.start_time / 1e6 if container.start_time is not None else 0.0
            try:
                for frame in container.decode(stream):
                    if rechunker is None:
                        pts = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                        start = round(pts - origin, 6)  # start_time is in microseconds
                        to_flt = av.AudioResampler(format="flt", layout="mono", rate=frame.rate)
                        rechunker = _Rechunker(
                            frame.rate, self.config.chunk_samples, self.config.t0 + start, self.name
                        )
                    for f in to_flt.resample(frame):
                        yield from rechunker.feed(f.to_ndarray().reshape(-1))
            except av.error.FFmpegError as e:
                damage = file_damage(self.path)
                why = f"the file {damage}" if damage is not None else str(e)
                raise AudioSourceError(f"decoding the audio of {self.path} failed: {why}") from e
            if rechunker is not None:
                for f in to_flt.resample(None):
                    yield from rechunker.feed(f.to_ndarray().reshape(-1))
                yield from rechunker.finish()


def open_audio_file(
    path: Path | str,
    config: FileSourceConfig = FileSourceConfig(),
    clock: SessionClock | None = None,
) -> WavSource | MediaAudioSource:
    """A WAV reader for .wav (no extra needed), PyAV for everything else."""
    path = Path(path)
    if not path.exists():
        raise AudioSourceError(f"audio file {path} does not exist")
    if path.suffix.lower() in WAV_SUFFIXES:
        return WavSource(path, config, clock)
    return MediaAudioSource(path, config, clock)


class SyntheticAudioSource(_ChunkedSource):
    """A signal given as samples (any rate, mono or [n, channels]), cut into chunks.

    For tests and demos: it goes through the same resampling and chunking as a file.
    """

    def __init__(
        self,
        samples: np.ndarray,
        rate: int = AUDIO_RATE,
        config: FileSourceConfig = FileSourceConfig(),
        clock: SessionClock | None = None,
        name: str = "synthetic",
    ) -> None:
        self.samples = np.asarray(samples)
        self.rate = rate
        self.config = config
        self.clock = clock
        self.name = name

    def _chunks(self) -> Iterator[AudioChunk]:
        r = _Rechunker(self.rate, self.config.chunk_samples, self.config.t0, self.name)
        yield from r.feed(self.samples)
        yield from r.finish()
