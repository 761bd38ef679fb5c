"""`emo-live serve`: run a session and stream its readings to a local web page / WebSocket."""

from __future__ import annotations

from pathlib import Path

import click

from emolive.cli.common import runtime_config, runtime_options
from emolive.cli.session_loop import (
    LoopEnd,
    drive,
    duration_option,
    every_option,
    labels_option,
    open_session,
    report,
    session_config,
)
from emolive.runtime.sinks import CallSink


def _origins(ctx, param, values) -> tuple[str, ...]:
    from emolive.runtime.server import ServerError, normalize_origin

    try:
        return tuple(normalize_origin(v) for v in values)
    except ServerError as e:
        raise click.BadParameter(str(e), ctx, param) from e


@click.command("serve")
@click.option(
    "--source",
    default="0",
    show_default=True,
    help="Camera index, a video or image file, or 'synthetic'.",
)
@click.option("--bundle", type=click.Path(path_type=Path), default=None)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback requires --token. Requests must name it "
    "(or localhost/127.0.0.1/[::1] on loopback) in Host, with the port, or get 403.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--token", default=None, help="Shared secret clients pass as ?token=...")
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    callback=_origins,
    metavar="ORIGIN",
    help="Let pages from this origin (scheme://host[:port], or null for file:// pages) read "
    "the stream; repeatable. Browsers from other origins than the server's own get 403.",
)
@labels_option
@every_option
@click.option("--no-audio", is_flag=True, help="Video only.")
@click.option(
    "--realtime/--all-frames",
    default=True,
    show_default=True,
    help="Pace files like a camera (the page then plays along in real time).",
)
@duration_option
@click.option(
    "--linger",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Keep serving this many seconds after the session ends.",
)
@runtime_options
def serve(source, bundle, host, port, token, allow_origins, labels, every_s, no_audio, realtime,
          duration, linger, device, backend) -> None:  # fmt: skip
    """Serve live readings: a web page at http://HOST:PORT/ and a WebSocket at /ws.

    Only pages this server serves may read it: a browser's Origin must be the server's own
    or one given with --allow-origin, and Host must name the server (no DNS rebinding).
    Clients' messages are read and discarded (over 4 KiB closes the client), dead clients
    go within 12 s, and a slow client loses its oldest events beyond 1,000 waiting.

    \b
    Examples:
      emo-live serve --source 0
      emo-live serve --source clip.mp4 --no-audio --linger 60
      emo-live serve --source 0 --labels "calm,stressed,excited" --every 3
      emo-live serve --allow-origin http://localhost:3000   # a kiosk app on its own server
      emo-live serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    import time

    from emolive.runtime.server import ReadingServer, ServerError
    from emolive.runtime.session import SessionError

    runtime = runtime_config(device, backend)  # before anything loads
    config = session_config(
        bundle=bundle, source=source, labels=labels, every_s=every_s, duration=duration,
        realtime=realtime, audio=not no_audio, runtime=runtime,
    )  # fmt: skip
    session = open_session(config)
    try:
        server = ReadingServer(host, port, token, allow_origins=allow_origins).start()
    except (ServerError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"serving readings at {server.url} (WebSocket /ws); Ctrl-C stops", err=True)
    end = None
    try:
        end = drive(session, [CallSink(server.publish)])
        if not end.forced:  # a second Ctrl-C also skips the linger
            time.sleep(linger)
    except KeyboardInterrupt:
        end = end or LoopEnd(interrupted=True, forced=True)
    except SessionError as e:
        raise click.ClickException(str(e)) from e
    finally:
        server.stop()
    report(session, end, outer=server.stats())
