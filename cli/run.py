"""`emo-live run`: the live session from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from emolive.cli.common import (
    PositiveSeconds,
    check_labels,
    check_output_path,
    default_bundle,
    graceful_stop,
)


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
    help="Bundle folder (default: bundles/lite or $EMOLIVE_BUNDLE).",
)
@click.option(
    "--jsonl",
    type=str,
    default="-",
    show_default=True,
    callback=check_output_path,
    help="Write events as JSON lines to this file ('-' = stdout); checked before models load.",
)
@click.option(
    "--duration", type=PositiveSeconds(), default=None, help="Stop after this many seconds."
)
@click.option(
    "--labels",
    default="fer",
    show_default=True,
    callback=check_labels,
    help="Label set: fer (7), mer (6), or your own comma-separated list.",
)
@click.option(
    "--every",
    "every_s",
    type=PositiveSeconds(),
    default=5.0,
    show_default=True,
    help="Seconds between readings when nobody speaks (speech closes them anyway).",
)
@click.option(
    "--frame-step",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Analyse every k-th frame.",
)
@click.option("--no-audio", is_flag=True, help="Video only.")
@click.option("--no-video", is_flag=True, help="Audio only.")
@click.option(
    "--audio-source",
    default=None,
    help="mic, mic:INDEX, mic:NAME or an audio file (default: the video file's "
    "audio track, or the default microphone with a camera).",
)
@click.option("--no-reason", is_flag=True, help="Fuse readings without the LLM (no explanation).")
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
    help="Force the vision graphs' precision (default: what the bundle measured "
    "fastest on this device).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="Threads per vision graph session."
)
@click.option("--max-faces", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--tiles",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="2: also search four overlapping tiles for small faces (group shots; slower).",
)
@click.option(
    "--show",
    is_flag=True,
    help="An overlay window with boxes and the current reading (needs a display).",
)
@click.option(
    "--view/--no-view",
    default=None,
    help="A live status line on stderr (default: when stderr is a terminal).",
)
def run(source, bundle, jsonl, duration, labels, every_s, frame_step, no_audio, no_video,
        audio_source, no_reason, realtime, precision, threads, max_faces, tiles, show,
        view) -> None:  # fmt: skip
    """Run emotion recognition on a camera or file and emit readings as JSON lines.

    Per analysed frame and face an `expression` event; per utterance (or every --every
    seconds without speech) an explained `reading` event. Statistics go to stderr at the end.

    \b
    Examples:
      emo-live run --source clip.mp4 --jsonl out.jsonl
      emo-live run --source clip.mp4 --no-audio --jsonl out.jsonl
      emo-live run --source 0 --duration 30 --labels mer
      emo-live run --source 0 --labels "calm,stressed,excited" --show
    """
    from emolive.runtime.bundle import BundleError
    from emolive.runtime.session import Session, SessionConfig, SessionError
    from emolive.runtime.sinks import JsonLines, SinkClosed, SinkError
    from emolive.runtime.terminal import StatusLine
    from emolive.runtime.video import SourceError
    from emolive.runtime.vision.analyzer import VisionConfig

    config = SessionConfig(
        bundle=bundle or default_bundle(),
        source=source,
        video=not no_video,
        audio=not no_audio,
        audio_source=audio_source,
        duration=duration,
        realtime=realtime,
        every=frame_step,
        every_s=every_s,
        labels=labels,
        reason=not no_reason,
        vision=VisionConfig(precision=precision, threads=threads, max_faces=max_faces, tiles=tiles),
    )
    overlay = None
    if show:
        from emolive.runtime.overlay import DisplayError, OverlayWindow

        try:
            overlay = OverlayWindow()
        except DisplayError as e:
            raise click.ClickException(str(e)) from e
    try:
        session = Session(config, on_frame=overlay.on_frame if overlay else None)
    except (BundleError, SourceError, SessionError, RuntimeError, ValueError) as e:
        if overlay is not None:
            overlay.close()
        raise click.ClickException(str(e)) from e
    try:
        sink = JsonLines(jsonl)
    except SinkError as e:  # the path was checked before the models loaded; it changed since
        if overlay is not None:
            overlay.close()
        raise click.ClickException(str(e)) from e
    status = StatusLine() if (view if view is not None else sys.stderr.isatty()) else None
    interrupted = False
    failed: SinkError | None = None  # the output could not be written: stop, keep the stats
    try:
        with session, graceful_stop(session) as signals:
            try:
                for event in session:
                    sink.write(event)
                    if status is not None:
                        status.update(event)
                    if overlay is not None:
                        overlay.on_event(event)
                        if not overlay.refresh():
                            session.stop()
            except KeyboardInterrupt:  # a second Ctrl-C: stop without waiting
                pass
            except SinkClosed:
                raise
            except SinkError as e:  # a full disk, an I/O error: leaving the loop stops the session
                failed = e
        interrupted = signals["interrupted"]
    except SessionError as e:
        raise click.ClickException(f"{e} ({sink.count} events written to {sink.name})") from e
    except SinkClosed:
        # Detach stdout so Python's exit flush does not hit the closed pipe again.
        sys.stdout = None
        return
    finally:
        try:
            sink.close()
        except SinkError as e:
            failed = failed or e
        if status is not None:
            status.close()
        if overlay is not None:
            overlay.close()
    stats = session.stats()
    stats["events_written"] = sink.count
    stats["interrupted"] = interrupted
    if failed is not None:
        stats["output_error"] = str(failed)
    click.echo(json.dumps({"session": stats}), err=True)
    if failed is not None:
        raise click.ClickException(str(failed))
    if interrupted:
        sys.exit(130)
