"""Emotion-LLaMA's inference path at run time: its prompt, frame and audio sampling, the
bundle's encoders and the LLaMA decoder (export/emotion_llama writes the bundle)."""
