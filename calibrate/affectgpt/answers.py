"""End to end: the greedy answer on a fixed prompt set, fp32 against a variant.

The prompt set is the first check windows, each with a subtitle of ``SUBTITLES`` in turn and
the bundle's own question; the answer is generated greedily through the runtime's own model
(``AffectGptModel``, ``EmotionLlamaModel``: its encoders, token splicing and decoder
session), so what is compared is what a session would say with the variant in place of its
fp32 graph. The profile (``profiles``) says how the model loads, encodes and swaps a graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from emolive.calibrate.affectgpt.profiles import Profile
from emolive.calibrate.affectgpt.windows import Window
from emolive.runtime.bundle import Bundle
from emolive.runtime.llm.decoder import DecoderSession

SUBTITLES = (
    "",
    "I really did not see that coming.",
    "It is fine, honestly. Everything is fine.",
    "Could you please stop doing that?",
)


@dataclass(frozen=True)
class Prompt:
    window: Window
    subtitle: str


def prompts(windows: Sequence[Window], count: int) -> list[Prompt]:
    return [Prompt(w, SUBTITLES[i % len(SUBTITLES)]) for i, w in enumerate(windows[:count])]


def fp32_model(bundle: Bundle, profile: Profile, threads: int | None = None):
    """The bundle's model with every graph in fp32, whatever it prefers."""
    return profile.load(bundle, threads)


def with_encoders(model, runners: dict, profile: Profile):
    """``model`` with some encoder runners replaced (graph name -> runner)."""
    return profile.with_encoders(model, runners)


def with_decoder(model, graph, precision: str):
    s = model.session
    session = DecoderSession(graph, s.embeddings, s.layout, s.max_context, precision=precision)
    return replace(model, session=session, precision=precision)


def encode(model, prompts: Sequence[Prompt], profile: Profile) -> list:
    return [profile.encode(model, p.window) for p in prompts]


def answers(model, prompts: Sequence[Prompt], tokens: int, profile: Profile,
            encoded: list | None = None) -> list[list[int]]:  # fmt: skip
    """Greedy answer ids per prompt (at most ``tokens`` each); ``encoded``: the prompts'
    modality tokens when they are already known (a decoder form with fp32 encoders)."""
    config = profile.generation(model, tokens)
    encoded = encode(model, prompts, profile) if encoded is None else encoded
    return [list(model.answer(e, p.subtitle, config).ids)
            for p, e in zip(prompts, encoded, strict=True)]  # fmt: skip


def compare(reference: list[list[int]], got: list[list[int]]) -> dict:
    """How many answers are identical, and where the first differing one departs."""
    same = [a == b for a, b in zip(reference, got, strict=True)]
    record = {"prompts": len(same), "answers_equal": int(sum(same)),
              "all_equal": all(same), "tokens_compared": int(sum(map(len, reference)))}  # fmt: skip
    for i, (a, b) in enumerate(zip(reference, got, strict=True)):
        if a != b:
            n = min(len(a), len(b))
            step = next((k for k in range(n) if a[k] != b[k]), n)
            record["first_difference"] = {"prompt": i, "token": step}
            break
    return record
