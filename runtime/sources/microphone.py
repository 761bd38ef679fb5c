"""Microphone capture with PyAudio: a callback fills a ring buffer, a reader yields chunks.

The PortAudio callback only copies samples into the ring and notes the time; resampling and
chunking happen on the reader's side, so capture is never held up. Input overflows (the
driver lost samples) and ring overruns (the reader fell behind, oldest audio dropped) are
counted and reported in ``stats``, never fatal.

Time: a chunk is stamped with the session-clock time of its first sample. The callback
anchors the device's sample count to the clock and re-anchors when they drift apart by more
than ``_REANCHOR_S`` (an overflow, or a device clock that runs fast or slow).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from emolive.runtime.media import AUDIO_RATE, AudioChunk, SessionClock
from emolive.runtime.sources.errors import AudioDeviceError, missing_audio_extra
from emolive.runtime.sources.resample import Resampler

_REANCHOR_S = 0.05


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: int
    is_default: bool = False

    def __str__(self) -> str:
        star = " (default)" if self.is_default else ""
        return f"[{self.index}] {self.name}, {self.channels} ch, {self.default_rate} Hz{star}"


@dataclass(frozen=True)
class MicrophoneConfig:
    device: int | str | None = None  # index, part of the name, or None for the default
    chunk_samples: int = 512  # per yielded chunk at 16 kHz (32 ms, one VAD frame)
    ring_seconds: float = 10.0  # audio kept while the reader is behind
    frames_per_buffer: int = 512  # PortAudio callback size at the device rate


@dataclass
class MicrophoneStats:
    overflows: int = 0  # callbacks flagged paInputOverflow by PortAudio
    dropped_samples: int = 0  # oldest samples overwritten because the reader fell behind
    captured_samples: int = 0
    reanchors: int = 0

    def as_dict(self) -> dict:
        return dict(vars(self))


def _pyaudio():
    try:
        import pyaudio
    except ImportError as e:
        raise missing_audio_extra("pyaudio", "microphone capture") from e
    return pyaudio


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide what ALSA/JACK print straight to fd 2 while PortAudio probes devices.

    PortAudio reports real failures through its return codes (raised by PyAudio); the text
    ALSA writes while probing absent cards would only bury our own error message.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (pytest capture, services)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def open_portaudio():
    with _quiet_native_stderr():
        return _pyaudio().PyAudio()


def list_input_devices(pa=None) -> list[InputDevice]:
    """The input devices PortAudio sees; empty when there is no microphone."""
    own = pa is None
    pa = pa or open_portaudio()
    try:
        try:
            default = pa.get_default_input_device_info()["index"]
        except OSError:
            default = None
        devices = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if int(info.get("maxInputChannels", 0)) > 0:
                devices.append(
                    InputDevice(
                        i,
                        str(info["name"]),
                        int(info["maxInputChannels"]),
                        int(info["defaultSampleRate"]),
                        i == default,
                    )
                )
        return devices
    finally:
        if own:
            pa.terminate()


def choose_device(devices: list[InputDevice], wanted: int | str | None) -> InputDevice:
    """The device asked for by index or (part of its) name; the default one for None."""
    if not devices:
        raise AudioDeviceError(
            "no audio input device found (no microphone); connect one, or run the session "
            "video-only"
        )
    listing = "; ".join(str(d) for d in devices)
    if wanted is None:
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.strip().isdigit()):
        idx = int(wanted)
        for d in devices:
            if d.index == idx:
                return d
        raise AudioDeviceError(f"no audio input device with index {idx}; input devices: {listing}")
    hits = [d for d in devices if wanted.lower() in d.name.lower()]
    exact = [d for d in hits if d.name.lower() == wanted.lower()]
    if len(exact) == 1 or len(hits) == 1:
        return (exact or hits)[0]
    if not hits:
        raise AudioDeviceError(f"no audio input device named {wanted!r}; input devices: {listing}")
    raise AudioDeviceError(
        f"audio input device name {wanted!r} is ambiguous ({len(hits)} match); "
        f"give an index: {'; '.join(str(d) for d in hits)}"
    )


class _Ring:
    """Fixed-size float32 ring; the writer never waits, the oldest samples go first."""

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(capacity, np.float32)
        self.write = 0  # total samples written
        self.read = 0  # total samples read
        self.cond = threading.Condition()

    def push(self, x: np.ndarray) -> int:
        """Append; returns how many unread samples were overwritten."""
        cap = len(self.buf)
        with self.cond:
            x = x[-cap:]
            pos = self.write % cap
            first = min(len(x), cap - pos)
            self.buf[pos : pos + first] = x[:first]
            self.buf[: len(x) - first] = x[first:]
            self.write += len(x)
            lost = max(0, self.write - self.read - cap)
            self.read += lost
            self.cond.notify_all()
            return lost

    def pop(self, timeout: float) -> tuple[int, np.ndarray]:
        """(index of the first sample, samples) of everything unread; waits up to timeout."""
        cap = len(self.buf)
        with self.cond:
            if self.write == self.read:
                self.cond.wait(timeout)
            start, n = self.read, self.write - self.read
            idx = (start + np.arange(n)) % cap
            self.read = self.write
            return start, self.buf[idx]


class CaptureBuffer:
    """The capture side: PortAudio's callback writes here, ``chunks()`` reads 16 kHz chunks.

    Separate from the PyAudio stream so it can be driven (and tested) without a device.
    """

    def __init__(
        self,
        rate: int,
        clock,
        ring_seconds: float = 10.0,
        overflow_flag: int = 2,  # paInputOverflow
        name: str = "mic",
    ) -> None:
        self.rate = int(rate)
        self.clock = clock
        self.overflow_flag = overflow_flag
        self.name = name
        self.stats = MicrophoneStats()
        self.stopped = threading.Event()
        self._ring = _Ring(int(ring_seconds * self.rate))
        self._anchors: list[tuple[int, float]] = []  # (device sample index, session time)

    # PortAudio's thread: copy, stamp, count; nothing that can block.
    def on_audio(self, in_data, frame_count, time_info, status) -> None:
        if status & self.overflow_flag:
            self.stats.overflows += 1
        x = np.frombuffer(in_data, np.float32)
        start = self._ring.write
        t_first = self.clock.now() - len(x) / self.rate
        if not self._anchors or abs(self.time_of(start) - t_first) > _REANCHOR_S:
            if self._anchors:
                self.stats.reanchors += 1
            self._anchors.append((start, t_first))
            del self._anchors[:-64]
        self.stats.dropped_samples += self._ring.push(x)
        self.stats.captured_samples += len(x)

    def time_of(self, index: int) -> float:
        """Session time of device sample ``index``."""
        keys = [a[0] for a in self._anchors]
        i = max(0, bisect.bisect_right(keys, index) - 1)
        a_idx, a_t = self._anchors[i]
        return a_t + (index - a_idx) / self.rate

    def chunks(self, chunk_samples: int = 512, poll_s: float = 0.1) -> Iterator[AudioChunk]:
        """16 kHz chunks until ``stopped`` is set (and the ring is drained)."""
        resampler = Resampler(self.rate, AUDIO_RATE)
        n = chunk_samples
        pending = np.zeros(0, np.float32)
        out_index = 0  # 16 kHz samples yielded since raw_base
        raw_base = raw_next = None
        while True:
            start, raw = self._ring.pop(0.0 if self.stopped.is_set() else poll_s)
            if not len(raw):
                if self.stopped.is_set():
                    return
                continue
            if start != raw_next:
                # First read, or the ring dropped audio we never saw: restart the timeline.
                resampler = Resampler(self.rate, AUDIO_RATE)
                pending = np.zeros(0, np.float32)
                raw_base, out_index = start, 0
            raw_next = start + len(raw)
            pending = np.concatenate([pending, resampler.process(raw)])
            while len(pending) >= n:
                # Output sample j sits at device sample j * rate / 16000 (zero-phase filter).
                t = self.time_of(raw_base + out_index * self.rate // AUDIO_RATE)
                yield AudioChunk(t, pending[:n].copy(), self.name)
                pending = pending[n:]
                out_index += n


class MicrophoneSource:
    """Live capture; iterate for chunks until ``stop()``. Use as a context manager.

    Iterating starts the stream if ``start()`` was not called; pass the session's clock so
    chunks share the video's timeline.
    """

    live = True  # a session paces nothing: capture runs at the speed of the world

    def __init__(self, config: MicrophoneConfig | None = None, clock=None) -> None:
        self.pyaudio = _pyaudio()
        self.config = config or MicrophoneConfig()
        self.clock = clock or SessionClock()
        self._pa = open_portaudio()
        try:
            self.device = choose_device(list_input_devices(self._pa), self.config.device)
            self.rate = self._pick_rate()
        except AudioDeviceError:
            self._pa.terminate()
            raise
        self.capture = CaptureBuffer(
            self.rate,
            self.clock,
            self.config.ring_seconds,
            overflow_flag=self.pyaudio.paInputOverflow,
            name=f"mic:{self.device.name}",
        )
        self._stream = None

    @property
    def stats(self) -> MicrophoneStats:
        return self.capture.stats

    def _pick_rate(self) -> int:
        # Ask for 16 kHz first; many USB microphones only do 44.1/48 kHz, which we resample.
        for rate in (AUDIO_RATE, self.device.default_rate, 48_000, 44_100):
            try:
                self._pa.is_format_supported(
                    rate,
                    input_device=self.device.index,
                    input_channels=1,
                    input_format=self.pyaudio.paFloat32,
                )
                return int(rate)
            except ValueError:
                continue
        raise AudioDeviceError(
            f"audio input device {self.device} accepts none of 16000/44100/48000 Hz mono float32"
        )

    def _callback(self, in_data, frame_count, time_info, status):
        self.capture.on_audio(in_data, frame_count, time_info, status)
        return None, self.pyaudio.paContinue

    def start(self) -> MicrophoneSource:
        try:
            self._stream = self._pa.open(
                format=self.pyaudio.paFloat32,
                channels=1,
                rate=self.rate,
                input=True,
                input_device_index=self.device.index,
                frames_per_buffer=self.config.frames_per_buffer,
                stream_callback=self._callback,
            )
        except OSError as e:
            raise AudioDeviceError(f"could not open audio input device {self.device}: {e}") from e
        return self

    def stop(self) -> None:
        self.capture.stopped.set()

    def close(self) -> None:
        self.capture.stopped.set()
        if self._stream is not None:
            self._stream.stop_stream()
            self._stream.close()
            self._stream = None
        self._pa.terminate()

    def __enter__(self) -> MicrophoneSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[AudioChunk]:
        if self._stream is None:
            self.start()
        return self.capture.chunks(self.config.chunk_samples)


class Microphone(MicrophoneSource):
    """``MicrophoneSource`` by keywords: ``Microphone(device="USB", clock=session.clock)``."""

    def __init__(
        self,
        device: int | str | None = None,
        clock=None,
        chunk_samples: int = 512,
    ) -> None:
        super().__init__(MicrophoneConfig(device=device, chunk_samples=chunk_samples), clock)
