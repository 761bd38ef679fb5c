"""What several commands share: where the default bundle lives."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

BUNDLE_ENV = "EMOLIVE_BUNDLE"


def default_bundle() -> Path:
    """``$EMOLIVE_BUNDLE``, else ``bundles/lite`` under the current folder (what `make demo` writes)."""
    return Path(os.environ.get(BUNDLE_ENV, "bundles/lite"))


@contextlib.contextmanager
def graceful_stop(session):
    """SIGINT/SIGTERM ask the session to stop cleanly: capture ends, the last window is still
    explained and written. A second SIGINT stops at once. Yields a dict telling whether a
    signal came."""
    state = {"interrupted": False}

    def handler(signum, frame):
        if state["interrupted"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state["interrupted"] = True
        session.stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def parse_labels(spec: str) -> tuple[str, ...]:
    """``fer``, ``mer``, or a comma-separated list of labels (open vocabulary), checked by the
    reasoning stage's own rule (``LabelSet``: 2..64 labels, no duplicates) so that `run` and
    `reason` accept the same lists."""
    import click

    from emolive.runtime.reasoning.labels import LabelSet, LabelSetError

    try:
        return LabelSet.parse(spec).labels
    except LabelSetError as e:
        raise click.BadParameter(str(e), param_hint="--labels") from e
