"""A live status line on the terminal while a session runs (stderr, a few times a second)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class StatusLine:
    def __init__(self, stream: TextIO = sys.stderr, interval_s: float = 0.25) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self._last = 0.0
        self._faces: dict[int, dict] = {}
        self._reading: dict | None = None
        self._expressions = 0
        self._t0 = time.monotonic()

    def update(self, event: dict) -> None:
        if event["type"] == "expression":
            self._expressions += 1
            self._faces[event["track_id"]] = event
        else:
            self._reading = event
        now = time.monotonic()
        if now - self._last >= self.interval_s or event["type"] == "reading":
            self._last = now
            self.stream.write("\r\x1b[2K" + self.render(now))
            self.stream.flush()

    def render(self, now: float) -> str:
        rate = self._expressions / max(now - self._t0, 1e-6)
        faces = " ".join(
            f"#{tid} {e['emotion']} {e['confidence']:.2f}"
            for tid, e in list(self._faces.items())[-3:]
        )
        parts = [f"{rate:5.1f} faces/s", faces or "no face"]
        r = self._reading
        if r is not None:
            if r.get("emotion") is None:  # an abstaining reading: say why, not "None 0.00"
                reason = r.get("abstained") or "no reason given"
                part = f"reading: no label @{r['t_end']:.1f}s ({reason})"
            else:
                part = f"reading {r['emotion']} {r['confidence']:.2f} @{r['t_end']:.1f}s"
            if r.get("conflict"):
                part += f" ({r['conflict']['description']})"
            parts.append(part)
        return " | ".join(parts)[:200]

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
