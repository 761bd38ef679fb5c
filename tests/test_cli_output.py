"""Output that fails cleanly: a wrong --jsonl path is refused before any model loads, and a
write that fails mid-run (a full disk, a file that cannot grow) stops the session with one
line, whole lines in the file and the session statistics still printed."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from emolive.cli.main import main
from emolive.runtime.sinks.jsonl import JsonLines, SinkError, check_writable

HAS_DEV_FULL = Path("/dev/full").exists()


def _denied_path(tmp_path: Path) -> Path | None:
    """A path where creating a file is refused: a read-only folder for a normal user; as
    root (CI) chmod does not deny, but sysfs refuses new files even to root."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o500)
    for candidate in (ro / "out.jsonl", Path("/sys/emo-live-out.jsonl")):
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(candidate)
    return None


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["run", "--no-audio", *args])


@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing-parent", "No such file or directory (folder {tmp}/nope does not exist)"),
        ("parent-is-a-file", "Not a directory ({tmp}/notes.txt is a file, not a folder)"),
        ("directory", "Is a directory"),
        ("denied", "Permission denied"),
    ],
)
def test_a_bad_jsonl_path_is_refused_before_the_models_load(tmp_path, case, reason):
    (tmp_path / "notes.txt").write_text("keep me")
    path = {
        "missing-parent": tmp_path / "nope" / "deeper" / "out.jsonl",
        "parent-is-a-file": tmp_path / "notes.txt" / "out.jsonl",
        "directory": tmp_path,
        "denied": _denied_path(tmp_path),
    }[case]
    if path is None:
        pytest.skip("no location here refuses a new file")
    # The bundle does not exist either: the path error must come first (nothing loaded).
    r = _run("--bundle", str(tmp_path / "no-bundle"), "--source", "synthetic",
             "--jsonl", str(path))  # fmt: skip
    assert r.exit_code == 2, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: Invalid value for '--jsonl': cannot write to {path}: "), line
    assert reason.format(tmp=tmp_path) in line, line
    assert "bundle" not in r.output.lower()
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_good_path_is_checked_without_touching_it(tmp_path):
    bundle = str(tmp_path / "no-bundle")
    new = tmp_path / "new.jsonl"
    old = tmp_path / "old.jsonl"
    old.write_text('{"earlier": "run"}\n')
    for path in (new, old):
        r = _run("--bundle", bundle, "--source", "synthetic", "--jsonl", str(path))
        # Past the check: the missing bundle is what stops it (exit 1, not 2).
        assert r.exit_code == 1 and "no-bundle" in r.output and "--jsonl" not in r.output
    assert not new.exists()  # the probe file was removed again
    assert old.read_text() == '{"earlier": "run"}\n'  # not truncated by a run that never ran


def test_a_fifo_is_accepted_without_waiting_for_a_reader(tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    t = threading.Thread(target=lambda: (check_writable(fifo), done.set()), daemon=True)
    t.start()
    t.join(5)
    assert done.is_set()


@pytest.mark.skipif(not HAS_DEV_FULL, reason="no /dev/full")
def test_dev_full_passes_the_check_and_fails_on_the_first_write(tmp_path):
    check_writable("/dev/full")  # writable: the check must not refuse it
    r = _run("--bundle", str(tmp_path / "no-bundle"), "--source", "synthetic",
             "--jsonl", "/dev/full")  # fmt: skip
    assert r.exit_code == 1 and "--jsonl" not in r.output


# A file that cannot grow past a limit: RLIMIT_FSIZE makes the kernel write what fits (a real
# partial write) and fail the rest with EFBIG, as a full disk does with ENOSPC. SIGXFSZ is
# ignored so the write fails instead of the process dying. Set in a child process only.
def _limit_file_size(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return pre


SINK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from emolive.runtime.sinks.jsonl import JsonLines, SinkError

    probe = sys.argv[2] + ".probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT)
    partial = os.write(fd, b"x" * 300)  # the kernel writes what fits, then refuses
    os.close(fd)
    sink = JsonLines(sys.argv[2])
    try:
        for i in range(10):
            sink.write({"type": "expression", "i": i, "pad": "p" * 63})  # 100-byte lines
    except SinkError as e:
        print(partial)
        print(e)
    """
)


def test_a_failed_write_leaves_only_whole_lines(tmp_path):
    out = tmp_path / "out.jsonl"
    r = subprocess.run([sys.executable, "-c", SINK_SCRIPT, "", str(out)],
                       preexec_fn=_limit_file_size(250), capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    partial, message = r.stdout.splitlines()
    assert int(partial) == 250  # partial writes happen: the third line's first 50 bytes fit
    assert message == f"cannot write to {out} (File too large); 2 events were written before"
    data = out.read_bytes()
    assert len(data) == 200 and data.endswith(b"\n")  # the 50-byte tail was cut off again
    assert [json.loads(line)["i"] for line in data.splitlines()] == [0, 1]


@pytest.mark.skipif(not HAS_DEV_FULL, reason="no /dev/full")
def test_a_full_disk_stops_the_run_with_one_line_and_the_statistics(vision_bundle, media):
    r = _run("--bundle", str(vision_bundle), "--source", str(media / "single_face.mp4"),
             "--no-reason", "--duration", "1", "--jsonl", "/dev/full")  # fmt: skip
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert lines[-1] == "Error: cannot write to /dev/full (disk full); 0 events were written before"
    stats = json.loads(lines[-2])["session"]
    assert stats["events_written"] == 0 and stats["frames_analysed"] > 0
    assert stats["output_error"] == lines[-1].removeprefix("Error: ")
    assert "Traceback" not in r.output


def test_a_file_that_cannot_grow_ends_the_run_cleanly(vision_bundle, media, tmp_path):
    out = tmp_path / "out.jsonl"
    args = ["run", "--bundle", str(vision_bundle), "--source", str(media / "single_face.mp4"),
            "--no-audio", "--no-reason", "--duration", "1", "--jsonl", str(out)]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "emolive.cli.main", *args],
                       preexec_fn=_limit_file_size(3000), capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    assert err[-1].startswith(f"Error: cannot write to {out} (File too large); ")
    written = int(err[-1].split("; ")[1].split()[0])
    stats = json.loads(err[-2])["session"]
    assert stats["events_written"] == written > 0
    data = out.read_bytes()
    assert 0 < len(data) <= 3000 and data.endswith(b"\n")
    events = [json.loads(line) for line in data.splitlines()]  # every line whole
    assert len(events) == written


def test_a_sink_that_could_not_open_names_the_file(tmp_path):
    with pytest.raises(SinkError, match=f"cannot open {tmp_path} for writing: Is a directory"):
        JsonLines(tmp_path)
