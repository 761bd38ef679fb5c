"""What differs between the LLM profiles calibrated here (affectgpt, emotion_llama).

A ``Profile`` names which graphs are encoders, the frame size its windows keep (the
runtime's FrameStore size), how a window becomes each encoder's feed, which outputs are the
tokens the cosine bound reads, which nodes after the features stay fp32, and how the
runtime's own model loads, encodes a window and swaps in a runner. Everything else (the
quantizer, the bounds, the LLM forms, the report, what is written) is one code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from emolive.calibrate.affectgpt.windows import Window
from emolive.runtime.affectgpt import spec as ag
from emolive.runtime.affectgpt.reasoner import AffectGptModel
from emolive.runtime.backends import RuntimeConfig
from emolive.runtime.bundle import Bundle
from emolive.runtime.emotion_llama import reasoner as el_reasoner
from emolive.runtime.emotion_llama import spec as el
from emolive.runtime.emotion_llama.media import utterance, window_pixels
from emolive.runtime.names import FACE_DETECTOR_FULL, LLM_DECODER


@dataclass(frozen=True)
class Profile:
    name: str
    frame_size: int  # the windows' frames, square, as the runtime's FrameStore keeps them
    encoders: tuple[str, ...]  # the graphs that get an int8 variant
    graphs: tuple[str, ...]  # every graph the model loads (forced fp32 for the reference)
    feeds: Callable[[str, Window], dict]  # (encoder, window) -> its feed
    tokens: dict[str, tuple[str, ...]]  # encoder -> outputs that are LLM tokens
    heads: str  # "pooling": from the feature_mean's input on; "projection": the last layer
    model: type  # the runtime's model: from_bundle, answer, session, precision
    encode: Callable  # (model, window) -> what model.answer takes
    with_encoders: Callable  # (model, {graph: runner}) -> model
    generation: Callable  # (model, tokens) -> greedy GenerationConfig
    notes: tuple[str, ...] = ()
    face_encoder: str | None = None  # reads the face crops of the bundle's detector, if any
    # The face encoder reads only the crops, sampled as the runtime's FrameStore samples them
    # (``Window.face_pixels``): a window with no face is left out, as a session abstains on it.
    face_only: bool = False

    def load(self, bundle: Bundle, threads: int | None = None):
        """The bundle's model with every graph in fp32, whatever it prefers."""
        runtime = RuntimeConfig(precision={g: "fp32" for g in self.graphs}, threads=threads)
        return self.model.from_bundle(bundle, runtime)

    def cropper(self, bundle: Bundle):
        """The bundle's ``FaceCropper`` (``crop``: a frame -> its face crop, as a session on
        ``bundle`` cuts them); None: whole frames (the profile reads no crops, or the bundle
        has no detector). A face-only model without its detector: the runtime's BundleError."""
        if self.face_encoder is None:
            return None
        if FACE_DETECTOR_FULL not in bundle.graphs and not self.face_only:
            return None
        from emolive.runtime.affectgpt.faces import FaceCropper

        return FaceCropper.from_bundle(bundle, RuntimeConfig(threads=1))

    def feed(self, graph: str, window: Window) -> dict:
        if graph not in self.encoders:
            raise ValueError(f"{graph!r} is not a {self.name} encoder calibrated here "
                             f"({', '.join(self.encoders)})")  # fmt: skip
        return self.feeds(graph, window)


def _affectgpt_feed(graph: str, w: Window) -> dict:
    return {ag.PIXELS: w.pixels} if graph == ag.VISION else {ag.CLIPS: w.clips}


_AG_FIELDS = {ag.VISION: "vision", ag.AUDIO: "audio", ag.FUSION: "fusion"}

AFFECTGPT = Profile(
    name=ag.PROFILE,
    frame_size=ag.IMAGE_SIZE,
    encoders=(ag.VISION, ag.AUDIO),
    graphs=(ag.VISION, ag.AUDIO, ag.FUSION, LLM_DECODER),
    feeds=_affectgpt_feed,
    tokens={ag.VISION: (ag.TOKEN,), ag.AUDIO: (ag.TOKEN,)},
    heads="pooling",
    model=AffectGptModel,
    encode=lambda model, w: model.encode(w.pixels, w.clips),
    with_encoders=lambda model, runners: replace(
        model, **{_AG_FIELDS[g]: r for g, r in runners.items()}
    ),
    generation=lambda model, n: model.generation_config(greedy=True, max_new_tokens=n),
    notes=(
        "The fusion graph stays fp32: it is all projection (two feature means in, one "
        "token out), the part the encoders' int8 graphs also keep in fp32.",
    ),
)


def _affectgpt_face_feed(graph: str, w: Window) -> dict:
    if graph != ag.VISION:
        return _affectgpt_feed(graph, w)
    if w.face_pixels is None:
        raise ValueError(f"{w.media} {w.t_start:.2f}-{w.t_end:.2f} s has no face: the face "
                         "model reads no such window")  # fmt: skip
    return {ag.PIXELS: w.face_pixels}


# A bundle exported from a face-crop checkpoint (vision graph attrs ``mode`` == "face"): its
# vision graph reads 8 face crops per window (BGR, as the graph takes them for this mode) and
# any frame perspective the window's 8 frames, as ``AffectGptReasoner`` feeds them.
AFFECTGPT_FACES = replace(
    AFFECTGPT,
    feeds=_affectgpt_face_feed,
    encode=lambda model, w: model.encode(w.face_pixels, w.clips, {"frames": w.pixels}),
    face_encoder=ag.VISION,
    face_only=True,
)


def _emotion_llama_feed(graph: str, w: Window) -> dict:
    if graph == el.AUDIO:
        return {el.SAMPLES: utterance(w.samples)}
    return {el.PIXELS: window_pixels(list(w.frames), list(w.faces))[graph]}


EMOTION_LLAMA = Profile(
    name=el.PROFILE,
    frame_size=el.IMAGE_SIZE,
    encoders=el_reasoner.ENCODERS,
    graphs=(*el_reasoner.ENCODERS, LLM_DECODER),
    feeds=_emotion_llama_feed,
    tokens={
        el.VISION: (el.PATCHES, el.CLS),
        el.FACE: (el.TOKEN,),
        el.VIDEO: (el.TOKEN,),
        el.AUDIO: (el.TOKEN,),
    },  # fmt: skip
    heads="projection",
    model=el_reasoner.EmotionLlamaModel,
    encode=lambda model, w: model.encode(list(w.frames), w.samples, list(w.faces)),
    with_encoders=lambda model, runners: replace(model, encoders={**model.encoders, **runners}),
    generation=lambda model, n: model.generation_config(max_new_tokens=n),
    face_encoder=el.FACE,
)

PROFILES = {p.name: p for p in (AFFECTGPT, EMOTION_LLAMA)}
ALL_ENCODERS = tuple(g for p in PROFILES.values() for g in p.encoders)


def profile_of(bundle: Bundle) -> Profile | None:
    """The bundle's profile as calibrated here (None: not an LLM profile): an affectgpt
    bundle whose vision graph is a face model reads face crops."""
    profile = PROFILES.get(bundle.profile)
    if profile is AFFECTGPT and ag.VISION in bundle.graphs:
        if bundle.graph(ag.VISION).attrs.get("mode") == "face":
            return AFFECTGPT_FACES
    return profile
