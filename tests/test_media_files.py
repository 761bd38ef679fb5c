"""Video and audio files as they come: variable frame rate, empty, cut short."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from emolive.runtime.media import file_damage
from emolive.runtime.sources.audio_files import MediaAudioSource, WavSource, open_audio_file
from emolive.runtime.sources.errors import AudioSourceError
from emolive.runtime.sources.video import SourceError, VideoFile, open_video
from emolive.runtime.sources.wav import write_wav

av = pytest.importorskip("av", reason="writing test media needs PyAV (emo-live[audio])")


def _bgr(i: int) -> np.ndarray:
    """A frame that says which one it is: gray level 6 * i (up to frame 42)."""
    return np.full((48, 64, 3), (6 * i) % 256, np.uint8)


def write_vfr(path, times_s, codec="mpeg4") -> None:
    """A clip whose frame i is shown at ``times_s[i]`` (ms precision): variable frame rate."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        s.bit_rate = 8_000_000  # near-lossless: each frame's gray level survives
        for i, t in enumerate(times_s):
            f = av.VideoFrame.from_ndarray(_bgr(i), format="bgr24")
            f.pts, f.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_av_clip(path, seconds=2.0, start_s=0.0) -> None:
    """25 fps video and a 48 kHz tone from ``start_s`` on the container's clock, muxed as
    PyAV writes them (index at the end)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.time_base = v.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        for i in range(int(25 * seconds)):
            f = av.VideoFrame.from_ndarray(_bgr(i), format="bgr24")
            f.pts, f.time_base = int(round((start_s + i / 25) * 1000)), Fraction(1, 1000)
            for p in v.encode(f):
                c.mux(p)
        n = int(48000 * seconds)
        x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
        for k in range(0, n, 1024):
            f = av.AudioFrame.from_ndarray(x[None, k : k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts = 48000, k + int(round(start_s * 48000))
            for p in a.encode(f):
                c.mux(p)
        for s in (v, a):
            for p in s.encode():
                c.mux(p)


# -- variable frame rate ----------------------------------------------------------------------
@pytest.mark.parametrize("suffix,codec", [("mp4", "mpeg4"), ("mkv", "mpeg4"), ("mp4", "libx264")])
def test_variable_frame_rate_frames_carry_their_presentation_time(tmp_path, suffix, codec):
    # A phone-like clip: bursts at 50 fps, stills held for 0.5 and 2 s.
    gaps = np.random.default_rng(1).choice([0.02, 0.1, 0.5, 2.0], size=40)
    times = np.round(np.concatenate([[0.0], np.cumsum(gaps)]), 3)
    path = tmp_path / f"vfr.{suffix}"
    write_vfr(path, times, codec)
    src = VideoFile(path)
    frames = list(src.frames())
    assert len(frames) == len(times)
    got = np.array([f.t for f in frames])
    np.testing.assert_allclose(got, times, atol=1e-3)
    # The frames are the right ones at those times (gray level = 6 x the frame's number,
    # give or take the limited-range YUV round trip).
    levels = np.array([int(f.image[24, 32, 0]) for f in frames])
    assert (np.diff(levels) > 0).all()
    np.testing.assert_allclose(levels, 6 * np.arange(len(times)), atol=6)
    # What index / average rate gave: seconds off, which is what this test guards against.
    assert np.abs(np.arange(len(times)) / src.fps - times).max() > 1.0


def test_constant_rate_file_still_gives_index_over_rate(tmp_path):
    path = tmp_path / "cfr.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (64, 48))
    for i in range(30):
        out.write(_bgr(i))
    out.release()
    frames = list(VideoFile(path).frames())
    assert len(frames) == 30
    np.testing.assert_allclose([f.t for f in frames], np.arange(30) / 24, atol=1e-3)


@pytest.mark.parametrize("suffix", ["mkv", "mp4"])
def test_audio_and_video_of_a_file_share_its_clock(tmp_path, suffix):
    """A recording whose timestamps start at 5 s (MPEG-TS starts at 1.4 s): the frames count
    from the stream's start, so the audio counts from the container's, not 5 s behind."""
    path = tmp_path / f"late.{suffix}"
    write_av_clip(path, start_s=5.0)
    frames = list(VideoFile(path).frames())
    chunks = list(MediaAudioSource(path))
    assert frames[0].t == pytest.approx(0.0, abs=1e-3)
    assert frames[-1].t == pytest.approx(49 / 25, abs=1e-3)
    assert chunks[0].t == pytest.approx(0.0, abs=0.03)  # AAC's priming, at most
    assert chunks[-1].end == pytest.approx(2.0, abs=0.05)


# -- empty and truncated files ----------------------------------------------------------------
def test_zero_byte_files_are_called_empty(tmp_path):
    for name in ("empty.mp4", "empty.mkv", "empty.mov"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(SourceError, match=rf"{name} is empty \(0 bytes\)"):
            open_video(str(path))
        with pytest.raises(AudioSourceError, match=rf"{name} is empty \(0 bytes\)"):
            open_audio_file(path)
    wav = tmp_path / "empty.wav"
    wav.write_bytes(b"")
    with pytest.raises(AudioSourceError, match=r"empty.wav is empty \(0 bytes\)"):
        open_audio_file(wav)


@pytest.mark.parametrize("suffix", ["mp4", "mov"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_mp4_and_mov_are_called_truncated(tmp_path, suffix, keep):
    full = tmp_path / f"full.{suffix}"
    write_av_clip(full)
    assert file_damage(full) is None
    assert len(list(VideoFile(full).frames())) == 50 and list(MediaAudioSource(full))
    data = full.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])  # a recorder killed before it finished
    with pytest.raises(SourceError, match=rf"cut.{suffix}.*is truncated") as e:
        VideoFile(cut)
    assert "unknown container" not in str(e.value)
    with pytest.raises(AudioSourceError, match=rf"cut.{suffix}.*is truncated"):
        open_audio_file(cut)


def test_matroska_cut_inside_its_header_is_called_truncated(tmp_path):
    full = tmp_path / "full.mkv"
    write_av_clip(full)
    assert file_damage(full) is None
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[:20])
    with pytest.raises(SourceError, match=r"cut.mkv.*truncated: the file ends inside its Matroska"):
        open_video(str(cut))
    with pytest.raises(AudioSourceError, match=r"cut.mkv.*truncated"):
        open_audio_file(cut)
    # Cut inside the clusters, Matroska still plays up to the cut; its segment says it is short.
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert "is truncated: its Matroska segment ends at byte" in file_damage(cut)
    assert 0 < len(list(VideoFile(cut).frames())) < 50


def test_truncated_wav_is_called_truncated(tmp_path):
    full = write_wav(tmp_path / "full.wav", np.zeros(16000, np.float32), 16000)
    data = full.read_bytes()
    cases = {
        "riff.wav": (data[:6], "truncated: 6 bytes, inside the header"),
        "fmt.wav": (data[:30], "truncated: it ends inside its fmt chunk"),
        "chunkhead.wav": (data[:40], "truncated: it ends inside a chunk header"),
        "nodata.wav": (data[:44], "truncated: its data chunk should hold 32000 bytes"),
    }
    for name, (raw, why) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(AudioSourceError, match=rf"{name} is {why}"):
            WavSource(tmp_path / name)
    # Cut inside the samples: what is there plays (a recorder killed mid-take).
    (tmp_path / "half.wav").write_bytes(data[: 44 + 16000])
    assert sum(len(c.samples) for c in WavSource(tmp_path / "half.wav")) == 8000


def test_a_file_that_is_no_media_at_all_is_not_called_truncated(tmp_path):
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"these are my meeting notes, not a video\n" * 20)
    assert file_damage(junk) is None
    with pytest.raises(SourceError, match="notes.mp4.*unknown container"):
        VideoFile(junk)
