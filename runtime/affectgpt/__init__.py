"""The affectgpt profile's runtime side: names, prompt, sampling of frames and clips, answers.

numpy, onnxruntime and tokenizers only (never torch): the exporter (``export/affectgpt``)
writes what this package reads.
"""
