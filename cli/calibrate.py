"""`emo-live calibrate`: explicit INT8 (Q/DQ) variants of a bundle's vision graphs + report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from emolive.cli.common import FiniteFloatRange, default_bundle

LLM_PROFILES = ("affectgpt", "emotion_llama")  # calibrate/affectgpt/profiles.py


@click.command("calibrate")
@click.argument("bundle", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--method",
    type=click.Choice(["percentile", "minmax"]),
    default="percentile",
    show_default=True,
    help="How activation ranges are fitted on the calibration set.",
)
@click.option(
    "--percentile",
    type=FiniteFloatRange(90.0, 100.0, min_open=True),
    default=99.999,
    show_default=True,
    help="With --method percentile: share of activation values the int8 range must cover, "
    "in (90, 100].",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="At most N calibration samples per graph, spread over the set (default: all).",
)
@click.option(
    "--media",
    "media",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Calibrate on these photos/clips (files or folders; repeatable) instead of the "
    "built-in set; evaluation stays on the built-in held-out media.",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="With --media: use every N-th frame of a clip.",
)
@click.option("--no-cache", is_flag=True, help="Rebuild the calibration set even if cached.")
@click.option(
    "--llm-forms",
    default=None,
    help="affectgpt and emotion_llama bundles: the LLM weight forms to add, comma-separated, '' for none "
    "(default: int8,int4,int4f,w8a8).",
)
def calibrate(
    bundle: Path | None,
    method: str,
    percentile: float,
    samples: int | None,
    media: tuple[Path, ...],
    every: int,
    no_cache: bool,
    llm_forms: str | None,
) -> None:
    """Add INT8 Q/DQ variants of BUNDLE's vision graphs, with an fp32-vs-int8 report.

    The calibration set is made by the runtime's own preprocessing from the pinned test
    media (fetch them with `emo-live models fetch --tests`); int8 is then compared with fp32
    on held-out media and timed on the CPU. The int8 graphs, calibration_report.json/.md and
    each graph's preferred precision per device are written into the bundle only if every
    graph meets its agreement floor; otherwise nothing in the bundle changes.

    An affectgpt bundle gets int8 variants of its vision and audio encoders (an emotion_llama
    bundle: of EVA, MAE, VideoMAE and HuBERT), each written
    only if its token cosine with fp32 is >= 0.99 on every held-out window and the greedy
    answers on a fixed prompt set stay identical (a refused one is named in the report), and
    the LLM's int8/int4/int4f/w8a8 weight forms with the lite LLM's form report.

    BUNDLE defaults to bundles/lite (or $EMOLIVE_BUNDLE).

    \b
    Example:
      emo-live calibrate bundles/lite
      emo-live calibrate bundles/lite --method minmax --samples 64
      emo-live calibrate bundles/lite --media ~/kiosk-footage --every 10
      emo-live calibrate bundles/affectgpt --llm-forms int8,int4f
    """
    from emolive.calibrate.media import CALIBRATION_MEDIA, MediaSplitError, user_media
    from emolive.calibrate.qdq import QuantConfig, QuantizationError
    from emolive.calibrate.report import REPORT_MD, render_markdown
    from emolive.calibrate.sets import CalibrationSetError
    from emolive.calibrate.vision import (
        STEPS,
        CalibrationConfig,
        CalibrationRefused,
        calibrate_bundle,
    )
    from emolive.export.sources import SourceError
    from emolive.runtime.bundle import BundleError

    bundle = bundle or default_bundle()
    if _profile(bundle) in LLM_PROFILES:
        _calibrate_llm(bundle, method, percentile, samples, media, every, llm_forms)
        return
    if llm_forms is not None:
        raise click.BadParameter("applies to emotion_llama and affectgpt bundles only",
                                 param_hint="--llm-forms")  # fmt: skip
    try:
        config = CalibrationConfig(
            quant=QuantConfig(method=method, percentile=percentile),
            samples=samples,
            calibration_media=user_media(media, every) if media else CALIBRATION_MEDIA,
            cache=not no_cache,
        )
    except MediaSplitError as e:
        raise click.BadParameter(str(e), param_hint="--media") from e
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    with click.progressbar(length=len(STEPS), label="calibrate", file=sys.stderr) as bar:
        done = []

        def on_step(name: str) -> None:
            if done:
                bar.update(1)
            done.append(name)
            bar.label = f"calibrate: {name}"

        try:
            report = calibrate_bundle(
                bundle, config, log=lambda m: click.echo(f"\n{m}", err=True), on_step=on_step
            )
        except CalibrationRefused as e:
            click.echo("\n" + render_markdown(e.report), err=True)
            raise click.ClickException(str(e)) from e
        except (
            BundleError,
            MediaSplitError,
            QuantizationError,
            CalibrationSetError,
            SourceError,
        ) as e:
            raise click.ClickException(f"calibration failed, {bundle} unchanged: {e}") from e
        bar.update(1)
    click.echo(f"report: {bundle / REPORT_MD}", err=True)
    click.echo(json.dumps({"bundle": str(bundle), "calibration": _short(report)}, indent=2))


def _calibrate_llm(bundle, method, percentile, samples, media, every, llm_forms) -> None:
    from emolive.calibrate.affectgpt.bundle import LlmCalibrationConfig, calibrate_llm_bundle
    from emolive.calibrate.affectgpt.forms import FORMS, FormError
    from emolive.calibrate.affectgpt.report import REPORT_MD, render_markdown
    from emolive.calibrate.media import MediaSplitError, user_media
    from emolive.calibrate.qdq import QuantConfig, QuantizationError
    from emolive.calibrate.vision import CalibrationRefused
    from emolive.runtime.bundle import BundleError

    forms = (
        FORMS if llm_forms is None else tuple(f.strip() for f in llm_forms.split(",") if f.strip())
    )
    try:
        config = LlmCalibrationConfig(
            quant=QuantConfig(method=method, percentile=percentile),
            samples=samples,
            llm_forms=forms,
            **({"calibration_media": user_media(media, every)} if media else {}),
        )
    except MediaSplitError as e:
        raise click.BadParameter(str(e), param_hint="--media") from e
    except ValueError as e:
        hint = "--llm-forms" if "LLM form" in str(e) else None
        raise click.BadParameter(str(e), param_hint=hint) from e
    try:
        report = calibrate_llm_bundle(bundle, config, log=lambda m: click.echo(m, err=True))
    except CalibrationRefused as e:
        click.echo(render_markdown(e.report), err=True)
        raise click.ClickException(str(e)) from e
    except (BundleError, FormError, MediaSplitError, QuantizationError, FileNotFoundError) as e:
        raise click.ClickException(f"calibration failed, {bundle} unchanged: {e}") from e
    for graph, why in report["refused"].items():
        click.echo(f"refused {graph}: {'; '.join(why)}", err=True)
    click.echo(f"report: {bundle / REPORT_MD}", err=True)
    short = {k: report[k] for k in ("passed", "written", "refused", "notes")}
    short["llm_prefer_cpu"] = report["llm"].get("prefer")
    click.echo(json.dumps({"bundle": str(bundle), "calibration": short}, indent=2))


def _profile(bundle: Path) -> str | None:
    """The profile the bundle's manifest names (None: no readable manifest; the lite path
    then reports what is wrong with it)."""
    try:
        return json.loads((bundle / "manifest.json").read_text()).get("profile")
    except (OSError, ValueError, AttributeError):
        return None


def _short(report: dict) -> dict:
    out = {"passed": report["passed"], "notes": report["notes"], "graphs": {}}
    for name, g in report["graphs"].items():
        out["graphs"][name] = {"agreement": g["agreement"], "latency_cpu": g["latency_cpu"]}
    return out
