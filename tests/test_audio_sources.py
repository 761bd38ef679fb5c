"""Audio sources: resampling, WAV and media files, the microphone's capture side."""

from __future__ import annotations

import struct
import threading

import cv2
import numpy as np
import pytest

from emolive.runtime.media import AUDIO_RATE
from emolive.runtime.sources.audio_files import (
    FileSourceConfig,
    MediaAudioSource,
    SyntheticAudioSource,
    WavSource,
    open_audio_file,
)
from emolive.runtime.sources.errors import AudioDeviceError, AudioSourceError, NoAudioTrack
from emolive.runtime.sources.microphone import (
    CaptureBuffer,
    InputDevice,
    choose_device,
    list_input_devices,
)
from emolive.runtime.sources.resample import Resampler, resample, to_mono
from emolive.runtime.sources.wav import read_wav_info, write_wav


def sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(
        np.float32
    )


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_tone_matches_the_ideal_tone(rate):
    y = resample(sine(1000, rate), rate, AUDIO_RATE)
    assert len(y) == AUDIO_RATE
    ideal = sine(1000, AUDIO_RATE)
    assert np.abs(y - ideal)[200:-200].max() < 2e-3


def test_streaming_in_ragged_chunks_equals_one_shot():
    x = sine(440, 44100, 2.0) + sine(3000, 44100, 2.0, 0.2)
    whole = resample(x, 44100, AUDIO_RATE)
    r, parts, i = Resampler(44100, AUDIO_RATE), [], 0
    for n in np.random.default_rng(0).integers(1, 3000, 200):
        parts.append(r.process(x[i : i + n]))
        i += n
        if i >= len(x):
            break
    parts.append(r.process(x[i:]))
    parts.append(r.flush())
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def test_downsampling_removes_what_16k_cannot_hold():
    y = resample(sine(10_000, 48_000), 48_000, AUDIO_RATE)  # would alias to 6 kHz
    assert 20 * np.log10(np.abs(y[300:-300]).max() / 0.5) < -60


def test_stereo_is_averaged():
    x = np.stack([np.ones(10), -np.ones(10) * 0.5], axis=1)
    np.testing.assert_allclose(to_mono(x), 0.25)
    with pytest.raises(ValueError, match="shape"):
        to_mono(np.zeros((2, 3, 4)))


def _write_raw_wav(path, data: bytes, tag: int, channels: int, rate: int, bits: int):
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits
    )
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", 16) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def test_wav_formats_read_back_to_the_same_signal(tmp_path):
    x = sine(300, AUDIO_RATE, 0.5)
    cases = {
        "f32": (x.astype("<f4").tobytes(), 3, 32),
        "i16": ((x * 32767).round().astype("<i2").tobytes(), 1, 16),
        "i32": ((x * 2**31).round().astype("<i4").tobytes(), 1, 32),
        "u8": ((x * 127 + 128).round().astype(np.uint8).tobytes(), 1, 8),
    }
    v = (x * 2**23).round().astype(np.int32)
    cases["i24"] = (
        np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], 1).astype(np.uint8).tobytes(),
        1,
        24,
    )
    for name, (data, tag, bits) in cases.items():
        path = tmp_path / f"{name}.wav"
        _write_raw_wav(path, data, tag, 1, AUDIO_RATE, bits)
        y = np.concatenate([c.samples for c in WavSource(path)])
        tol = 1e-2 if bits == 8 else 1e-4
        np.testing.assert_allclose(y, x, atol=tol, err_msg=name)


def test_48k_stereo_wav_becomes_16k_mono_with_media_time(tmp_path):
    left, right = sine(500, 48_000, 2.0), sine(500, 48_000, 2.0)
    path = write_wav(tmp_path / "st.wav", np.stack([left, right], 1), 48_000)
    src = WavSource(path, FileSourceConfig(chunk_samples=1000, t0=5.0))
    chunks = list(src)
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in chunks)
    assert sum(len(c.samples) for c in chunks) == 2 * AUDIO_RATE
    assert chunks[0].t == 5.0
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.t == pytest.approx(a.end)  # contiguous on the session clock
    y = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(y[500:-500], sine(500, AUDIO_RATE, 2.0)[500:-500], atol=3e-3)


