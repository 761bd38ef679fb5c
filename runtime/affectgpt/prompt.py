"""The prompt as AffectGPT builds it: the template tokenized whole (placeholders are added
special tokens, so text either side tokenizes on its own), then each placeholder's row
replaced by its modality token. Here the placeholders become ``Embeds`` segments between
the text runs, so their ids are never embedded at all (AffectGPT embeds them as id 0 and
overwrites the row: the same inputs_embeds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emolive.runtime.llm.segments import Embeds, Segment, text


def prompt_segments(ids: Sequence[int], tokens: Mapping[int, np.ndarray]) -> list[Segment]:
    """Text runs between placeholders, each placeholder id replaced by its token [1, H]."""
    segs: list[Segment] = []
    run: list[int] = []
    for t in ids:
        if t in tokens:
            segs += [text(run), Embeds(np.asarray(tokens[t], np.float32).reshape(1, -1), str(t))]
            run = []
        else:
            run.append(int(t))
    return [*segs, text(run)]


def answer_tokenizer(path, stop_ids: Sequence[int]):
    """The bundle's tokenizer for generation, stopping on the model's eos ids (AffectGPT's
    prompt is not ChatML: its stop ids come from the LLM's generation config)."""
    from emolive.runtime.llm.tokenizer import ChatFormat, ChatTokenizer

    tok = ChatTokenizer(path, ChatFormat(stop_tokens=()))
    tok.stop_ids = frozenset(int(i) for i in stop_ids)
    return tok
