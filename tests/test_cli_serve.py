"""`emo-live serve` takes the session options `run` takes (--labels, --every), checked the same
way, and its readings carry the labels asked for."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from emolive.cli.main import main

BAD = [
    ("--every", "0"),
    ("--every", "-1"),
    ("--every", "nan"),
    ("--labels", "calm"),
    ("--labels", "calm,stressed,Calm"),
    ("--labels", "calm,stressed\x1b[31m"),
]


@pytest.mark.parametrize("command", ["serve", "run"])
@pytest.mark.parametrize("option, value", BAD)
def test_serve_and_run_refuse_the_same_values_by_name(tmp_path, command, option, value):
    r = CliRunner().invoke(
        main, [command, "--bundle", str(tmp_path / "no-bundle"), "--source", "synthetic",
               option, value]
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{option}'" in r.output, r.output
    assert "no-bundle" not in r.output  # refused before the bundle was looked at
    assert "Traceback" not in r.output


def test_serve_accepts_labels_and_every():
    r = CliRunner().invoke(main, ["serve", "--help"])
    assert "--labels" in r.output and "--every" in r.output
    r = CliRunner().invoke(main, ["serve", "--bundle", "no-bundle", "--source", "synthetic",
                                  "--labels", "calm,stressed", "--every", "0.5"])  # fmt: skip
    # Past the checks: the missing bundle is what stops it (exit 1, not 2).
    assert r.exit_code == 1 and "no-bundle" in r.output and "Invalid value" not in r.output


def _readings(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "readings", timeout=5) as r:
        return [e for e in json.loads(r.read()) if e.get("type") == "reading"]


def test_served_readings_use_the_labels_asked_for(vision_bundle, media):
    args = ["serve", "--bundle", str(vision_bundle), "--source", str(media / "single_face.mp4"),
            "--no-audio", "--all-frames", "--duration", "1", "--every", "0.5",
            "--labels", "calm,stressed", "--port", "0", "--linger", "120"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "emolive.cli.main", *args],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"serving readings at (\S+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "serve did not start"
        deadline, readings = time.monotonic() + 120, []
        while len(readings) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            readings = _readings(url)
        proc.send_signal(signal.SIGINT)  # ends the linger; the statistics still come
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert len(readings) >= 2, err  # one every 0.5 s of the 1 s clip
    for reading in readings:
        assert set(reading["scores"]) == {"calm", "stressed"}
        assert reading["emotion"] in ("calm", "stressed")
    line = json.loads(err.strip().splitlines()[-1])
    assert line["session"]["readings"] >= 2 and line["session"]["interrupted"] is False
    assert line["published"] >= len(readings)
