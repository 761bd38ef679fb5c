"""The affectgpt export profile: an AffectGPT checkpoint + its encoder and LLM folders ->
a bundle (vision, audio and fusion graphs, the LoRA-merged decoder, tokenizer, prompt)."""

from emolive.export.affectgpt.profile import OPTIONS, PROFILE, STAGES, export_affectgpt

__all__ = ["OPTIONS", "PROFILE", "STAGES", "export_affectgpt"]
