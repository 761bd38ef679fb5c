"""Where readings go: JSON lines to a file or stdout, one whole line per event.

Each event line goes to the operating system in one write as soon as it is made, so nothing
written is lost on a stop. A write that fails (a full disk, an I/O error) leaves no partial
line behind in a file this sink opened: the file is cut back to the end of the last whole
line, and the error says how many events that file holds.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import TextIO

from emolive.runtime.readings import dumps
from emolive.runtime.sinks import SinkClosed, SinkError


def _why(e: OSError) -> str:
    return "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))


def check_writable(target: Path | str) -> None:
    """Raise ``SinkError`` (naming the path and the reason) if ``target`` cannot be opened for
    writing: a folder, a missing or non-folder parent, no permission, a read-only file
    system. Nothing is changed: an existing file is opened for appending and not written,
    a new one is created and removed again. FIFOs are not opened (that would wait for a
    reader). Run it before anything slow, so a wrong path is reported at once."""
    path = Path(target)
    try:
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.unlink(path)
            return
        st = os.stat(path)  # follows a symlink; a dangling one raises ENOENT below
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if stat.S_ISFIFO(st.st_mode):
            return
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno == errno.ENOENT:
            missing = path.parent
            while not os.path.lexists(missing.parent) and missing.parent != missing:
                missing = missing.parent
            if not os.path.lexists(missing):
                why += f" (folder {missing} does not exist)"
        elif e.errno == errno.ENOTDIR:
            above = next((p for p in path.parents if os.path.lexists(p) and not p.is_dir()), None)
            if above is not None:
                why += f" ({above} is a file, not a folder)"
        raise SinkError(f"cannot write to {path}: {why}") from e


class JsonLines:
    """One JSON object per line, to a file (created or truncated) or to stdout ('-')."""

    def __init__(self, target: Path | str | None = None) -> None:
        self.path = None if target in (None, "-") else Path(target)
        self.count = 0  # whole lines written
        self._size = 0  # bytes of whole lines written (files this sink opened)
        self._stream: TextIO | None = None  # a text stdout without a file descriptor
        self._fd: int | None = None
        if self.path is not None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            except OSError as e:
                raise SinkError(f"cannot open {self.path} for writing: {e.strerror}") from e
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        else:
            try:
                sys.stdout.flush()
                self._fd = sys.stdout.fileno()
            except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation included
                self._stream = sys.stdout
            self._regular = False  # stdout is not ours to cut back (it may be shared)

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "stdout"

    def write(self, event: dict) -> None:
        line = dumps(event) + "\n"
        try:
            if self._stream is not None:
                self._stream.write(line)
                self._stream.flush()
            else:
                self._write_all(line.encode("utf-8"))
        except BrokenPipeError as e:
            # The reader went away (`| head`): like any Unix filter, stop quietly.
            raise SinkClosed(
                f"{self.name} was closed by its reader after {self.count} events"
            ) from e
        except OSError as e:
            cut = self._cut_back()
            raise SinkError(
                f"cannot write to {self.name} ({_why(e)}); {self.count} events were written "
                f"before{cut}"
            ) from e
        self.count += 1

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            if n <= 0:  # no progress and no error: treat as a full device
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[n:]
        self._size += len(data)

    def _cut_back(self) -> str:
        """Remove the partial line a failed write may have left; '' or a note if it stays."""
        if self._fd is None or not self._regular or self.path is None:
            return ""
        try:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
        except OSError as e:
            return f"; a partial last line may remain ({e.strerror})"
        return ""

    def close(self) -> None:
        """Close a file this sink opened; a close that fails (delayed write errors on some
        file systems) raises ``SinkError``."""
        if self.path is None or self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError as e:
            raise SinkError(
                f"cannot finish writing {self.name} ({_why(e)}); {self.count} events were written"
            ) from e
