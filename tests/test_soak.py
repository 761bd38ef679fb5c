"""Soak: a 10-minute synthetic session at accelerated speed keeps its memory and its readings."""

import resource

import cv2
import numpy as np
import pytest

from emolive.runtime import Session, SessionConfig
from emolive.runtime.media import AUDIO_RATE
from emolive.runtime.sources.audio_files import SyntheticAudioSource
from emolive.runtime.sources.video import SyntheticVideo

MINUTES = 10


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _speech_track(seconds: float) -> np.ndarray:
    """A sentence of espeak-ng speech every 6 s over the whole session."""
    from emolive.export.democlip import ClipError, speech

    try:
        voice = speech("I am fine, thank you, it was a long day.")
    except ClipError as e:
        pytest.skip(str(e))
    track = np.zeros(int(seconds * AUDIO_RATE), np.float32)
    for start in np.arange(1.0, seconds - 5.0, 6.0):
        i = int(start * AUDIO_RATE)
        track[i : i + len(voice)] = voice
    return track


@pytest.mark.slow
def test_ten_minute_session_holds_memory_and_delivers_every_reading(
    vision_bundle, astronaut, tmp_path
):
    from emolive.export.lite import export_lite

    bundle = tmp_path / "av"
    export_lite(bundle, ["vision", "audio"], log=lambda m: None)
    seconds = MINUTES * 60.0
    config = SessionConfig(bundle=bundle, source="synthetic", reason=False, every=3)
    s = Session(config)
    # 10 fps of a moving face (every 3rd analysed: faces are followed and re-detected).
    s.video = SyntheticVideo(image=cv2.imread(str(astronaut)), fps=10.0, seconds=seconds)
    s.audio_source = SyntheticAudioSource(_speech_track(seconds))
    readings, expressions, rss = 0, 0, {}
    with s:
        for event in s:
            if event["type"] == "reading":
                readings += 1
                t = event["t_end"]
                if t >= 60 and "warm" not in rss:
                    rss["warm"] = _rss_mb()
            else:
                expressions += 1
    rss["end"] = _rss_mb()
    stats = s.stats()
    assert stats["failures"] == []
    assert readings == stats["readings"] >= 90  # one per utterance (~100), all delivered
    assert stats["audio"]["utterances"] >= 95
    assert expressions == stats["frames_with_faces"] >= 1900
    growth = (rss["end"] - rss["warm"]) / rss["warm"]
    print(f"soak: {readings} readings, {expressions} expressions, RSS {rss}, growth {growth:.2%}")
    assert growth < 0.05, rss
