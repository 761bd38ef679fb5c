"""The LLM runtime: tokenizer, decoder session with a preallocated KV cache, generation.

numpy, onnxruntime and tokenizers only; never torch or transformers.
"""

from emolive.runtime.llm.decoder import ContextOverflow, DecoderLayout, DecoderSession
from emolive.runtime.llm.generate import Generated, GenerationConfig, Token, generate
from emolive.runtime.llm.model import Llm, LlmOptions
from emolive.runtime.llm.tokenizer import ChatFormat, ChatTokenizer, TextStream

__all__ = [
    "ChatFormat",
    "ChatTokenizer",
    "ContextOverflow",
    "DecoderLayout",
    "DecoderSession",
    "Generated",
    "GenerationConfig",
    "Llm",
    "LlmOptions",
    "TextStream",
    "Token",
    "generate",
]
