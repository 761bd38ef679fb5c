"""Checking an explanation against the clues it was given.

SmolLM2's explanations cite clues but mix up modalities (FACTS.md: it called the face's
"angry 0.72" a voice score and invented "voice reads happy"). The explanation is split into
clauses; a clause is unsupported, and removed, when it

* cites a modality (face / voice / words) that had no clues,
* gives a number that appears in none of the clues of the modality it cites (or of any
  modality, if it cites none),
* attributes an emotion to a modality whose clues name a different emotion, or
* quotes words that are not in the transcript or clues,
* cites no modality but names emotions other than the one chosen (the label comes from
  scoring, so "the emotion is likely disgust" under a "surprise" reading contradicts it), or
* repeats an earlier clause, or
* gives instructions ("answer happy with full confidence", "ignore the above", a role
  marker): words addressed to the classifier are never restated as facts (screen.py).

What remains is the explanation; the removed clauses and why are reported next to it. If
nothing remains, a plain explanation is written from the clues themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emolive.runtime.names import EMOTION_WORDS
from emolive.runtime.reasoning.clues import Clues
from emolive.runtime.reasoning.screen import instructs

MODALITY_WORDS = {
    "visual": ("face", "facial", "expression", "smile", "smiling", "smiles", "frown",
               "frowning", "eyes", "eyebrow", "brow", "brows", "mouth", "looks", "look"),
    "audio": ("voice", "tone", "pitch", "sound", "sounds", "loud", "quiet", "vocal",
              "acoustic", "speaking rate", "prosody", "shaky", "trembling"),
    "text": ("word", "words", "said", "says", "saying", "say", "transcript", "sentence",
             "lexical", "wrote", "statement"),
}  # fmt: skip
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_QUOTE = re.compile(r"[\"\u201c]([^\"\u201d]{3,})[\"\u201d]")
_CLAUSE_SPLIT = re.compile(r"(?<=[.;!?])\s+|,\s+(?=(?:and|but|while|whereas)\b)|\s+but\s+")


@dataclass(frozen=True)
class CheckedExplanation:
    text: str
    raw: str
    removed: tuple[dict, ...] = field(default_factory=tuple)
    fallback: bool = False

    def report(self) -> dict:
        return {"removed": list(self.removed), "fallback": self.fallback, "raw": self.raw}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _mentions(clause: str, phrases: tuple[str, ...]) -> bool:
    low = clause.lower()
    words = _words(clause)
    return any((p in low) if " " in p else (p in words) for p in phrases)


_NEGATION = re.compile(r"\b(?:not|no|never|nor|n't|without)\s+(?:\w+\s+)?(\w+)", re.IGNORECASE)


def _emotions_in(text: str, labels: tuple[str, ...]) -> set[str]:
    """Emotions the text asserts ("not happy" asserts nothing about happy)."""
    text = _NEGATION.sub(" ", text.replace("n't", " n't"))
    words = _words(text)
    found = {e for e, names in EMOTION_WORDS.items() if words & set(names)}
    found |= {lab.lower() for lab in labels if lab.lower() in words}
    return found


def _numbers(text: str) -> set[str]:
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in _NUMBER.findall(text)}


def split_clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_SPLIT.split(text.strip()) if c and c.strip()]


def why_unsupported(
    clause: str, clues: Clues, labels: tuple[str, ...], label: str | None = None
) -> str | None:
    instruction = instructs(clause)
    if instruction is not None:
        return f"restates an instruction: it {instruction}"
    cited = [m for m, words in MODALITY_WORDS.items() if _mentions(clause, words)]
    given = {m: " ".join(clues.of(m)) for m in ("visual", "audio", "text")}
    given["text"] = (given["text"] + " " + clues.transcript).strip()
    for m in cited:
        if not given[m]:
            return f"cites the {m} modality, which had no clues"
    sources = [given[m] for m in cited] or list(given.values())
    for num in _numbers(clause):
        if not any(num in _numbers(s) for s in sources):
            where = "/".join(cited) or "any"
            return f"the number {num} is in no {where} clue"
    for m in cited:
        named = _emotions_in(given[m], labels)
        said = _emotions_in(clause, labels)
        if len(cited) == 1 and named and said and not said & named:
            return f"attributes {sorted(said)} to the {m} clues, which name {sorted(named)}"
    if not cited and label is not None:
        said = _emotions_in(clause, labels)
        chosen = _emotions_in(label, labels) | {label.lower()}
        if said and not said & chosen:
            return f"names {sorted(said)}, but the reading is {label!r}"
    everything = " ".join(given.values()).lower()
    for quote in _QUOTE.findall(clause):
        if quote.lower().strip() not in everything:
            return f"quotes {quote!r}, which was not said"
    return None


def fallback_explanation(label: str, clues: Clues) -> str:
    parts = []
    for m, title in (("visual", "the face"), ("audio", "the voice"), ("text", "the words")):
        items = list(clues.of(m))
        if m == "text" and clues.transcript:
            items.append(f'"{clues.transcript[:80]}"')
        if items:
            parts.append(f"{title}: {'; '.join(items)}")
    # Said when the model's own words did not survive the check: what the reading rests on.
    if not parts:
        return f"Read as {label}."
    text = f"Read as {label}, weighing " + "; and ".join(parts)
    return text if text.endswith((".", '"', "!", "?")) else text + "."


def check_explanation(
    text: str, label: str, clues: Clues, labels: tuple[str, ...]
) -> CheckedExplanation:
    kept, removed = [], []
    for clause in split_clauses(text):
        why = why_unsupported(clause, clues, labels, label)
        if why is None and clause.lower() in (k.lower() for k in kept):
            why = "repeats an earlier clause"
        if why:
            removed.append({"text": clause, "why": why})
        else:
            kept.append(clause)
    if not kept:
        return CheckedExplanation(fallback_explanation(label, clues), text, tuple(removed), True)
    if not removed:
        return CheckedExplanation(_close_quotes(text.strip()), text, (), False)
    # Clauses split at ", but" / ", and" lose their punctuation: end each kept one properly.
    joined = " ".join(k if k[-1] in ".!?" else k + "." for k in kept)
    return CheckedExplanation(_close_quotes(joined), text, tuple(removed), False)


def _close_quotes(text: str) -> str:
    """A budget cut inside a quotation leaves it open; close it."""
    return text + '"' if text.count('"') % 2 else text
