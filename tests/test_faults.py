"""Faults a live session meets: a camera unplugged, a full disk, reasoning slower than real time."""

import time

import cv2
import pytest

from emolive.runtime import Session, SessionConfig
from emolive.runtime.reasoning.stage import Judgement, ReasoningStage
from emolive.runtime.sinks.jsonl import JsonLines, SinkError
from emolive.runtime.sources.video import Frame, SourceError
from emolive.runtime.windows import Window


class UnpluggedCamera:
    """A live camera (frames on the session clock, ~30 fps) unplugged after ``lost_after``
    frames; it comes back on the second reopen attempt."""

    live = True
    name = "camera:test"

    def __init__(self, image, lost_after=None, refusals=None):
        self.image, self.lost_after = image, lost_after
        self.refusals = refusals if refusals is not None else [1]

    def frames(self, clock):
        index = 0
        while True:
            if self.lost_after is not None and index == self.lost_after:
                raise SourceError("camera test stopped delivering frames")
            time.sleep(1 / 30)
            yield Frame(t=clock.now(), index=index, image=self.image, source=self.name)
            index += 1

    def reopen(self):
        if self.refusals[0] > 0:
            self.refusals[0] -= 1
            raise SourceError("camera test not found")
        return UnpluggedCamera(self.image, refusals=self.refusals)


def test_unplugged_camera_is_reopened_and_readings_say_video_was_lost(vision_bundle, astronaut):
    config = SessionConfig(bundle=vision_bundle, source="synthetic", audio=False, realtime=True,
                           duration=4.0, every_s=1.0, camera_reopen_s=10.0)  # fmt: skip
    s = Session(config)
    frame = cv2.resize(cv2.imread(str(astronaut)), (640, 480))
    s.video = UnpluggedCamera(frame, lost_after=20)
    with s:
        events = list(s)
    stats = s.stats()
    assert len(stats["video_outages"]) == 1
    lost, back = stats["video_outages"][0]
    assert back - lost >= 0.25  # backoff: the first reopen was refused
    expressions = [e for e in events if e["type"] == "expression"]
    assert any(e["t"] < lost for e in expressions) and any(e["t"] > back for e in expressions)
    readings = [e for e in events if e["type"] == "reading"]
    assert any(n.startswith("video lost from") for r in readings for n in r["notes"])
    assert stats["failures"] == []


def test_full_disk_is_a_clear_error_that_counts_what_was_written(tmp_path):
    sink = JsonLines("/dev/full")
    with pytest.raises(SinkError, match=r"cannot write to /dev/full \(disk full\); 0 events"):
        sink.write({"type": "expression", "t": 0.0})


def test_slow_reasoning_merges_windows_and_loses_none():
    class SlowReader:
        def judge(self, window, labels, **hints):
            time.sleep(0.2)
            return Judgement(explain=lambda label: f"{len(window.expressions)} frames")

    stage = ReasoningStage(SlowReader())
    out = []
    stage.connect(out.append)
    stage.start()
    face = {"track_id": 1, "t": 0.0, "scores": {"happy": 0.9, "sad": 0.1}, "clues": {"visual": []}}
    for i in range(12):  # a window every 50 ms, each with one face
        stage.offer(Window(i * 0.05, (i + 1) * 0.05, [{**face, "t": i * 0.05}]))
        time.sleep(0.05)
    stage.stop()
    stage.join(10)
    assert stage.merged > 0 and len(out) < 12
    assert sum(int(r["explanation"].split()[0]) for r in out) == 12  # every face reached a reading
    spans = [(r["t_start"], r["t_end"]) for r in out]
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(0.6)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(spans, spans[1:], strict=False))
    assert any("windows merged" in n for r in out for n in r["notes"])
