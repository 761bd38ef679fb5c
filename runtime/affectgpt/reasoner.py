"""The affectgpt reasoner: a window's frames and audio through the bundle's encoders, the
tokens spliced at their placeholders, the model's answer as the reading's explanation."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from emolive.runtime.affectgpt import spec
from emolive.runtime.affectgpt.answers import answer_judgement, cut_answer
from emolive.runtime.affectgpt.media import AudioStore, FrameStore, clips_of
from emolive.runtime.affectgpt.prompt import answer_tokenizer, prompt_segments
from emolive.runtime.backends import RuntimeConfig, require_tensors
from emolive.runtime.bundle import Bundle, BundleError
from emolive.runtime.llm.bundled import load_decoder
from emolive.runtime.llm.decoder import DecoderSession
from emolive.runtime.llm.generate import Generated, GenerationConfig, generate
from emolive.runtime.llm.segments import prefill
from emolive.runtime.names import LLM_DECODER, LLM_TOKENIZER
from emolive.runtime.parity import load_graph
from emolive.runtime.reasoning.stage import Judgement
from emolive.runtime.windows import Window


@dataclass
class AffectGptModel:
    """The bundle's graphs and files, loaded through the backends."""

    config: dict
    wheel: dict[str, str]
    vision: object
    audio: object
    fusion: object
    session: DecoderSession
    tokenizer: object
    precision: str = "fp32"
    backend_info: dict = field(default_factory=dict)
    views: dict = field(default_factory=dict)  # extra perspective -> its pooling graph
    notes: list[str] = field(default_factory=list)  # the parity gate's, for the readings

    @classmethod
    def from_bundle(cls, bundle: Bundle, runtime: RuntimeConfig | None = None) -> AffectGptModel:
        runtime = runtime or RuntimeConfig()
        config = bundle_json(bundle, spec.CONFIG)
        wheel = bundle_json(bundle, spec.WHEEL).get("words", {})
        graphs = {name: load_graph(bundle, name, runtime)
                  for name in (spec.VISION, spec.AUDIO, spec.FUSION)}  # fmt: skip
        graphs[LLM_DECODER], session = load_decoder(bundle, runtime)
        runners = {name: g.runner for name, g in graphs.items()}
        info = {name: g.info for name, g in graphs.items()}
        notes = [n for g in graphs.values() for n in g.notes]
        tokenizer = answer_tokenizer(bundle.file(LLM_TOKENIZER), config["decoding"]["stop_ids"])
        views = {}
        for p in present_perspectives(bundle):
            name = spec.view_graph(p)
            view = load_graph(bundle, name, runtime)
            views[p], info[name] = view.runner, view.info
            notes += view.notes
            if spec.PERSPECTIVE_PLACEHOLDERS[p] not in config["placeholders"]:
                raise BundleError(bundle.file(spec.CONFIG), f"field 'placeholders' has no "
                                  f"{spec.PERSPECTIVE_PLACEHOLDERS[p]} for graph {name!r}")  # fmt: skip
        if views:
            require_tensors(runners[spec.VISION], spec.VISION, outputs=(spec.FEATURES,))
        return cls(config, wheel, runners[spec.VISION], runners[spec.AUDIO], runners[spec.FUSION],
                   session, tokenizer, runners[LLM_DECODER].precision, info, views,
                   list(dict.fromkeys(notes)))  # fmt: skip

    def placeholder(self, name: str) -> int:
        return int(self.config["placeholders"][name])

    @property
    def own_pixels(self) -> str:
        """What the vision graph's own perspective reads: "faces" or "frames"."""
        return spec.PERSPECTIVE_PIXELS[self.config["mode"]]

    def _clip_input(self, pixels: np.ndarray, source: str) -> np.ndarray:
        """``pixels`` (BGR) as the vision graph must get them so that CLIP sees face crops in
        BGR and frames in RGB (the graph itself turns BGR to RGB only for the frame model)."""
        if (source == "frames") == (self.config["mode"] == "frame"):
            return pixels
        return np.ascontiguousarray(pixels[:, ::-1])

    def view_tokens(self, own: dict, sources: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The extra perspectives' tokens by placeholder, from the vision graph's own output
        ``own`` and the other pixels in ``sources`` ("faces" / "frames" -> [8, 3, 224, 224]
        BGR); a perspective whose pixels are not there is left out."""
        features = {self.own_pixels: own.get(spec.FEATURES)}
        tokens = {}
        for p, graph in self.views.items():
            source = spec.PERSPECTIVE_PIXELS[p]
            if features.get(source) is None:
                if sources.get(source) is None:
                    continue
                pixels = self._clip_input(sources[source], source)
                features[source] = self.vision.run({spec.PIXELS: pixels})[spec.FEATURES]
            tokens[spec.PERSPECTIVE_PLACEHOLDERS[p]] = graph.run({spec.FEATURES: features[source]})[
                spec.TOKEN
            ]
        return tokens

    def encode(self, pixels: np.ndarray, clips: np.ndarray,
               sources: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """The modality tokens [1, H] by placeholder: AffectGPT's three, then those of the
        extra perspectives whose pixels are in ``sources`` (see ``view_tokens``)."""
        v = self.vision.run({spec.PIXELS: pixels})
        a = self.audio.run({spec.CLIPS: clips})
        m = self.fusion.run(
            {spec.VIDEO_MEAN: v[spec.FEATURE_MEAN], spec.AUDIO_MEAN: a[spec.FEATURE_MEAN]}
        )
        visual = "<FaceHere>" if self.config["mode"] == "face" else "<FrameHere>"
        tokens = {visual: v[spec.TOKEN], "<AudioHere>": a[spec.TOKEN], "<MultiHere>": m[spec.TOKEN]}
        if self.views:
            tokens.update(self.view_tokens(v, {self.own_pixels: pixels, **(sources or {})}))
        return tokens

    def prompt_ids(self, subtitle: str, question: str | None = None,
                   perspectives: Sequence[str] | None = None) -> list[int]:  # fmt: skip
        """The prompt's ids; ``perspectives``: the extra perspectives it names (None: every
        one the bundle has; none: AffectGPT's own prompt)."""
        q = self.config["questions"][question or self.config["question"]]
        extras = tuple(self.views if perspectives is None else perspectives)
        template = self.config["template"]  # the exported perspectives' prompt
        if extras != tuple(self.config.get("perspectives", {})):
            template = spec.template(self.config["mode"], extras)
        text = template.format(subtitle=self.tokenizer.neutralize(subtitle), question=q)
        return self.tokenizer.encode(text)

    def generation_config(
        self, seed: int | None = None, greedy: bool = False, max_new_tokens: int | None = None
    ) -> GenerationConfig:
        """The bundle's decoding (sampling, top_p, top_k, stop on ### / eos); ``greedy`` for
        checks; ``max_new_tokens`` below the model's own budget (None: the model's)."""
        d = self.config["decoding"]
        room = max(1, self.session.max_context - 256)  # the prompt is ~150 tokens
        budget = int(d["max_new_tokens"]) if max_new_tokens is None else max_new_tokens
        return GenerationConfig(
            max_new_tokens=min(budget, room),
            top_p=None if greedy else d["top_p"], top_k=None if greedy else d["top_k"],
            temperature=d["temperature"], seed=seed, stop_strings=tuple(d["stop_strings"]),
        )  # fmt: skip

    def answer(self, tokens: dict[str, np.ndarray], subtitle: str, config: GenerationConfig,
               question: str | None = None) -> Generated:  # fmt: skip
        named = [p for p in self.views if spec.PERSPECTIVE_PLACEHOLDERS[p] in tokens]
        ids = self.prompt_ids(subtitle, question, named)
        by_id = {self.placeholder(k): v for k, v in tokens.items()}
        logits = prefill(self.session, prompt_segments(ids, by_id))[-1]
        return generate(self.session, self.tokenizer, logits, config)


def present_perspectives(bundle: Bundle) -> tuple[str, ...]:
    """The extra visual perspectives whose graphs the bundle carries."""
    return tuple(p for p in spec.PERSPECTIVES if spec.view_graph(p) in bundle.graphs)


def bundle_json(bundle: Bundle, key: str) -> dict:
    """The bundle's JSON file ``key`` (a manifest ``files`` entry), parsed; a BundleError
    naming the file where it is not readable JSON."""
    path = bundle.file(key)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(path, f"not readable JSON: {e}") from e


class AffectGptReasoner:
    """``WindowReasoner``: 8 frames and 8 clips over the window, one answer per window."""

    def __init__(self, model: AffectGptModel, frames: FrameStore | None,
                 audio: AudioStore | None, seed: int | None = None) -> None:  # fmt: skip
        self.model, self.frames, self.audio, self.seed = model, frames, audio, seed
        self.load_notes: list[str] = list(model.notes)  # the parity gate's, if it spoke
        self.backend_info = dict(model.backend_info)
        faces = getattr(frames, "faces", None)
        self.backend_info.update(getattr(faces, "backend_info", {}))

    def _visual(self, window: Window) -> tuple[np.ndarray | None, str | None]:
        """The window's pixels for the vision graph (8 frames, or 8 face crops for the face
        model), or why there are none: a face model with no face in the window has no face
        evidence, and the reading abstains rather than read frames it was not trained on."""
        t0, t1 = window.t_start, window.t_end
        if self.frames is None:
            return None, "affectgpt reads video and audio together: no frames in this window"
        if self.model.config["mode"] != "face":
            pixels = self.frames.sample(t0, t1)
            if pixels is None:
                return None, "affectgpt reads video and audio together: no frames in this window"
            return pixels, None
        pixels = self.frames.sample_faces(t0, t1)
        if pixels is None:
            _, looked = self.frames.faces_between(t0, t1)
            return None, (
                f"affectgpt face model: no face in this window's {looked} frame(s), so no face "
                "evidence: no reading"
            )
        return pixels, None

    def _sources(self, window: Window) -> tuple[dict[str, np.ndarray], list[str]]:
        """The pixels the extra perspectives read besides the vision graph's own, and a note
        for each perspective left out of this window's prompt (no face for the face one)."""
        needed = {spec.PERSPECTIVE_PIXELS[p] for p in self.model.views} - {self.model.own_pixels}
        sources, notes = {}, []
        t0, t1 = window.t_start, window.t_end
        for source in sorted(needed):
            take = self.frames.sample_faces if source == "faces" else self.frames.sample
            sources[source] = take(t0, t1)
            if sources[source] is None:
                left = [p for p in self.model.views if spec.PERSPECTIVE_PIXELS[p] == source]
                notes.append(f"affectgpt: no {source[:-1]} in this window: the {', '.join(left)} "
                             "perspective left out of the prompt")  # fmt: skip
        return sources, notes

    def judge(self, window: Window, labels: Sequence[str], transcript: str | None = None,
              score: bool = True) -> Judgement:  # fmt: skip
        t0 = time.perf_counter()
        pixels, missing = self._visual(window)
        samples = self.audio.between(window.t_start, window.t_end) if self.audio else None
        if missing is None and (samples is None or not len(samples)):
            missing = "affectgpt reads video and audio together: no audio in this window"
        if missing is not None:
            return Judgement(abstained=missing, notes=[missing])
        sources, notes = self._sources(window)
        tokens = self.model.encode(pixels, clips_of(samples), sources)
        t1 = time.perf_counter()
        subtitle = window.evidence.transcript if transcript is None else transcript
        gen = self.model.answer(tokens, subtitle or "", self.model.generation_config(self.seed))
        t2 = time.perf_counter()
        timings = {"encoders": round((t1 - t0) * 1e3, 1), "llm_answer": round((t2 - t1) * 1e3, 1)}
        return answer_judgement(cut_answer(gen.text), labels, self.model.wheel, notes, timings,
                                self.model.precision)  # fmt: skip
