"""The vision pipeline end to end on real media, and what it does with bad input."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from emolive.cli.main import main
from emolive.runtime.bundle import Bundle
from emolive.runtime.media import Frame
from emolive.runtime.readings import validate
from emolive.runtime.session import Session, SessionConfig, SessionError
from emolive.runtime.sources.video import FrameError, SourceError, SyntheticVideo
from emolive.runtime.vision.analyzer import FaceAnalyzer, VisionConfig


@pytest.fixture(scope="module")
def analyzer(vision_bundle):
    return FaceAnalyzer(Bundle.open(vision_bundle))


def _session(bundle, source, **kw):
    return Session(SessionConfig(bundle=bundle, source=str(source), audio=False, **kw))


def test_video_file_gives_one_event_per_frame_and_face(vision_bundle, media):
    with _session(vision_bundle, media / "single_face.mp4") as s:
        everything = list(s)
    events = [e for e in everything if e["type"] == "expression"]
    readings = [e for e in everything if e["type"] == "reading"]
    assert len(readings) == 1  # a 2.4 s clip: one final reading (every 5 s otherwise)
    validate(readings[0])
    assert readings[0]["emotion"] == "happy" and readings[0]["modalities"] == ["visual"]
    stats = s.stats()
    assert stats["frames_captured"] == 72 and stats["frames_analysed"] == 72
    assert stats["frames_dropped"] == 0  # a file is analysed frame by frame
    assert len(events) >= 70  # one face in (nearly) every frame
    for e in events:
        validate(e)
    assert {e["track_id"] for e in events} == {1}  # one person, one track
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames)
    # Time stamps are the media's own: 30 fps.
    assert events[-1]["t"] == pytest.approx(events[-1]["frame"] / 30, abs=1e-3)
    assert any(e["clues"]["visual"] for e in events)
    assert all(e["measures"] is not None for e in events)


def test_no_face_gives_no_events_and_no_crash(vision_bundle, media):
    with _session(vision_bundle, media / "no_face.mp4") as s:
        events = list(s)  # no faces: no expression events, and no reading without evidence
    stats = s.stats()
    assert events == [] and stats["frames_analysed"] == stats["frames_captured"] > 90


def test_many_faces_in_one_frame(analyzer, media):
    image = cv2.imread(str(media / "multi_face.jpg"))
    events = analyzer.analyze(Frame(0.0, 0, image))
    assert len(events) >= 2
    assert len({e["track_id"] for e in events}) == len(events)
    boxes = np.array([e["box"] for e in events])
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    tiled = np.concatenate([np.concatenate([image] * 2, 1)] * 2, 0)  # a crowd: 4x the faces
    events = analyzer.analyze(Frame(1.0, 1, tiled))
    assert len(events) <= 10  # capped by max_faces=10, never a crash


def test_tiles_find_the_small_faces_of_a_group_shot(vision_bundle, media):
    image = cv2.imread(str(media / "multi_face.jpg"))
    tiled = FaceAnalyzer(Bundle.open(vision_bundle), VisionConfig(tiles=2))
    events = tiled.analyze(Frame(0.0, 0, image))
    assert len(events) == 5  # five people in the photo


def test_bad_frames_are_named_errors(analyzer):
    for bad, why in [
        (np.zeros((0, 0, 3), np.uint8), "zero size"),
        (None, "None"),
        (np.zeros((48, 64, 3), np.float32), "dtype"),
        (np.zeros((48, 64, 5), np.uint8), "shape"),
    ]:
        with pytest.raises(FrameError, match=why):
            analyzer.analyze(Frame(0.0, 0, bad))
    gray = np.full((480, 640), 128, np.uint8)
    assert analyzer.analyze(Frame(0.0, 0, gray)) == []


def test_missing_and_corrupt_sources_are_named(vision_bundle, tmp_path):
    with pytest.raises(SourceError, match="video file not found: .*nope.mp4"):
        _session(vision_bundle, tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SourceError, match="cannot decode video .*junk.mp4"):
        _session(vision_bundle, junk)
    bad_image = tmp_path / "bad.jpg"
    bad_image.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(SourceError, match="cannot decode image .*bad.jpg"):
        _session(vision_bundle, bad_image)


def test_session_reports_a_failing_stage_after_delivering_events(vision_bundle, astronaut):
    s = _session(vision_bundle, "synthetic")
    s.video = SyntheticVideo(image=cv2.imread(str(astronaut)), seconds=1.0)
    calls = {"n": 0}
    real = s.vision.analyzer.observe

    def flaky(frame):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("graph exploded")
        return real(frame)

    s.vision.analyzer.observe = flaky
    got = []
    with pytest.raises(SessionError, match="stage 'vision' failed: RuntimeError: graph exploded"):
        with s:
            for e in s:
                got.append(e)
    # The four frames before the failure were delivered, and a last reading over them.
    assert [e["type"] for e in got] == ["expression"] * 4 + ["reading"]
    assert "video lost at 0.1 s: graph exploded" in got[-1]["notes"]


def test_cli_run_writes_jsonl(vision_bundle, media, tmp_path):
    out = tmp_path / "out.jsonl"
    r = CliRunner().invoke(
        main,
        ["run", "--bundle", str(vision_bundle), "--source", str(media / "single_face.mp4"),
         "--no-audio", "--jsonl", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert len(lines) >= 71
    assert json.loads(lines[-1])["type"] == "reading"
    first = json.loads(lines[0])
    assert first["type"] == "expression" and first["schema_version"] == "2.2"
    r = CliRunner().invoke(
        main, ["run", "--bundle", str(vision_bundle), "--source", "/nope.mp4", "--no-audio"]
    )
    assert r.exit_code == 1 and "video file not found: /nope.mp4" in r.output


def test_following_faces_between_detections_agrees_with_detecting_every_frame(vision_bundle, media):
    bundle = Bundle.open(vision_bundle)
    every = FaceAnalyzer(bundle, VisionConfig(detect_every=1))
    follow = FaceAnalyzer(bundle, VisionConfig(detect_every=10))
    cap = cv2.VideoCapture(str(media / "single_face.mp4"))
    agree, detect_ms, index = [], [], 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        a = every.analyze(Frame(index / 30, index, image))
        b = follow.analyze(Frame(index / 30, index, image))
        assert len(a) == len(b) == 1
        agree.append(a[0]["emotion"] == b[0]["emotion"])
        detect_ms.append(b[0]["latency_ms"]["detect"])
        index += 1
    assert np.mean(agree) >= 0.95
    # The detector ran on every 10th frame only.
    assert sum(ms > 0 for ms in detect_ms) == len(detect_ms) // 10 + (len(detect_ms) % 10 > 0)


def test_two_analyzers_in_parallel_give_the_same_events_in_order(vision_bundle, media):
    from emolive.runtime.vision.stage import VisionStage

    bundle = Bundle.open(vision_bundle)
    config = VisionConfig(detect_every=1)
    cap = cv2.VideoCapture(str(media / "single_face.mp4"))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(Frame(len(frames) / 30, len(frames), image))
    one = VisionStage(FaceAnalyzer(bundle, config)).run_inline(frames)
    two = VisionStage([FaceAnalyzer(bundle, config), FaceAnalyzer(bundle, config)]).run_inline(
        frames
    )
    assert [e["frame"] for e in two] == [e["frame"] for e in one] == list(range(len(frames)))
    assert [e["track_id"] for e in two] == [e["track_id"] for e in one]
    np.testing.assert_allclose(
        [list(e["scores"].values()) for e in two],
        [list(e["scores"].values()) for e in one],
        atol=1e-6,
    )


def test_a_still_image_runs_with_default_options_and_gives_one_reading(vision_bundle, media):
    # Audio is on by default; an image has none, so the session goes video-only by itself.
    with Session(SessionConfig(bundle=vision_bundle, source=str(media / "single_face.jpg"))) as s:
        events = list(s)
    readings = [e for e in events if e["type"] == "reading"]
    assert len(readings) == 1 and len([e for e in events if e["type"] == "expression"]) == 1
    validate(readings[0])
    assert readings[0]["emotion"] is not None and readings[0]["modalities"] == ["visual"]
    stats = s.stats()
    assert "video only: the source is a still image, which has no audio" in stats["notes"]
    assert s.audio is None and stats["frames_analysed"] == 1
    r = CliRunner().invoke(
        main, ["run", "--bundle", str(vision_bundle), "--source", str(media / "single_face.jpg")]
    )
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [e["type"] for e in lines] == ["expression", "reading"]


def test_windows_without_evidence_give_no_label(vision_bundle):
    # A synthetic clip without a face: every timed window abstains, and none overlap.
    with _session(vision_bundle, "synthetic", duration=12.0) as s:
        readings = [e for e in s if e["type"] == "reading"]
    assert len(readings) == 2  # at 5 s and 10 s; nothing seen after, so no final window
    for r in readings:
        validate(r)
        assert r["emotion"] is None and r["scores"] == {} and r["confidence"] == 0
        assert r["abstained"] == "no face, no speech in this window"
    spans = [(r["t_start"], r["t_end"]) for r in readings]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
