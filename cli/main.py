"""`emo-live`: the command line. Each command lives in its own module and registers here."""

from __future__ import annotations

import click

import emolive
from emolive.cli import bench, build, calibrate, doctor, eval, export, models, reason, run, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(emolive.__version__, prog_name="emo-live")
def main() -> None:
    """Explainable multimodal emotion recognition on a device, in real time.

    \b
    Typical first run:
      emo-live models fetch          # pinned weights from the package index
      emo-live export --out bundle   # ONNX graphs, checked against their references
      emo-live calibrate bundle      # INT8 Q/DQ graphs + accuracy report
      emo-live run --bundle bundle --source clip.mp4 --no-audio --jsonl out.jsonl
    """


main.add_command(models.models)
main.add_command(bench.bench)
main.add_command(run.run)
main.add_command(export.export)
main.add_command(doctor.doctor)
main.add_command(serve.serve)
main.add_command(calibrate.calibrate)
main.add_command(build.build)
main.add_command(reason.reason)
main.add_command(eval.eval_command)


if __name__ == "__main__":
    main()
