"""The live session with audio: windows on utterances, explained readings, faults, signals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from emolive.runtime import Session, SessionConfig, SessionError
from emolive.runtime.readings import validate


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory):
    from emolive.export.democlip import ClipError, make_demo_clip

    try:
        return make_demo_clip(tmp_path_factory.mktemp("clip") / "demo.mp4")
    except ClipError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def av_bundle(tmp_path_factory):
    """A bundle with vision and audio (no LLM: readings are fused, not explained)."""
    from emolive.export.lite import export_lite

    out = tmp_path_factory.mktemp("avbundle") / "lite"
    export_lite(out, ["vision", "audio"], log=lambda m: None)
    return out


def test_utterances_close_windows_with_words_and_faces(av_bundle, demo_clip):
    config = SessionConfig(bundle=av_bundle, source=str(demo_clip), reason=False)
    with Session(config) as s:
        events = list(s)
    readings = [e for e in events if e["type"] == "reading"]
    for r in readings:
        validate(r)
    spoken = [r for r in readings if r["clues"]["text"]]
    assert len(spoken) >= 2
    said = " ".join(r["clues"]["text"][0] for r in spoken).lower()
    assert "wonderful" in said and "worried" in said
    for r in spoken:
        assert "visual" in r["modalities"] and "text" in r["modalities"]
        assert r["t_end"] > r["t_start"]
    # Windows tile the session in order and do not overlap.
    spans = [(r["t_start"], r["t_end"]) for r in readings]
    assert all(a[1] <= b[0] + 1e-6 for a, b in zip(spans, spans[1:], strict=False))
    stats = s.stats()
    assert stats["audio"]["utterances"] >= 2 and stats["frames_dropped"] == 0


def _tiled(readings):
    spans = [(r["t_start"], r["t_end"]) for r in readings]
    return all(a[1] <= b[0] + 1e-6 for a, b in zip(spans, spans[1:], strict=False))


def test_audio_only_windows_tile_and_never_claim_a_label_without_evidence(av_bundle, demo_clip):
    config = SessionConfig(bundle=av_bundle, source=str(demo_clip), video=False, reason=False)
    with Session(config) as s:
        readings = [e for e in s if e["type"] == "reading"]
    for r in readings:
        validate(r)
    assert _tiled(readings), [(r["t_start"], r["t_end"]) for r in readings]
    spoken = [r for r in readings if r["clues"]["text"]]
    assert len(spoken) >= 2
    # No face and no LLM to read the words: no reading claims a label.
    assert all(r["emotion"] is None and r["abstained"] for r in readings)
    assert {r["abstained"] for r in spoken} == {
        "no face in this window, and no LLM read the speech"
    }


def test_silence_gives_readings_without_a_label(av_bundle):
    config = SessionConfig(bundle=av_bundle, source="synthetic", duration=12.0, reason=False)
    with Session(config) as s:
        readings = [e for e in s if e["type"] == "reading"]
    assert len(readings) == 2 and _tiled(readings)
    for r in readings:
        validate(r)
        assert r["emotion"] is None and r["abstained"] == "no face, no speech in this window"


def test_file_without_audio_track_says_run_video_only(av_bundle, media, tmp_path):
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    silent = tmp_path / "silent.mp4"  # the clip with its audio track removed
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(media / "single_face.mp4"),
                    "-an", "-c:v", "copy", str(silent)], check=True)  # fmt: skip
    with pytest.raises(SessionError, match="no audio track.*--no-audio"):
        Session(SessionConfig(bundle=av_bundle, source=str(silent)))
    # Video only, the same file runs.
    with Session(SessionConfig(bundle=av_bundle, source=str(silent), audio=False)) as s:
        assert any(e["type"] == "expression" for e in s)


def test_audio_lost_degrades_to_video_only(av_bundle, demo_clip):
    s = Session(SessionConfig(bundle=av_bundle, source=str(demo_clip), reason=False))

    def broken(chunk):
        raise RuntimeError("microphone unplugged")

    s.audio.process = broken
    with s:
        events = list(s)  # no SessionError: video is still running
    readings = [e for e in events if e["type"] == "reading"]
    assert readings and all(r["modalities"] == ["visual"] for r in readings)
    assert any(
        n.startswith("audio lost") and "microphone unplugged" in n for n in readings[-1]["notes"]
    )
    assert len([e for e in events if e["type"] == "expression"]) > 300


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_cleanly_and_keep_what_was_written(av_bundle, demo_clip, tmp_path, sig):
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "emolive.cli.main", "run", "--bundle", str(av_bundle),
         "--source", str(demo_clip), "--realtime", "--jsonl", str(out)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["schema"] == "emo-live.reading" for line in lines)
    assert json.loads(lines[-1])["type"] == "reading"  # the last window was still explained
    stats = json.loads(err.strip().splitlines()[-1])["session"]
    assert stats["interrupted"] is True and stats["events_written"] == len(lines)
