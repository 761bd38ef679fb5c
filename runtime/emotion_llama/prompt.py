"""Emotion-LLaMA's prompt as its release builds it at inference (``get_context_emb``): the
text split at its one ``<VideoHere>``; the first piece tokenized with the BOS prepended, the
second without; the 260 visual and feature tokens between them as one ``Embeds`` segment."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emolive.runtime.emotion_llama import spec
from emolive.runtime.llm.segments import Embeds, Segment, text


def prompt_text(template: str, subtitle: str, task: str, instruction: str) -> str:
    return template.format(subtitle=subtitle, task=task, instruction=instruction)


def prompt_pieces(tokenizer, prompt: str, bos_id: int | None) -> list[list[int]]:
    """Token ids before and after the placeholder; ``tokenizer.encode`` adds no specials."""
    pieces = prompt.split(spec.PLACEHOLDER)
    if len(pieces) != 2:
        raise ValueError(f"the prompt must hold {spec.PLACEHOLDER} once, it has {len(pieces) - 1}")
    head = tokenizer.encode(pieces[0])
    return [([bos_id] if bos_id is not None else []) + head, tokenizer.encode(pieces[1])]


def visual_tokens(patches, face, video, audio, cls) -> np.ndarray:
    """``encode_img``'s order: 256 patch tokens, MAE, VideoMAE, HuBERT, CLS -> [260, H]."""
    parts = [np.asarray(p, np.float32).reshape(-1, np.shape(p)[-1])
             for p in (patches, face, video, audio, cls)]  # fmt: skip
    return np.concatenate(parts)


def prompt_segments(pieces: Sequence[Sequence[int]], visual: np.ndarray) -> list[Segment]:
    return [text(pieces[0]), Embeds(np.asarray(visual, np.float32), "video"), text(pieces[1])]


def cut_answer(generated: str) -> str:
    """As the release cuts it: up to ``</s>``, after the last ``[/INST]``, stripped."""
    return generated.split(spec.STOP_STRING)[0].split(spec.ANSWER_AFTER)[-1].strip()
