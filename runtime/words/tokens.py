"""The words' tokenizer: all-MiniLM-L6-v2's WordPiece (tokenizer.json), batched for its encoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.runtime.names import WORDS_ATTENTION_MASK, WORDS_INPUT_IDS, WORDS_MAX_TOKENS


@dataclass(frozen=True)
class TokenBatch:
    """Encoder feeds for a batch of sentences, padded to the longest one."""

    input_ids: np.ndarray  # [n, tokens] int64
    attention_mask: np.ndarray  # [n, tokens] int64
    tokens: tuple[tuple[str, ...], ...]  # each sentence's word pieces, [CLS] and [SEP] included
    truncated: tuple[bool, ...]  # whether a sentence lost tokens past max_tokens

    def feeds(self) -> dict[str, np.ndarray]:
        return {WORDS_INPUT_IDS: self.input_ids, WORDS_ATTENTION_MASK: self.attention_mask}


class WordsTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` package: lower-cased WordPiece, [CLS] ...
    [SEP], at most ``max_tokens`` pieces per sentence (the rest is cut and reported)."""

    def __init__(self, path: Path | str, max_tokens: int = WORDS_MAX_TOKENS):
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on a bad file
            raise ValueError(f"{path}: not a readable tokenizer.json: {e}") from e
        if max_tokens < 3:
            raise ValueError(f"max_tokens must be >= 3 ([CLS], a piece, [SEP]), got {max_tokens}")
        self.max_tokens = max_tokens
        self._tok.enable_truncation(max_length=max_tokens)
        pad = self._tok.token_to_id("[PAD]")
        if pad is None:
            raise ValueError(f"{path}: the tokenizer has no [PAD] token")
        # The file pads to a fixed 128; the encoder takes any length, so pad to the longest.
        self._tok.enable_padding(pad_id=pad, pad_token="[PAD]")

    def encode(self, sentences: Sequence[str]) -> TokenBatch:
        if isinstance(sentences, str):
            raise TypeError("encode takes a sequence of sentences, not one string")
        if not sentences:
            raise ValueError("encode needs at least one sentence")
        encodings = self._tok.encode_batch(list(sentences))
        ids = np.array([e.ids for e in encodings], np.int64)
        mask = np.array([e.attention_mask for e in encodings], np.int64)
        tokens = tuple(
            tuple(t for t, m in zip(e.tokens, e.attention_mask, strict=True) if m)
            for e in encodings
        )
        truncated = tuple(bool(e.overflowing) for e in encodings)
        return TokenBatch(ids, mask, tokens, truncated)
