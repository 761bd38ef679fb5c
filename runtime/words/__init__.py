"""The words stage room: transcript text -> emotion evidence (all-MiniLM-L6-v2 + a small head)."""

from emolive.runtime.words.reader import WordsEvidence, WordsReader

__all__ = ["WordsEvidence", "WordsReader"]
