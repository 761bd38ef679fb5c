"""`emo-live bench`: run the benchmarks of a source checkout and record their results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from emolive.cli.common import default_bundle, runtime_config, runtime_options

SUITES = ("vision", "audio", "llm", "live")


def _benchmarks_dir() -> Path:
    # The benchmarks live in the repository, beside the package folders (not in a wheel).
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / "benchmarks" / "vision.py").is_file():
            return root / "benchmarks"
    raise click.ClickException(
        "no benchmarks/ folder found: run `emo-live bench` from an emo-live source checkout"
    )


@click.command("bench")
@click.argument("suites", nargs=-1, type=click.Choice([*SUITES, "all"]))
@click.option("--bundle", type=click.Path(path_type=Path), default=None)
@runtime_options
def bench(suites: tuple[str, ...], bundle: Path | None, device, backend) -> None:
    """Run benchmarks side by side with their peers; results go to benchmarks/results/*.json.

    vision: the vision stage vs the `fer` package; audio: VAD, prosody, ASR; llm: the LLM
    forms vs llama.cpp; live: a clip through the whole session.

    \b
    Example:
      emo-live bench vision
      emo-live bench all --bundle bundles/lite
    """
    runtime = runtime_config(device, backend)  # a device this machine lacks: one line, now
    if runtime.device != "cpu":
        raise click.ClickException(
            f"the benchmark scripts measure the CPU only; route {runtime.route} is checked "
            "and available here, but benchmarks/*.py do not take a device yet"
        )
    folder = _benchmarks_dir()
    chosen = SUITES if not suites or "all" in suites else suites
    for suite in chosen:
        script = folder / f"{suite}.py"
        if not script.is_file():
            raise click.ClickException(f"no benchmark script {script}")
        args = [sys.executable, str(script), "--bundle", str(bundle or default_bundle())]
        click.echo(f"== {suite}: {' '.join(args)}", err=True)
        if subprocess.run(args).returncode != 0:
            raise click.ClickException(f"benchmark {suite} failed")
