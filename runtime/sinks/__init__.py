"""Where events go: JSON lines (``jsonl``), the terminal status line (``terminal``), the overlay
window (``overlay``) and the reading server (``emolive.runtime.server``).

Every sink has one small protocol: ``write(event)`` once per event, in order, and an optional
``close()``. ``FanOut`` hands each event to every sink in turn and closes them all; ``run`` and
``serve`` both drive their sinks through it. Sinks consume what stages produce and never import
a stage (``tests/test_import_rules.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class SinkError(RuntimeError):
    """A sink could not write; the message names the file and the cause."""


class SinkClosed(SinkError):
    """The reader closed the pipe; not an error for the user."""


class Sink(Protocol):
    """``write`` is called once per event, in order. A ``SinkError`` it raises ends the
    session's loop; ``close``, where a sink has one, is called at the end in every case."""

    def write(self, event: dict) -> None: ...


class CallSink:
    """A sink from plain callables (a status line's update, a server's publish)."""

    def __init__(self, write: Callable[[dict], None], close: Callable[[], None] | None = None):
        self.write = write
        if close is not None:
            self.close = close


class FanOut:
    """Several sinks as one: each event goes to every sink in order; ``close`` closes every
    sink, even after one failed, and raises the first ``SinkError`` of those closes."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def write(self, event: dict) -> None:
        for sink in self.sinks:
            sink.write(event)

    def close(self) -> None:
        first: SinkError | None = None
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is None:
                continue
            try:
                close()
            except SinkError as e:
                first = first or e
        if first is not None:
            raise first
