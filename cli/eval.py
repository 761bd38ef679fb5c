"""`emo-live eval`: how right a bundle's readings are on labelled data."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from emolive.cli.common import default_bundle, parse_labels


@click.command("eval")
@click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path),
    required=True,
    help="A manifest CSV (path,label[,text][,clues]), MELD's *_sent_emo.csv or GoEmotions' .tsv.",
)
@click.option(
    "--reader",
    type=click.Choice(["manifest", "meld", "goemotions"]),
    default=None,
    help="How to read --data (default: inferred: .tsv is GoEmotions, a CSV with MELD's "
    "Utterance/Emotion columns is MELD, else a manifest).",
)
@click.option(
    "--labels",
    default=None,
    help="Label set the readings choose from: fer, mer or a comma-separated list "
    "(default: the dataset's; for a manifest, fer).",
)
@click.option(
    "--modality",
    type=click.Choice(["face", "voice", "words", "all"]),
    default="all",
    show_default=True,
    help="What of each item to feed: images/video frames, audio, text, or all it has.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N items.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for report.md, report.json and the PNG plots.",
)
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    default=None,
    help="Bundle folder (default: $EMOLIVE_BUNDLE or bundles/lite).",
)
@click.option(
    "--precision",
    type=click.Choice(["bundle", "fp32", "int8", "both"]),
    default="bundle",
    show_default=True,
    help="Graph variants: what the bundle prefers on this CPU, all fp32, all int8 where the "
    "bundle has it, or both fp32 and int8 (the loss from compression on the task).",
)
@click.option(
    "--no-emer",
    is_flag=True,
    help="Skip the EMER metrics on items with reference clues (they run the LLM judge).",
)
@click.option(
    "--no-item-text",
    is_flag=True,
    help="Leave each item's clues and explanation out of report.json (they quote the data; "
    "for reports published where its licence forbids redistributing the text).",
)
def eval_command(
    data, reader, labels, modality, limit, out, bundle, precision, no_emer, no_item_text
) -> None:
    """Evaluate a bundle's readings on labelled data and write a report.

    Each item runs through the bundle's own stages (faces, voice, words, reasoning, fusion)
    as in a session; the readings are scored: accuracy, weighted and macro F1, per-class
    precision and recall, confusion matrix, calibration (ECE, reliability plot), abstention,
    and EMER's clue/label overlap and modality completeness on items with reference clues.

    \b
    Examples:
      emo-live eval --data ../shared/data/text/meld/dev_sent_emo.csv --modality words \\
          --limit 300 --out eval/meld-dev
      emo-live eval --data my_clips.csv --precision both --out eval/mine
    """
    from emolive.calibrate.eval import readers
    from emolive.calibrate.eval.evaluate import EvalConfig, evaluate
    from emolive.calibrate.eval.items import EvalError
    from emolive.calibrate.eval.report import fmt, write
    from emolive.runtime.bundle import BundleError

    label_set = parse_labels(labels) if labels else None
    try:
        dataset = readers.read(data, reader, label_set)
    except readers.DatasetError as e:
        raise click.BadParameter(str(e), param_hint="--data") from e
    bundle = bundle or default_bundle()
    precisions = {"bundle": (None,), "both": ("fp32", "int8")}.get(precision, (precision,))
    config = EvalConfig(
        bundle=bundle, modality=modality, precisions=precisions, labels=label_set,
        limit=limit, emer=not no_emer, command=_command_line(),
    )  # fmt: skip

    def progress(items, label):
        return click.progressbar(items, label=label, file=sys.stderr, show_pos=True)

    try:
        report = evaluate(dataset, config, progress)
    except (readers.DatasetError, BundleError, EvalError) as e:
        raise click.ClickException(str(e)) from e
    files = write(report, out, item_text=not no_item_text)
    for name, run in report["runs"].items():
        m = run["metrics"]
        click.echo(
            f"{name}: {m['n']} items, accuracy {fmt(m['all']['accuracy'])} "
            f"(answered {fmt(m['answered']['accuracy'])}), weighted F1 "
            f"{fmt(m['all']['weighted_f1'])}, macro F1 {fmt(m['all']['macro_f1'])}, ECE "
            f"{fmt(m['calibration']['ece'])}, abstained {m['abstained']}"
        )
    click.echo(f"report: {', '.join(str(f) for f in files)}")


def _command_line() -> str:
    """The command as given: the options the user set, in the command's order."""
    ctx = click.get_current_context()
    words = ["emo-live", "eval"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name == "DEFAULT":
            continue
        value = ctx.params[param.name]
        flag = param.opts[0]
        if getattr(param, "is_flag", False):
            words.append(flag)
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)
