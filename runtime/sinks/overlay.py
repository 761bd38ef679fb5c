"""Drawing for people: boxes, landmarks and the current reading over the frame (``--show``)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from emolive.runtime.media import Frame


class DisplayError(RuntimeError):
    pass


def draw(image: np.ndarray, expressions: list[dict], reading: dict | None) -> np.ndarray:
    """A copy of ``image`` with each face's box, track id and emotion, and the latest reading."""
    out = image.copy()
    for e in expressions:
        x0, y0, x1, y1 = (int(round(v)) for v in e["box"])
        cv2.rectangle(out, (x0, y0), (x1, y1), (80, 220, 120), 2)
        label = f"#{e['track_id']} {e['emotion']} {e['confidence']:.2f}"
        cv2.putText(out, label, (x0, max(14, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (80, 220, 120), 1, cv2.LINE_AA)  # fmt: skip
    if reading is not None:
        lines = reading_lines(reading)
        for i, line in enumerate(lines):
            y = out.shape[0] - 12 - 22 * (len(lines) - 1 - i)
            cv2.putText(
                out, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA
            )
            cv2.putText(
                out, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA
            )
    return out


def reading_lines(reading: dict) -> list[str]:
    """The text drawn for a reading, one string a line. OpenCV's fonts draw ASCII only."""
    if reading.get("emotion") is None:  # schema 2.0: the reading abstained and says why
        lines = ["no label", reading.get("abstained") or "no reason given"]
    else:
        lines = [f"{reading['emotion']} ({reading['confidence']:.2f})"]
    if reading.get("conflict"):
        lines.append(reading["conflict"]["description"])
    if reading.get("explanation"):
        lines.append(reading["explanation"])
    return [_ascii(line)[:90] for line in lines]


def _ascii(text: str) -> str:
    return (
        str(text).replace("\u2014", "-").replace("\u2013", "-").replace("\u2019", "'")
        .encode("ascii", "replace").decode("ascii")
    )  # fmt: skip


class OverlayWindow:
    """Shows frames with their faces and the latest reading; call from the main thread only."""

    def __init__(self, title: str = "emo-live") -> None:
        self.title = title
        self.reading: dict | None = None
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise DisplayError(
                "--show needs OpenCV with a GUI (opencv-python, not opencv-python-headless) "
                "and a display; use `emo-live serve` for a browser view instead"
            ) from e

    def on_event(self, event: dict) -> None:
        if event["type"] == "reading":
            self.reading = event

    def refresh(self, latest: tuple[Frame, list[dict]] | None) -> bool:
        """Show ``latest`` (a frame and its expression events); False when the user closed the
        window or pressed q/Esc."""
        if latest is not None:
            cv2.imshow(self.title, draw(latest[0].image, latest[1], self.reading))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class OverlaySink:
    """The overlay window as a sink: at each event it draws the latest analysed frame
    (``latest_frame()``) on the thread that drives the sinks; closing the window calls
    ``stop``."""

    def __init__(
        self,
        window: OverlayWindow,
        latest_frame: Callable[[], tuple[Frame, list[dict]] | None],
        stop: Callable[[], None],
    ) -> None:
        self.window, self.latest_frame, self.stop = window, latest_frame, stop

    def write(self, event: dict) -> None:
        self.window.on_event(event)
        if not self.window.refresh(self.latest_frame()):
            self.stop()

    def close(self) -> None:
        self.window.close()
