"""`emo-live export`: build a profile's bundle (lite: from the pinned model sources)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from emolive.cli.common import default_bundle


@click.command("export")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Bundle folder to write (default: bundles/lite or $EMOLIVE_BUNDLE).",
)
@click.option(
    "--profile",
    default="lite",
    show_default=True,
    help="The bundle's profile (export/profiles.py lists them).",
)
@click.option(
    "--stage", "stages", multiple=True, help="Export only these stages (repeatable); default: all."
)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="affectgpt, emotion_llama: the training checkpoint (.pth).")  # fmt: skip
@click.option("--vision", type=click.Path(path_type=Path), default=None,
              help="affectgpt: the CLIP folder (Hugging Face layout); emotion_llama: a folder "
                   "with eva_vit_g.pth, mae/ and videomae/.")  # fmt: skip
@click.option("--audio", type=click.Path(path_type=Path), default=None,
              help="affectgpt, emotion_llama: the HuBERT folder (Hugging Face layout).")  # fmt: skip
@click.option("--llm", type=click.Path(path_type=Path), default=None,
              help="affectgpt: the Qwen2 folder; emotion_llama: the LLaMA-2 chat folder "
                   "(Hugging Face layout).")  # fmt: skip
@click.option("--mode", type=click.Choice(["face", "frame"]), default=None,
              help="affectgpt: the visual input, face crops or whole frames (default: as the "
                   "checkpoint's saved config says; one that contradicts it is followed with "
                   "a warning).")  # fmt: skip
def export(
    out: Path | None, profile: str, stages: tuple[str, ...], checkpoint, vision, audio, llm, mode
) -> None:
    """Export every stage's model to ONNX, check each graph against its reference, write a bundle.

    Needs the export extra (torch) and the fetched sources (`emo-live models fetch`).
    Nothing is written unless every check passes.

    \b
    Example:
      emo-live export --out bundles/lite
      emo-live export --out /tmp/b --stage vision
      emo-live export --profile affectgpt --checkpoint ckpt.pth --vision clip-vit-large-patch14
        --audio chinese-hubert-large --llm Qwen2.5-7B-Instruct --out bundles/affectgpt
        [--mode face]
      emo-live export --profile emotion_llama --checkpoint Emotion_LLaMA.pth --vision vision
        --audio chinese-hubert-large --llm Llama-2-7b-chat-hf --out bundles/emotion_llama
    """
    from emolive.export.profiles import (
        PROFILES,
        export_profile,
        option_problems,
        options_of,
        stages_of,
    )

    if profile not in PROFILES:
        raise click.BadParameter(
            f"no profile {profile!r}; choose one of {', '.join(PROFILES)}", param_hint="--profile"
        )
    table = stages_of(profile)
    unknown = [s for s in stages if s not in table]
    if unknown:
        raise click.BadParameter(
            f"{profile} has no stage(s) {unknown}; choose from {', '.join(table)}",
            param_hint="--stage",
        )
    given = {"checkpoint": checkpoint, "vision": vision, "audio": audio, "llm": llm, "mode": mode}
    extra, absent = option_problems(profile, given)
    if extra:
        raise click.BadParameter(f"only for a profile that takes it, not {profile}",
                                 param_hint=f"--{extra[0]}")  # fmt: skip
    if absent:
        raise click.BadParameter(f"--profile {profile} needs it", param_hint=f"--{absent[0]}")
    required, optional = options_of(profile)
    options = {k: v for k, v in given.items() if k in required or k in optional}
    names = list(stages) or list(table)
    out = out or default_bundle()
    with click.progressbar(
        length=len(names), label="export", file=click.get_text_stream("stderr")
    ) as bar:

        def log(msg: str) -> None:
            if msg.startswith("exporting "):
                bar.update(1)
            click.echo(f"\n{msg}", err=True)

        try:
            checks = export_profile(profile, out, names, log=log, options=options)
        except Exception as e:
            raise click.ClickException(f"export failed, nothing written to {out}: {e}") from e
    click.echo(json.dumps({"bundle": str(out), "checks": checks}, indent=2, default=str))
