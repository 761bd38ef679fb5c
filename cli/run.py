"""`emo-live run`: the live session from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from emolive.cli.common import check_output_path, default_bundle, runtime_config, runtime_options
from emolive.cli.session_loop import (
    drive,
    duration_option,
    every_option,
    labels_option,
    open_session,
    report,
    session_config,
)
from emolive.runtime.sinks import CallSink


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
@duration_option
@labels_option
@every_option
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
    help="Force the encoders' precision: lite's vision graphs, the affectgpt / emotion_llama "
    "encoders that have that variant (default: what the bundle measured fastest on this "
    "device).",
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
@runtime_options
def run(source, bundle, jsonl, duration, labels, every_s, frame_step, no_audio, no_video,
        audio_source, no_reason, realtime, precision, threads, max_faces, tiles, show,
        view, device, backend) -> None:  # fmt: skip
    """Run emotion recognition on a camera or file and emit readings as JSON lines.

    Per analysed frame and face an `expression` event; per utterance (or every --every
    seconds without speech) an explained `reading` event. Statistics go to stderr at the end.

    \b
    Examples:
      emo-live run --source clip.mp4 --jsonl out.jsonl
      emo-live run --source clip.mp4 --no-audio --jsonl out.jsonl
      emo-live run --source 0 --duration 30 --labels mer
      emo-live run --source 0 --labels "calm,stressed,excited" --show
      emo-live run --source clip.mp4 --device cuda
    """
    from emolive.runtime.profiles import forced_precision

    # Checked first: a device this machine lacks fails before anything loads.
    forced = forced_precision(bundle or default_bundle(), precision) if precision else None
    if precision and not forced:
        raise click.BadParameter(
            f"the bundle has no {precision} variant of a graph this option can force "
            f"(`emo-live calibrate` makes int8 ones)", param_hint="--precision",
        )  # fmt: skip
    runtime = runtime_config(device, backend, precision=forced)
    from emolive.runtime.session import SessionError
    from emolive.runtime.sinks import SinkClosed, SinkError
    from emolive.runtime.sinks.jsonl import JsonLines
    from emolive.runtime.sinks.terminal import StatusLine

    config = session_config(
        bundle=bundle, source=source, labels=labels, every_s=every_s, duration=duration,
        realtime=realtime, audio=not no_audio, video=not no_video, audio_source=audio_source,
        frame_step=frame_step, reason=not no_reason,
        vision={"precision": precision, "threads": threads, "max_faces": max_faces,
                "tiles": tiles},
        runtime=runtime,
    )  # fmt: skip
    overlay = None
    if show:
        from emolive.runtime.sinks.overlay import DisplayError, OverlaySink, OverlayWindow

        try:
            overlay = OverlayWindow()
        except DisplayError as e:
            raise click.ClickException(str(e)) from e
    session = open_session(config, cleanup=overlay.close if overlay else None)
    try:
        sink = JsonLines(jsonl)
    except SinkError as e:  # the path was checked before the models loaded; it changed since
        if overlay is not None:
            overlay.close()
        raise click.ClickException(str(e)) from e
    sinks = [sink]
    if view if view is not None else sys.stderr.isatty():
        status = StatusLine()
        sinks.append(CallSink(status.update, status.close))
    if overlay is not None:
        sinks.append(OverlaySink(overlay, session.latest_frame, session.stop))
    try:
        end = drive(session, sinks)
    except SessionError as e:
        raise click.ClickException(f"{e} ({sink.count} events written to {sink.name})") from e
    except SinkClosed:
        # Detach stdout so Python's exit flush does not hit the closed pipe again.
        sys.stdout = None
        return
    report(session, end, events_written=sink.count)
    if end.failed is not None:
        raise click.ClickException(str(end.failed))
    if end.interrupted:
        sys.exit(130)
