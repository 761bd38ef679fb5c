"""`emo-live reason`: one explained emotion reading from clues, printed as JSON.

The live pipeline calls the same ``Reasoner``; this command is for trying prompts and label
sets by hand and for scripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from emolive.cli.common import (
    FiniteFloatRange,
    check_labels,
    default_bundle,
    runtime_config,
    runtime_options,
)
from emolive.runtime.names import LLM_PRECISIONS


@click.command("reason")
@click.option(
    "--clues",
    "clues_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='JSON file: {"visual": [...], "audio": [...], "text": [...], "transcript": "..."}.',
)
@click.option("--visual", multiple=True, help="A visual (face) clue; repeatable.")
@click.option("--audio", multiple=True, help="An acoustic (voice) clue; repeatable.")
@click.option("--text", "text_clues", multiple=True, help="A lexical clue; repeatable.")
@click.option("--transcript", default=None, help="What was said (quoted as data in the prompt).")
@click.option(
    "--labels",
    default="fer",
    show_default=True,
    callback=check_labels,
    help="'fer' (7), 'mer' (6) or a comma-separated list of your own (2 to 64 labels).",
)
@click.option("--bundle", type=click.Path(path_type=Path), default=None, help="Bundle folder.")
@click.option(
    "--precision",
    type=click.Choice(LLM_PRECISIONS),
    default=None,
    help="LLM weight form (default: the one the bundle prefers).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime threads.")
@click.option(
    "--max-context",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="KV cache tokens.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="Explanation budget.",
)
@click.option(
    "--top-p",
    type=FiniteFloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Sample the explanation from this much probability mass, in (0, 1] (default greedy).",
)
@click.option(
    "--temperature",
    type=FiniteFloatRange(min=0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="With --top-p: the sampling temperature (> 0).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--no-calibration", is_flag=True, help="Raw label scores (no content-free prompts).")
@click.option("--no-explanation", is_flag=True, help="Label scores only.")
@click.option("--stream", is_flag=True, help="Echo the explanation to stderr as it is written.")
@runtime_options
def reason(
    clues_file, visual, audio, text_clues, transcript, labels, bundle, precision, threads,
    max_context, max_tokens, top_p, temperature, seed, no_calibration, no_explanation, stream,
    device, backend,
) -> None:  # fmt: skip
    """Read one emotion from clues: label scores from the LLM, then its explanation.

    Clues come from a JSON file, from options, or both (options add to the file's).

    \b
    Examples:
      emo-live reason --clues clues.json
      emo-live reason --visual "expression: happy 0.72" --audio "pitch: high" \\
          --transcript "We won!" --labels mer
      emo-live reason --clues clues.json --labels "calm,tense,joyful" --stream
    """
    from emolive.runtime.bundle import BundleError
    from emolive.runtime.llm import Llm, LlmOptions
    from emolive.runtime.llm.tokenizer import TokenizerError
    from emolive.runtime.reasoning import (
        ClueError,
        Clues,
        LabelSet,
        LabelSetError,
        Reasoner,
        ReasonerConfig,
    )

    try:
        base = Clues.from_json_file(clues_file) if clues_file else Clues()
        extra = Clues.from_mapping(
            {"visual": list(visual), "audio": list(audio), "text": list(text_clues),
             "transcript": transcript or ""}, where="options",
        )  # fmt: skip
        clues = Clues(
            visual=base.visual + extra.visual,
            audio=base.audio + extra.audio,
            text=base.text + extra.text,
            transcript=extra.transcript or base.transcript,
        )
    except ClueError as e:
        raise click.BadParameter(str(e)) from e
    runtime = runtime_config(device, backend)  # before the LLM loads
    label_set = LabelSet(labels)  # checked by the --labels callback
    if clues.empty:
        raise click.UsageError(
            "no clues: give --clues FILE or --visual/--audio/--text/--transcript"
        )

    config = ReasonerConfig(
        labels=label_set.labels,
        calibrate=not no_calibration,
        explain=not no_explanation,
        max_explanation_tokens=max_tokens,
        top_p=top_p,
        temperature=temperature,
        seed=seed,
    )
    options = LlmOptions(precision=precision, threads=threads, max_context=max_context)
    on_token = (lambda t: print(t.text, end="", file=sys.stderr, flush=True)) if stream else None
    try:
        llm = Llm.from_bundle(bundle or default_bundle(), options, runtime=runtime)
        reasoner = Reasoner(llm, config)
        reading = reasoner.reason(clues, on_token=on_token)
    except (BundleError, KeyError, TokenizerError, ClueError, LabelSetError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if stream:
        print(file=sys.stderr)
    click.echo(json.dumps(reading, ensure_ascii=False, indent=2))
