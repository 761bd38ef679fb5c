"""The affectgpt export profile: an AffectGPT checkpoint + its encoder and LLM folders ->
a bundle (vision, audio and fusion graphs, the LoRA-merged decoder, tokenizer, prompt)."""

from emolive.export.affectgpt.profile import (
    OPTIONAL_OPTIONS,
    OPTIONS,
    PROFILE,
    STAGES,
    export_affectgpt,
)

__all__ = ["OPTIONAL_OPTIONS", "OPTIONS", "PROFILE", "STAGES", "export_affectgpt"]