def test_8k_wav_is_upsampled(tmp_path):
    path = write_wav(tmp_path / "tel.wav", sine(400, 8000, 1.0), 8000)
    assert read_wav_info(path).rate == 8000
    y = np.concatenate([c.samples for c in open_audio_file(path)])
    assert len(y) == AUDIO_RATE


def test_bad_wav_files_are_named(tmp_path):
    bad = tmp_path / "junk.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(AudioSourceError, match="junk.wav.*not a RIFF/WAVE"):
        WavSource(bad)
    alaw = tmp_path / "alaw.wav"
    _write_raw_wav(alaw, b"\0" * 100, 6, 1, 8000, 8)
    with pytest.raises(AudioSourceError, match="alaw.wav.*format tag 0x6"):
        WavSource(alaw)
    with pytest.raises(AudioSourceError, match="missing.wav.*does not exist"):
        open_audio_file(tmp_path / "missing.wav")


def test_video_file_audio_track(media):
    src = MediaAudioSource(media / "single_face.mp4")
    assert src.rate == 44100 and src.channels == 2
    chunks = list(src)
    y = np.concatenate([c.samples for c in chunks])
    # ~2.4 s clip: the audio track's length at 16 kHz, starting at the media's time 0.
    assert 2.0 < len(y) / AUDIO_RATE < 2.6
    assert 0.0 <= chunks[0].t < 0.1
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.5


def test_file_with_no_audio_track_is_a_clear_error(tmp_path):
    path = tmp_path / "silent.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(5):
        out.write(np.zeros((48, 64, 3), np.uint8))
    out.release()
    with pytest.raises(NoAudioTrack, match="silent.mp4 has no audio track.*video"):
        open_audio_file(path)


def test_synthetic_source_paces_on_the_clock():
    from emolive.runtime.media import SessionClock

    clock = SessionClock()
    src = SyntheticAudioSource(
        np.zeros(AUDIO_RATE // 4, np.float32),
        config=FileSourceConfig(512, realtime=True),
        clock=clock,
    )
    for c in src:
        assert clock.now() >= c.end - 1e-3  # never delivered before it was "captured"


# -- microphone ------------------------------------------------------------------------------
DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC3246 Analog", 2, 44100, is_default=True),
    InputDevice(3, "USB Audio Device: Mic", 1, 48000),
    InputDevice(5, "USB PnP Sound Device", 1, 48000),
]


def test_device_chosen_by_index_name_or_default():
    assert choose_device(DEVICES, None).index == 0
    assert choose_device(DEVICES, 3).index == 3
    assert choose_device(DEVICES, "5").index == 5
    assert choose_device(DEVICES, "pnp").index == 5


def test_unknown_or_ambiguous_device_lists_what_there_is():
    with pytest.raises(AudioDeviceError, match=r"index 7.*\[0\] HDA Intel.*\[3\] USB Audio"):
        choose_device(DEVICES, 7)
    with pytest.raises(AudioDeviceError, match=r"named 'webcam'.*\[5\] USB PnP"):
        choose_device(DEVICES, "webcam")
    with pytest.raises(AudioDeviceError, match="ambiguous"):
        choose_device(DEVICES, "usb")
    with pytest.raises(AudioDeviceError, match="no audio input device found.*video-only"):
        choose_device([], None)


def test_real_portaudio_device_listing():
    pytest.importorskip("pyaudio")
    devices = list_input_devices()
    if devices:
        pytest.skip(f"this machine has a microphone: {devices[0]}")
    from emolive.runtime.sources.microphone import MicrophoneConfig, MicrophoneSource

    with pytest.raises(AudioDeviceError, match="no audio input device found"):
        MicrophoneSource(MicrophoneConfig(device="USB"))


class StepClock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t


