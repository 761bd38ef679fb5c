"""The reasoning stage: clues from face, voice and words -> an explained emotion reading."""

from emolive.runtime.reasoning.clues import ClueError, Clues, EmptyClues
from emolive.runtime.reasoning.labels import LabelSet, LabelSetError
from emolive.runtime.reasoning.reasoner import Reasoner, ReasonerConfig

__all__ = [
    "ClueError",
    "Clues",
    "EmptyClues",
    "LabelSet",
    "LabelSetError",
    "Reasoner",
    "ReasonerConfig",
]
