"""What `run` and `serve` share: the options both take, the session built from them, and the
loop that hands each event to the sinks until the session ends or a signal stops it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from emolive.cli.common import PositiveSeconds, check_labels, default_bundle, graceful_stop

labels_option = click.option(
    "--labels",
    default="fer",
    show_default=True,
    callback=check_labels,
    help="Label set: fer (7), mer (6), or your own comma-separated list.",
)
duration_option = click.option(
    "--duration", type=PositiveSeconds(), default=None, help="Stop after this many seconds."
)
every_option = click.option(
    "--every",
    "every_s",
    type=PositiveSeconds(),
    default=5.0,
    show_default=True,
    help="Seconds between readings when nobody speaks (speech closes them anyway).",
)


def session_config(
    *,
    bundle: Path | None,
    source: str,
    labels: tuple[str, ...],
    every_s: float,
    duration: float | None,
    realtime: bool | None,
    audio: bool = True,
    video: bool = True,
    audio_source: str | None = None,
    frame_step: int = 1,
    reason: bool = True,
    vision: dict | None = None,
    runtime=None,
):
    """The ``SessionConfig`` for the common options; ``vision``: ``VisionConfig`` fields to set
    (default: ``VisionConfig()``); ``runtime``: the ``RuntimeConfig`` from ``--device`` and
    ``--backend`` (``common.runtime_config``; None: the CPU)."""
    from emolive.runtime.session import SessionConfig
    from emolive.runtime.vision.analyzer import VisionConfig

    extra = {} if vision is None else {"vision": VisionConfig(**vision)}
    if runtime is not None:
        extra["runtime"] = runtime
    return SessionConfig(
        bundle=bundle or default_bundle(),
        source=source,
        video=video,
        audio=audio,
        audio_source=audio_source,
        duration=duration,
        realtime=realtime,
        every=frame_step,
        every_s=every_s,
        labels=labels,
        reason=reason,
        **extra,
    )


def open_session(config, cleanup: Callable[[], None] | None = None):
    """The ``Session`` for ``config``; a bundle, source or model that cannot be used is a
    ``click.ClickException`` (exit code 1) with its message, after ``cleanup`` ran."""
    from emolive.runtime.bundle import BundleError
    from emolive.runtime.session import Session, SessionError
    from emolive.runtime.sources.video import SourceError

    try:
        return Session(config)
    except (BundleError, SourceError, SessionError, RuntimeError, ValueError) as e:
        if cleanup is not None:
            cleanup()
        raise click.ClickException(str(e)) from e


@dataclass
class LoopEnd:
    """How the loop ended."""

    interrupted: bool = False  # SIGINT/SIGTERM asked the session to stop
    forced: bool = False  # a second Ctrl-C: stopped without waiting for the session
    failed: Exception | None = None  # a sink could not write (or close): the session stopped


def drive(session, sinks: Sequence) -> LoopEnd:
    """Run ``session`` and hand each event to every sink in turn until it ends. SIGINT and
    SIGTERM stop it cleanly (``graceful_stop``); a second Ctrl-C stops at once. A ``SinkError``
    from a sink ends the loop (which stops the session) and is returned in ``failed``, as is
    the first one from closing the sinks, which happens in every case. ``SinkClosed`` (the
    reader went away) and ``SessionError`` propagate."""
    from emolive.runtime.sinks import FanOut, SinkClosed, SinkError

    end = LoopEnd()
    out = FanOut(sinks)
    try:
        with session, graceful_stop(session) as signals:
            try:
                for event in session:
                    out.write(event)
            except KeyboardInterrupt:  # a second Ctrl-C: stop without waiting
                end.forced = True
            except SinkClosed:
                raise
            except SinkError as e:  # a full disk, an I/O error: leaving the loop stops the session
                end.failed = e
        end.interrupted = signals["interrupted"]
    finally:
        try:
            out.close()
        except SinkError as e:
            end.failed = end.failed or e
    return end


def report(session, end: LoopEnd, *, outer: dict | None = None, **extra) -> dict:
    """Print the statistics line on stderr: ``{"session": {session.stats(), **extra,
    "interrupted", "output_error" (when a sink failed)}, **outer}``; returns it."""
    stats = session.stats()
    stats.update(extra)
    stats["interrupted"] = end.interrupted
    if end.failed is not None:
        stats["output_error"] = str(end.failed)
    line = {"session": stats, **(outer or {})}
    click.echo(json.dumps(line), err=True)
    return line
