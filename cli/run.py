"""`emo-live run`: the live session from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from emolive.cli.common import default_bundle, graceful_stop


@click.command("run")
@click.option(
    "--source",
    default="0",
    show_default=True,
    help="Camera index (0, camera:1), a video or image file, or 'synthetic'.",
)
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    default=None,
    help="Bundle folder (default: the one `make demo` / `emo-live export` wrote).",
)
@click.option(
    "--jsonl",
    type=str,
    default="-",
    show_default=True,
    help="Write events as JSON lines to this file ('-' = stdout).",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--every", type=int, default=1, show_default=True, help="Analyse every k-th frame.")
@click.option("--no-audio", is_flag=True, help="Video only.")
@click.option("--no-video", is_flag=True, help="Audio only.")
@click.option(
    "--realtime/--all-frames",
    default=None,
    help="Pace a file like a camera (dropping frames inference cannot keep up with), "
    "or analyse every frame. Default: cameras real time, files every frame.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    default=None,
    help="Force a precision (default: what the bundle measured fastest here).",
)
@click.option("--threads", type=int, default=None, help="Threads per ONNX Runtime session.")
@click.option("--max-faces", type=int, default=10, show_default=True)
@click.option(
    "--tiles",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="2: also search four overlapping tiles for small faces (group shots; slower).",
)
def run(source, bundle, jsonl, duration, every, no_audio, no_video, realtime, precision,
        threads, max_faces, tiles) -> None:  # fmt: skip
    """Run emotion recognition on a camera or file and emit readings as JSON lines.

    \b
    Examples:
      emo-live run --source clip.mp4 --no-audio --jsonl out.jsonl
      emo-live run --source 0 --duration 30
    """
    from emolive.runtime.bundle import BundleError
    from emolive.runtime.session import Session, SessionConfig, SessionError
    from emolive.runtime.sinks import JsonLines, SinkClosed, SinkError
    from emolive.runtime.video import SourceError
    from emolive.runtime.vision.analyzer import VisionConfig

    config = SessionConfig(
        bundle=bundle or default_bundle(),
        source=source,
        video=not no_video,
        audio=not no_audio,
        duration=duration,
        realtime=realtime,
        every=every,
        vision=VisionConfig(precision=precision, threads=threads, max_faces=max_faces, tiles=tiles),
    )
    try:
        session = Session(config)
    except (BundleError, SourceError, SessionError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    sink = JsonLines(jsonl)
    interrupted = False
    try:
        with session, graceful_stop(session) as signals:
            try:
                for event in session:
                    sink.write(event)
            except KeyboardInterrupt:  # a second Ctrl-C: stop without waiting
                pass
        interrupted = signals["interrupted"]
    except SessionError as e:
        raise click.ClickException(f"{e} ({sink.count} events written to {sink.name})") from e
    except SinkClosed:
        # Detach stdout so Python's exit flush does not hit the closed pipe again.
        sys.stdout = None
        return
    except SinkError as e:
        raise click.ClickException(str(e)) from e
    finally:
        sink.close()
    stats = session.stats()
    stats["events_written"] = sink.count
    stats["interrupted"] = interrupted
    click.echo(json.dumps({"session": stats}), err=True)
    if interrupted:
        sys.exit(130)
