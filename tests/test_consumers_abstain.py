"""Every consumer of readings shows an abstaining reading (schema 2.0: ``emotion`` null, a
reason in ``abstained``) by its reason: the demo printer, the status line, the OpenCV overlay
and the server's page in a real browser."""

import io
import json
import re

import numpy as np
import pytest

from emolive.cli.show import describe
from emolive.cli.show import main as show_main
from emolive.runtime.fusion import reading_event
from emolive.runtime.names import FER_LABELS
from emolive.runtime.readings import validate
from emolive.runtime.sinks import overlay
from emolive.runtime.sinks.terminal import StatusLine
from tests.helpers import browser, dump_dom

REASON = "no face, no speech in this window"


def _reading(t_start: float, t_end: float, face: dict | None = None) -> dict:
    """A reading built the way the session builds one; without a face it abstains."""
    event = reading_event(
        t_start=t_start, t_end=t_end, labels=FER_LABELS, expressions=[], visual_clues=[],
        audio_clues=[], text_clues=[], llm_scores=None, explanation=None,
        latency_ms={"total": 1.0}, backend={"runtime": "onnxruntime"}, face_scores=face,
    )  # fmt: skip
    validate(event)
    return event


def _labelled(t_start: float = 0.0, t_end: float = 3.0) -> dict:
    face = {lab: 0.05 for lab in FER_LABELS}
    face["happy"] = 0.7
    event = _reading(t_start, t_end, face)
    assert event["emotion"] == "happy" and event["abstained"] is None
    return event


@pytest.fixture
def abstaining() -> dict:
    event = _reading(3.0, 6.0)
    assert event["emotion"] is None and event["confidence"] == 0 and event["scores"] == {}
    assert event["abstained"] == REASON
    return event


def test_show_prints_the_reason_not_a_crash(abstaining, tmp_path, capsys):
    text = describe(abstaining)
    assert text == f"[  3.00-  6.00 s] no label — {REASON}"
    assert "None" not in text
    path = tmp_path / "readings.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in (_labelled(), abstaining)) + "\n")
    assert show_main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[  0.00-  3.00 s] HAPPY (")
    assert f"[  3.00-  6.00 s] no label — {REASON}" in out


def test_status_line_shows_the_reason(abstaining):
    stream = io.StringIO()
    status = StatusLine(stream, interval_s=0)
    status.update(_labelled())
    assert "reading happy " in stream.getvalue()
    status.update(abstaining)
    last = stream.getvalue().rsplit("\r\x1b[2K", 1)[1]
    assert f"reading: no label @6.0s ({REASON})" in last
    assert "None" not in last and "0.00" not in last


def test_overlay_draws_the_reason(abstaining, monkeypatch):
    assert overlay.reading_lines(abstaining) == ["no label", REASON]
    drawn: list[str] = []
    real = overlay.cv2.putText

    def spy(img, text, *args, **kwargs):
        drawn.append(text)
        return real(img, text, *args, **kwargs)

    monkeypatch.setattr(overlay.cv2, "putText", spy)
    image = np.zeros((120, 320, 3), np.uint8)
    out = overlay.draw(image, [], abstaining)
    assert set(drawn) == {"no label", REASON}
    assert not any("None" in t for t in drawn)
    assert out[-40:].any() and image.sum() == 0
    # Long or non-ASCII reasons fit OpenCV's ASCII fonts and the frame.
    lines = overlay.reading_lines({**abstaining, "abstained": "é " + "x" * 200 + " — y"})
    assert lines[1].startswith("? x") and len(lines[1]) == 90 and lines[1].isascii()


@pytest.mark.skipif(browser() is None, reason="no chromium installed (Debian package chromium)")
def test_page_shows_the_reason_in_a_real_browser(abstaining, tmp_path):
    pytest.importorskip("websockets")
    from emolive.runtime.server import ReadingServer

    with ReadingServer(port=0) as server:
        server.publish(_labelled())
        server.publish(abstaining)
        proc = dump_dom(
            server.url,
            tmp_path,
            done=lambda dom: '<div id="count">2</div>' in dom and 'data-emotion="none"' in dom,
        )
    dom = proc.stdout
    assert 'id="emotion"' in dom, proc.stderr[-2000:]
    assert '<div id="count">2</div>' in dom
    # The script rendered both readings to the end (the timeline is drawn last) ...
    assert 'data-emotion="happy"' in dom and 'data-emotion="none"' in dom, dom
    assert f'title="no label: {REASON}"' in dom
    # ... and the big display says there is no label, and why, in the neutral style.
    big = re.search(r'<div id="emotion"([^>]*)>([^<]*)</div>', dom)
    assert big and big.group(2) == "no label", dom
    assert 'class="abstained"' in big.group(1) and "color" not in big.group(1)
    assert f'<div id="abstained">{REASON}</div>' in dom
    assert '<div id="confidence"></div>' in dom and '<div id="scores"></div>' in dom
    assert ">null<" not in dom and "None" not in dom
