"""Where readings go: JSON lines to a file or stdout, flushed per event."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import TextIO

from emolive.runtime.readings import dumps


class SinkError(RuntimeError):
    """A sink could not write; the message names the file and the cause."""


class SinkClosed(SinkError):
    """The reader closed the pipe; not an error for the user."""


class JsonLines:
    """One JSON object per line; each line is flushed so nothing written is lost on a stop."""

    def __init__(self, target: Path | str | None = None) -> None:
        self.path = None if target in (None, "-") else Path(target)
        try:
            self._f: TextIO = open(self.path, "w", encoding="utf-8") if self.path else sys.stdout
        except OSError as e:
            raise SinkError(f"cannot open {self.path} for writing: {e.strerror}") from e
        self.count = 0

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "stdout"

    def write(self, event: dict) -> None:
        try:
            self._f.write(dumps(event) + "\n")
            self._f.flush()
        except BrokenPipeError as e:
            # The reader went away (`| head`): like any Unix filter, stop quietly.
            raise SinkClosed(
                f"{self.name} was closed by its reader after {self.count} events"
            ) from e
        except OSError as e:
            why = "disk full" if e.errno == errno.ENOSPC else e.strerror
            raise SinkError(
                f"cannot write to {self.name} ({why}); {self.count} events were written before"
            ) from e
        self.count += 1

    def close(self) -> None:
        if self.path:
            self._f.close()
