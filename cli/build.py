"""`emo-live build`: device variants (fp16) of a bundle's graphs, checked on the device."""

from __future__ import annotations

import json
from pathlib import Path

import click

from emolive.cli.common import default_bundle


@click.command("build")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The bundle to add variants to (default: bundles/lite or $EMOLIVE_BUNDLE).",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "tensorrt"]),
    required=True,
    help="The device the variants are checked on and meant for (this machine's).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp16", "int8", "int4", "int4f", "w8a8"]),
    default="fp16",
    show_default=True,
    help="fp16: converted from fp32; int8/int4/int4f/w8a8: forms the bundle already has "
    "(export, calibrate), checked on DEVICE and recorded for it.",
)
@click.option(
    "--graph",
    "graphs",
    multiple=True,
    help="Only this graph (repeatable; default: every graph of the manifest).",
)
@click.option(
    "--prefer/--no-prefer",
    default=None,
    help="Make the variants the device's preferred precision (default: yes on cuda and "
    "tensorrt; no on the cpu, where calibrate chose the fastest form and fp16 is slower).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
def build(bundle, device, precision, graphs, prefer, as_json) -> None:  # fmt: skip
    """Add PRECISION variants of every graph in BUNDLE, checked on DEVICE before written.

    fp16: each graph's fp32 variant is converted (inputs and outputs stay fp32, a decoder's
    KV cache goes fp16); int8/int4/int4f/w8a8: the bundle's own form is used as it is. Each
    runs on DEVICE and is compared with the graph's parity probe; a variant that strays past
    the bound, or does not run there, is not written and the command exits 1 naming it.
    Written variants are recorded per device in the manifest, and the runtime's gate checks
    them again at load.

    \b
    Example:
      emo-live build --bundle bundles/lite --device cuda
      emo-live build --bundle bundles/lite --device cpu --graph expression
      emo-live build --bundle bundles/lite --device cuda --precision int4 --graph llm_decoder
    """
    from emolive.export.device import BuildConfig, BuildError, build_device_variants
    from emolive.runtime.backends import DeviceUnavailable
    from emolive.runtime.bundle import BundleError

    root = bundle or default_bundle()
    config = BuildConfig(device=device, precision=precision, graphs=graphs, prefer=prefer)
    try:
        outcomes = build_device_variants(root, config, log=lambda m: click.echo(m, err=True))
    except DeviceUnavailable as e:
        raise click.ClickException(f"cannot build for {device} on this machine: {e}") from e
    except (BuildError, BundleError) as e:
        raise click.ClickException(str(e)) from e
    report = {
        "bundle": str(root),
        "device": device,
        "precision": precision,
        "graphs": {n: {"written": o.written, **o.record()} for n, o in outcomes.items()},
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for name, o in outcomes.items():
            state = f"written (deviation {o.deviation:.3g})" if o.written else o.reason
            click.echo(f"{name}: {state}")
    if (
        outcomes
        and not any(o.written for o in outcomes.values())
        and all(o.kept for o in outcomes.values())
        and precision != "fp16"
    ):
        raise click.ClickException(f"no graph of {root} has a {precision} variant to check")
    refused = [n for n, o in outcomes.items() if not o.written and not o.kept]
    if refused:
        raise click.ClickException(
            f"{len(refused)} of {len(outcomes)} graphs got no {precision} variant for {device}: "
            f"{', '.join(refused)} (they run their fp32 variant there)"
        )
