"""`emo-live serve`: run a session and stream its readings to a local web page / WebSocket."""

from __future__ import annotations

import json
from pathlib import Path

import click

from emolive.cli.common import default_bundle, graceful_stop


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
    help="Address to bind; anything but loopback requires --token.",
)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--token", default=None, help="Shared secret clients pass as ?token=...")
@click.option("--no-audio", is_flag=True, help="Video only.")
@click.option(
    "--realtime/--all-frames",
    default=True,
    show_default=True,
    help="Pace files like a camera (the page then plays along in real time).",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option(
    "--linger",
    type=float,
    default=0.0,
    help="Keep serving this many seconds after the session ends.",
)
def serve(source, bundle, host, port, token, no_audio, realtime, duration, linger) -> None:  # fmt: skip
    """Serve live readings: a web page at http://HOST:PORT/ and a WebSocket at /ws.

    \b
    Examples:
      emo-live serve --source 0
      emo-live serve --source clip.mp4 --no-audio --linger 60
      emo-live serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    import time

    from emolive.runtime.bundle import BundleError
    from emolive.runtime.server import ReadingServer, ServerError
    from emolive.runtime.session import Session, SessionConfig, SessionError
    from emolive.runtime.video import SourceError

    config = SessionConfig(
        bundle=bundle or default_bundle(), source=source, audio=not no_audio,
        duration=duration, realtime=realtime,
    )  # fmt: skip
    try:
        session = Session(config)
        server = ReadingServer(host, port, token).start()
    except (BundleError, SourceError, SessionError, ServerError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"serving readings at {server.url} (WebSocket /ws); Ctrl-C stops", err=True)
    try:
        with session, graceful_stop(session):
            for event in session:
                server.publish(event)
        time.sleep(linger)
    except KeyboardInterrupt:
        pass
    except SessionError as e:
        raise click.ClickException(str(e)) from e
    finally:
        server.stop()
    click.echo(json.dumps({"session": session.stats(), "published": server.published}), err=True)
