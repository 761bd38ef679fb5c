"""A prompt as a sequence of segments: text (token ids) and embeddings (modality tokens).

Embedding-level fusion (the affectgpt profile) splices a vision or audio encoder's LLM-space
vectors between text tokens; the lite profile's prompts are one text segment. Either way the
decoder sees one ``inputs_embeds`` stream: text rows come from the bundle's embedding table
(``DecoderSession.embed``), embedding rows as given, and positions follow the cache (graphs
that take ``position_ids`` get them from ``DecoderSession.forward_embeds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Text:
    ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Embeds:
    """``vectors`` [n, hidden] in the LLM's embedding space; ``kind`` says what they encode
    (e.g. "face", "frame", "audio"), for notes and errors."""

    vectors: np.ndarray
    kind: str = "embedding"

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


Segment = Text | Embeds


def text(ids: Sequence[int]) -> Text:
    return Text(tuple(int(i) for i in ids))


def prefill(session, segments: Sequence[Segment]) -> np.ndarray:
    """Make ``session``'s cache hold ``segments`` in order; the last position's logits [1, vocab].

    The leading text (up to the first embedding segment) reuses what the cache already holds
    (``prefill_reusing``); everything from the first embedding segment on is run afresh, as
    cached embedding positions cannot be compared with new ones."""
    segments = [s for s in segments if len(s)]
    if not segments:
        raise ValueError("a prompt needs at least one token or embedding")
    hidden = session.layout.hidden
    for s in segments:
        if isinstance(s, Embeds) and (s.vectors.ndim != 2 or s.vectors.shape[1] != hidden):
            raise ValueError(
                f"{s.kind} embeddings have shape {s.vectors.shape}; the decoder wants [n, {hidden}]"
            )
    lead: list[int] = []
    while segments and isinstance(segments[0], Text):
        lead.extend(segments.pop(0).ids)
    if lead:
        logits = session.prefill_reusing(lead)
    else:
        session.reset()
    for s in segments:
        if isinstance(s, Text):
            logits = session.forward(list(s.ids), last_only=True)
        else:
            logits = session.forward_embeds(s.vectors, None, last_only=True)
    return logits
