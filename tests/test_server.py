"""The local server: WebSocket stream, history, token rule, and the page in a real browser."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from emolive.runtime.names import FER_LABELS
from emolive.runtime.readings import expression_event
from emolive.runtime.server import ReadingServer, ServerError
from tests.helpers import browser, dump_dom

websockets = pytest.importorskip("websockets")


def _event(i: int, label: str = "happy") -> dict:
    probs = np.full(7, 0.05, np.float32)
    probs[FER_LABELS.index(label)] = 0.7
    return expression_event(
        t=i / 30, frame=i, source="test", track_id=1, box=(0, 0, 10, 10), face_score=0.9,
        labels=FER_LABELS, probs=probs, clues=["smiling (mouth-corner lift 0.31)"], measures=None,
        latency_ms={"total": 1.0}, backend={"runtime": "onnxruntime"},
    )  # fmt: skip


def test_websocket_gets_history_then_live_events():
    from websockets.sync.client import connect

    with ReadingServer(port=0) as server:
        server.publish(_event(0))
        with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            first = json.loads(ws.recv(timeout=5))
            server.publish(_event(1, "sad"))
            second = json.loads(ws.recv(timeout=5))
        history = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readings").read()
        )
    assert first["frame"] == 0 and second["frame"] == 1 and second["emotion"] == "sad"
    assert [e["frame"] for e in history] == [0, 1]


def test_other_addresses_need_a_token():
    with pytest.raises(ServerError, match="pass a token"):
        ReadingServer(host="0.0.0.0", port=0)


def test_token_is_enforced_when_set():
    from websockets.sync.client import connect

    with ReadingServer(port=0, token="s3cret") as server:
        base = f"http://127.0.0.1:{server.port}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/")
        assert e.value.code == 401
        e.value.close()
        assert b"emo-live" in urllib.request.urlopen(base + "/?token=s3cret").read()
        with pytest.raises(websockets.exceptions.InvalidStatus):
            connect(f"ws://127.0.0.1:{server.port}/ws?token=wrong")
        with connect(f"ws://127.0.0.1:{server.port}/ws?token=s3cret"):
            pass


@pytest.mark.skipif(browser() is None, reason="no chromium installed (Debian package chromium)")
def test_page_shows_the_live_reading_in_a_real_browser(tmp_path):
    with ReadingServer(port=0) as server:
        for i in range(5):
            server.publish(_event(i, "surprise"))
        proc = dump_dom(server.url, tmp_path, done=lambda dom: '<div id="count">5</div>' in dom)
    dom = proc.stdout
    assert 'id="emotion"' in dom, proc.stderr[-2000:]
    # The script connected over WebSocket, received the history and rendered it.
    assert ">surprise</div>" in dom
    assert "smiling (mouth-corner lift 0.31)" in dom
    assert dom.count('data-emotion="surprise"') == 5  # video only: faces fill the timeline
    assert '<div id="count">5</div>' in dom
