"""Open-vocabulary emotion words -> base labels, written into the bundle as data.

AffectGPT answers in free words ("excited, slightly nervous"); its evaluation maps them to
label sets through emotion wheels and synonyms. This table groups the words under the base
emotions of the wheel (Plutchik's families, as the MER-UniBench mapping groups them) plus
MER's "worried"; the runtime maps each base to the session's labels by name and keeps words
outside the table as open labels.
"""

from __future__ import annotations

from emolive.runtime.names import EMOTION_WORDS

WHEEL: dict[str, tuple[str, ...]] = {
    "happy": ("cheerful", "delighted", "content", "satisfied", "elated", "amused", "proud",
              "relieved", "hopeful", "grateful", "enthusiastic", "optimistic", "pleasant",
              "playful", "confident", "love", "loving", "affectionate", "contentment", "excitement"),
    "angry": ("anger", "irritated", "irritation", "rage", "enraged", "hostile", "resentful",
              "indignant", "impatient", "aggressive", "dissatisfied", "dissatisfaction",
              "contemptuous", "provoked", "outraged"),
    "sad": ("sorrow", "sorrowful", "grief", "grieving", "disappointed", "disappointment",
            "depressed", "melancholy", "lonely", "hurt", "heartbroken", "helpless", "hopeless",
            "regretful", "guilty", "ashamed", "tired", "dejected", "gloomy", "distressed"),
    "fear": ("terrified", "frightened", "panic", "panicked", "horrified", "alarmed", "tense",
             "insecure", "apprehensive"),
    "worried": ("worry", "worried", "concerned", "uneasy", "troubled", "anxiety", "anxious",
                "nervous", "confused", "embarrassed", "doubtful", "suspicious", "hesitant"),
    "surprise": ("surprised", "astonishment", "startled", "stunned", "amazement", "curious",
                 "curiosity", "shock", "incredulous"),
    "disgust": ("disgusted", "repulsed", "revulsion", "contempt", "disdain", "loathing", "aversion"),
    "neutral": ("calm", "relaxed", "indifferent", "composed", "serious", "peaceful", "flat",
                "unemotional"),
}  # fmt: skip


def wheel_data() -> dict:
    """word -> base label, the bases' own names and EMOTION_WORDS included."""
    words: dict[str, str] = {}
    for base, group in EMOTION_WORDS.items():
        for w in (base, *group):
            words.setdefault(w, base)
    for base, group in WHEEL.items():
        for w in (base, *group):
            words[w] = base  # the wheel's grouping wins (e.g. "anxious" -> worried)
    return {
        "words": dict(sorted(words.items())),
        "bases": sorted(set(words.values())),
        "note": "open-vocabulary answers map to these bases; other emotion words stay open labels",
    }