def test_capture_buffer_stamps_resamples_and_counts():
    clock = StepClock()
    cap = CaptureBuffer(48_000, clock, ring_seconds=1.0, overflow_flag=2, name="mic:test")
    block = 480  # 10 ms callbacks
    x = sine(440, 48_000, 0.5)
    for i in range(0, len(x), block):
        clock.t = 10.0 + (i + block) / 48_000  # the callback runs when its block is complete
        cap.on_audio(x[i : i + block].tobytes(), block, {}, 2 if i == 0 else 0)
    cap.stopped.set()
    chunks = list(cap.chunks(512))
    assert cap.stats.overflows == 1 and cap.stats.dropped_samples == 0
    assert chunks[0].t == pytest.approx(10.0, abs=1e-6)
    assert chunks[1].t == pytest.approx(10.0 + 512 / AUDIO_RATE, abs=1e-6)
    y = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(
        y[300:-300], sine(440, AUDIO_RATE, 0.5)[300 : len(y) - 300], atol=3e-3
    )


def test_capture_ring_overrun_drops_oldest_and_restarts_timeline():
    clock = StepClock()
    cap = CaptureBuffer(AUDIO_RATE, clock, ring_seconds=0.1)  # 1600 samples
    for k in range(5):  # 5 x 1000 samples, reader asleep
        clock.t = (k + 1) * 1000 / AUDIO_RATE
        cap.on_audio(np.full(1000, k, np.float32).tobytes(), 1000, {}, 0)
    assert cap.stats.dropped_samples == 5000 - 1600
    cap.stopped.set()
    chunks = list(cap.chunks(400))
    # What is left is the newest 1600 samples, stamped with their own capture time.
    assert chunks[0].t == pytest.approx(3400 / AUDIO_RATE, abs=1e-6)
    assert chunks[-1].samples[-1] == 4


def test_capture_reader_in_its_own_thread_stops():
    cap = CaptureBuffer(AUDIO_RATE, StepClock())
    got = []
    reader = threading.Thread(target=lambda: got.extend(cap.chunks(512, poll_s=0.01)))
    reader.start()
    cap.on_audio(np.zeros(2048, np.float32).tobytes(), 2048, {}, 0)
    cap.stopped.set()
    reader.join(2.0)
    assert not reader.is_alive() and len(got) == 4


def test_keyword_microphone_without_a_device_is_a_clear_error():
    pytest.importorskip("pyaudio")
    from emolive.runtime.sources.microphone import Microphone

    if list_input_devices():
        pytest.skip("this machine has a microphone")
    with pytest.raises(AudioDeviceError, match="no audio input device found"):
        Microphone(device="USB")


def test_paced_synthetic_source_loses_no_chunk_to_a_realtime_consumer():
    """A realtime session hands chunks over with ``put`` (never waiting, as for a microphone).
    Unpaced, a synthetic source floods the stage's bounded queue and most chunks are dropped
    (2,282 of 2,813 in a 180 s session); paced on the session clock, none are."""
    from emolive.runtime.audio.analyzers import ProsodyAnalyzer
    from emolive.runtime.audio.stage import AudioStage, AudioStageConfig
    from emolive.runtime.audio.vad import SileroVad
    from emolive.runtime.media import SessionClock
    from tests.audio_speech import vad_path

    def session_like(realtime: bool):
        clock = SessionClock()
        stage = AudioStage(
            SileroVad(vad_path()),
            [ProsodyAnalyzer()],
            AudioStageConfig(queue_chunks=8),  # 0.5 s of 64 ms chunks: flooding shows at once
            clock=clock,
        )
        x = np.zeros(2 * AUDIO_RATE, np.float32)
        src = SyntheticAudioSource(x, config=FileSourceConfig(realtime=realtime), clock=clock)
        stage.start()
        sent = 0
        for chunk in src:
            stage.put(chunk)  # what Session._capture_audio does when realtime
            sent += 1
        stage.stop()
        assert stage.join(10) and stage.failure is None
        return sent, stage.stats.dropped, clock.now()

    sent, dropped, took = session_like(realtime=True)
    assert sent == 32 and dropped == 0 and took >= 2.0 - 1e-3
    sent, dropped, _ = session_like(realtime=False)
    assert sent == 32 and dropped > 0  # what the session's synthetic audio did
