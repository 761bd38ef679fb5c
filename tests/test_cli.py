"""The command line: help texts, label sets, the overlay drawing, the status line."""

import io

import numpy as np
import pytest
from click.testing import CliRunner

from emolive.cli.common import parse_labels
from emolive.cli.main import main
from emolive.runtime.names import FER_LABELS, MER_LABELS
from emolive.runtime.sinks.overlay import draw
from emolive.runtime.sinks.terminal import StatusLine

COMMANDS = sorted(main.commands)  # every registered command, so a new one cannot skip this


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself_with_an_example(command):
    r = CliRunner().invoke(main, [command, "--help"])
    assert r.exit_code == 0, r.output
    assert "Example" in r.output or command == "models"


def test_label_sets_follow_the_reasoning_stage_rule():
    import click

    assert parse_labels("fer") == FER_LABELS and parse_labels("MER") == MER_LABELS
    assert parse_labels(" calm, stressed ,excited") == ("calm", "stressed", "excited")
    # The same rule as `emo-live reason` (LabelSet): duplicates and lone labels are refused.
    with pytest.raises(click.BadParameter, match="appears twice"):
        parse_labels("calm,stressed,Calm")
    with pytest.raises(click.BadParameter, match="at least 2"):
        parse_labels(" , ")


def _expr():
    return {"type": "expression", "track_id": 3, "box": [10, 10, 60, 70], "emotion": "happy",
            "confidence": 0.9}  # fmt: skip


def test_overlay_draws_boxes_and_the_reading():
    image = np.zeros((120, 160, 3), np.uint8)
    reading = {"emotion": "sad", "confidence": 0.7, "conflict": {"description": "looks happy but sounds sad"},
               "explanation": "because the words are sad"}  # fmt: skip
    out = draw(image, [_expr()], reading)
    assert image.sum() == 0  # the frame itself is untouched
    assert out[10, 10:60].any() and out[-40:].any()


def test_status_line_shows_faces_and_the_last_reading():
    stream = io.StringIO()
    status = StatusLine(stream, interval_s=0)
    status.update({**_expr(), "t": 0.1})
    status.update({"type": "reading", "emotion": "sad", "confidence": 0.71, "t_end": 3.0,
                   "conflict": {"description": "looks happy but sounds sad"}})  # fmt: skip
    text = stream.getvalue()
    assert "#3 happy 0.90" in text and "reading sad 0.71 @3.0s (looks happy but sounds sad)" in text
