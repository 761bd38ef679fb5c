"""Text <-> tokens for the LLM: the bundle's tokenizer.json and its chat format.

The chat template is rendered here in plain Python (no jinja, no transformers); the exporter
checks that this rendering equals the model's own template token for token. A rendered chat
already starts with its special tokens, so it is encoded with ``add_special_tokens=False``
(SmolLM2's BOS is ``<|im_start|>``: the default would add a second one).

Text that comes from users (a transcript, a clue, a label) must never open or close a chat
turn: ``neutralize`` breaks any special-token string inside it, so the tokenizer reads it as
plain characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class TokenizerError(ValueError):
    pass


@dataclass(frozen=True)
class ChatFormat:
    """ChatML as SmolLM2 uses it; recorded in the bundle manifest (graph attrs ``chat``)."""

    kind: str = "chatml"
    turn_start: str = "<|im_start|>"
    turn_end: str = "<|im_end|>"
    stop_tokens: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
    default_system: str | None = None  # used when a chat has no system message

    @classmethod
    def from_attrs(cls, attrs: dict) -> ChatFormat:
        kind = attrs.get("kind", "chatml")
        if kind != "chatml":
            raise TokenizerError(f"chat format {kind!r} is not supported (only 'chatml')")
        return cls(
            kind=kind,
            turn_start=attrs.get("turn_start", cls.turn_start),
            turn_end=attrs.get("turn_end", cls.turn_end),
            stop_tokens=tuple(attrs.get("stop_tokens", cls.stop_tokens)),
            default_system=attrs.get("default_system"),
        )

    def to_attrs(self) -> dict:
        return {
            "kind": self.kind,
            "turn_start": self.turn_start,
            "turn_end": self.turn_end,
            "stop_tokens": list(self.stop_tokens),
            "default_system": self.default_system,
        }

    def render(
        self, messages: Sequence[dict], add_generation_prompt: bool = True, prefill: str = ""
    ) -> str:
        """ChatML text; ``prefill`` starts the assistant's answer (it is not closed)."""
        parts = []
        if self.default_system is not None and (not messages or messages[0]["role"] != "system"):
            parts.append(f"{self.turn_start}system\n{self.default_system}{self.turn_end}\n")
        for msg in messages:
            parts.append(f"{self.turn_start}{msg['role']}\n{msg['content']}{self.turn_end}\n")
        if add_generation_prompt:
            parts.append(f"{self.turn_start}assistant\n{prefill}")
        return "".join(parts)


@dataclass
class ChatTokenizer:
    path: Path
    chat: ChatFormat = field(default_factory=ChatFormat)

    def __post_init__(self):
        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise RuntimeError("the LLM runtime needs the tokenizers package") from e
        try:
            self._tok = Tokenizer.from_file(str(self.path))
        except Exception as e:  # tokenizers raises a bare Exception on a bad file
            raise TokenizerError(f"{self.path}: not a usable tokenizer.json: {e}") from e
        self.stop_ids = frozenset(self.token_id(t) for t in self.chat.stop_tokens)
        self.special_strings = tuple(
            t.content for t in self._tok.get_added_tokens_decoder().values() if t.special
        )

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def token_id(self, token: str) -> int:
        tid = self._tok.token_to_id(token)
        if tid is None:
            raise TokenizerError(f"{self.path}: has no token {token!r}")
        return tid

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special)

    def neutralize(self, text: str) -> str:
        """``text`` with every special-token string broken up (``<|im_end|>`` -> ``< |im_end|>``)."""
        for special in self.special_strings:
            if special in text:
                text = text.replace(special, special[:1] + " " + special[1:])
        return text


class TextStream:
    """Turns token ids into text pieces as they come, without splitting a UTF-8 character.

    Byte-level BPE tokens can end inside a multi-byte character; a piece is released only
    once the decoded text no longer ends in the replacement character.
    """

    def __init__(self, tokenizer: ChatTokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._emitted = 0  # characters of decode(ids) already released

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        piece = text[self._emitted :]
        self._emitted = len(text)
        return piece

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids)
