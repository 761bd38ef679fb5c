"""Run labelled items through the bundle's own profile stages: one reading per item.

Evaluation measures the product, the reading, not single graphs: the runner builds the
bundle's profile once (``runtime.profiles.build``: the vision, audio and reasoning stages a
session would run) and feeds each item inline, as a session would deliver it:

* an image or a video's frames through the vision stage, its expression events into a window;
* an audio clip (or a video's audio track) through the audio stage, its utterances (prosody
  and Whisper transcript) into the window;
* a line of text as an utterance whose transcript is the text (words only);

then the reasoning stage reads the window (reasoner judgement → fusion once → explanation)
and returns the reading. Whatever a profile's stages do (a words model, fitted fusion), eval
measures it without changes here.

Modalities: ``face`` feeds only images and video frames, ``voice`` only audio, ``words`` only
the items' text; ``all`` feeds everything an item has, its text only when no utterance came
from its audio. An item with nothing for the modality is skipped and counted.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from emolive.calibrate.eval.readers import EvalItem

MODALITIES = ("face", "voice", "words", "all")
PRECISIONS = ("fp32", "int8")
GAP_S = 1.0  # silence between items on the runner's clock: each item's stages start afresh


class EvalError(RuntimeError):
    """An item could not be run; the message names the item."""


@dataclass(frozen=True)
class TextUtterance:
    """A line of text as the reasoning stage sees an utterance: a span, no prosody clues,
    and a transcript (what `tests/test_windows.py` duck-types too)."""

    t_start: float
    t_end: float
    text: str
    clues: tuple[str, ...] = ()
    prosody: Any = None
    analyses: dict = field(default_factory=dict)

    @property
    def transcript(self) -> SimpleNamespace:
        return SimpleNamespace(text=self.text)


@dataclass
class ItemResult:
    item: EvalItem
    reading: dict | None  # None: skipped
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def emotion(self) -> str | None:
        return None if self.reading is None else self.reading["emotion"]

    @property
    def confidence(self) -> float:
        return 0.0 if self.reading is None else float(self.reading["confidence"])

    def record(self) -> dict:
        r = self.reading or {}
        return {
            "id": self.item.id,
            "kind": self.item.kind,
            "label": self.item.label,
            "emotion": r.get("emotion"),
            "confidence": r.get("confidence"),
            "abstained": r.get("abstained"),
            "scores": r.get("scores"),
            "clues": r.get("clues"),
            "explanation": r.get("explanation"),
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def wanted(item: EvalItem, modality: str) -> str | None:
    """Why ``item`` has nothing for ``modality`` (None: it has something)."""
    if modality == "face" and item.kind not in ("image", "video"):
        return "no image or video for --modality face"
    if modality == "voice" and item.kind not in ("audio", "video"):
        return "no audio for --modality voice"
    if modality == "words" and not item.text:
        return "no text for --modality words"
    return None


def precision_map(bundle, precision: str | None) -> dict[str, str]:
    """Graph name -> ``precision`` for every graph of the bundle that has that variant (None:
    the bundle's preference per graph)."""
    if precision is None:
        return {}
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return {name: precision for name, g in bundle.graphs.items() if precision in g.variants}


class ItemRunner:
    """The bundle's profile stages, built once, and one reading per item.

    ``explain``: "clues" explains only items that have reference clues (the EMER metrics
    need the explanation; the label metrics do not, and explaining costs LLM decoding);
    "all" or "none"."""

    def __init__(
        self,
        bundle_path: Path,
        labels: Sequence[str],
        modality: str = "all",
        precision: str | None = None,
        explain: str = "clues",
        runtime_threads: int | None = None,
    ) -> None:
        from emolive.runtime import profiles
        from emolive.runtime.backends import RuntimeConfig
        from emolive.runtime.bundle import Bundle
        from emolive.runtime.media import SessionClock
        from emolive.runtime.session import SessionConfig

        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
        if explain not in ("clues", "all", "none"):
            raise ValueError(f"explain must be clues, all or none, got {explain!r}")
        self.bundle = Bundle.open(bundle_path)
        self.modality = modality
        self.labels = tuple(labels)
        self.explain = explain
        forced = precision_map(self.bundle, precision)
        if precision is not None and not forced:
            raise EvalError(
                f"the bundle at {bundle_path} has no {precision} variant of any graph "
                "(int8 variants come from `emo-live calibrate`)"
            )
        runtime = RuntimeConfig(precision=forced, threads=runtime_threads)
        config = SessionConfig(bundle=Path(bundle_path), labels=self.labels, runtime=runtime)
        self.failures: list[Any] = []
        self.pipeline = profiles.build(
            self.bundle,
            config,
            profiles.BuildContext(
                clock=SessionClock(),
                video=modality in ("face", "all"),
                audio=modality in ("voice", "all"),
                on_failure=self.failures.append,
            ),
        )
        self.vision = self.pipeline.vision
        self.audio = self.pipeline.audio
        self.reasoning = self.pipeline.reasoning
        self._inner = self.reasoning.reasoner
        self._explain_now = True
        if self._inner is not None:
            self.reasoning.reasoner = _MaybeExplaining(self._inner, lambda: self._explain_now)
        self._t = 0.0  # the runner's clock: items follow each other, GAP_S apart

    @property
    def notes(self) -> list[str]:
        return list(self.pipeline.notes)

    @property
    def backend(self) -> dict:
        return dict(self.pipeline.backend)

    @property
    def reasoner(self):
        """The profile's own reasoner (for the EMER judge to reuse its LLM)."""
        return self._inner

    def run(self, item: EvalItem) -> ItemResult:
        skip = wanted(item, self.modality)
        if skip is not None:
            return ItemResult(item, None, skipped=skip)
        t0 = time.perf_counter()
        try:
            reading = self._read(item)
        except Exception as e:  # named, never swallowed: the caller stops the run
            raise EvalError(f"item {item.id!r} ({item.kind}): {type(e).__name__}: {e}") from e
        if reading is None:
            return ItemResult(item, None, skipped="nothing for this modality in the file")
        return ItemResult(item, reading, seconds=time.perf_counter() - t0)

    def _read(self, item: EvalItem) -> dict | None:
        start = self._t
        end = start
        expressions: list[dict] = []
        utterances: list[Any] = []
        if self.vision is not None and item.kind in ("image", "video"):
            frames = list(_frames(item, start))
            expressions = self.vision.run_inline(frames)
            end = max(end, frames[-1].t if frames else start)
        if self.audio is not None and item.kind in ("audio", "video"):
            chunks = list(_chunks(item, start))
            utterances = self.audio.run_inline(chunks)
            end = max(end, chunks[-1].end if chunks else start)
        if not utterances and item.text and self.modality in ("words", "all"):
            end = max(end, start + 1.0)
            utterances = [TextUtterance(start, end, item.text)]
        self._t = end + GAP_S
        from emolive.runtime.windows import Window

        window = Window(start, end, expressions=expressions, utterances=utterances)
        self._explain_now = self.explain == "all" or (
            self.explain == "clues" and item.clues is not None
        )
        (reading,) = self.reasoning.process(window)
        if self.failures:
            raise RuntimeError(str(self.failures[-1]))
        return reading


class _MaybeExplaining:
    """The profile's reasoner, its explanation dropped for items that do not need one (the
    reading's label and scores are the same either way: the stage explains after fusing)."""

    def __init__(self, inner, explain_now) -> None:
        self.inner = inner
        self.explain_now = explain_now

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def judge(self, window, labels, *args, **kwargs):
        judged = self.inner.judge(window, labels, *args, **kwargs)
        if self.explain_now():
            return judged
        return dataclasses.replace(judged, explain=None)


def _frames(item: EvalItem, t0: float):
    from emolive.runtime.media import Frame
    from emolive.runtime.sources.video import StillImage, VideoFile

    source = StillImage(item.path) if item.kind == "image" else VideoFile(item.path)
    for frame in source.frames():
        yield Frame(t=t0 + frame.t, index=frame.index, image=frame.image, source=frame.source)


def _chunks(item: EvalItem, t0: float):
    from emolive.runtime.sources.audio_files import FileSourceConfig, open_audio_file

    yield from open_audio_file(item.path, FileSourceConfig(t0=t0))
