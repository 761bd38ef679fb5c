"""The reasoning LLM's export: GGUF -> torch -> one GQA-fused decoder graph in three weight
forms, checked against torch, with a quality report per form (see bundle.py)."""

from emolive.export.llm.bundle import LlmExportConfig, add_llm_graphs, export_forms

__all__ = ["LlmExportConfig", "add_llm_graphs", "export_forms"]
