"""The emotion_llama export profile: an Emotion-LLaMA checkpoint + EVA ViT-g, MAE, VideoMAE,
HuBERT and LLaMA -> a bundle (each encoder with its projector, the LoRA-merged decoder,
tokenizer, prompt)."""

from emolive.export.emotion_llama.profile import OPTIONS, PROFILE, STAGES, export_emotion_llama

__all__ = ["OPTIONS", "PROFILE", "STAGES", "export_emotion_llama"]
