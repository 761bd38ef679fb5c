"""Prosody measures -> clues a person (and the reasoning LLM) can read.

Voices differ: 180 Hz is high for one speaker and low for another. So each measure is also
compared with this speaker's running baseline, and the clue says which: "pitch 30% above this
speaker's baseline (182 Hz vs 140 Hz)". Absolute clues are kept for what reads the same on
any voice: speaking rate, tremor (jitter), breathiness (HNR), clipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emolive.runtime.audio.prosody import ProsodyMeasures

# Measures the baseline follows, and how each compares with it.
_RATIO = ("f0_mean_hz", "rate_syl_s", "jitter_pct", "shimmer_pct")  # percent change
_DIFF = ("loudness_db", "f0_range_st", "hnr_db")  # difference in the measure's own unit


@dataclass(frozen=True)
class ClueThresholds:
    pitch_rel_pct: float = 15.0
    loudness_rel_db: float = 4.0
    rate_rel_pct: float = 20.0
    range_rel_st: float = 3.0
    jitter_rel_pct: float = 50.0  # jitter this much above the speaker's own
    shimmer_rel_pct: float = 50.0
    fast_syl_s: float = 6.5  # articulation rate; adults average ~5 (range ~4-6.5)
    slow_syl_s: float = 3.5
    monotone_st: float = 2.0
    lively_st: float = 10.0
    tremor_jitter_pct: float = 2.0  # Praat's pathology threshold is 1.04 for sustained vowels
    breathy_hnr_db: float = 5.0
    hesitant_pauses: int = 2
    quiet_db: float = -45.0
    clipped_ratio: float = 0.001
    min_voiced_s: float = 0.3  # pitch clues need this much voiced speech


@dataclass(frozen=True)
class BaselineConfig:
    min_utterances: int = 3  # before this many, no relative clue
    memory: int = 20  # utterances; older ones fade (exponential weighting)


@dataclass
class SpeakerBaseline:
    """Running per-speaker means of the prosody measures."""

    config: BaselineConfig = field(default_factory=BaselineConfig)
    means: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def ready(self, key: str) -> bool:
        return self.counts.get(key, 0) >= self.config.min_utterances

    def relative(self, m: ProsodyMeasures) -> dict[str, float]:
        """Each measure relative to the baseline so far (only those with a ready baseline)."""
        rel = {}
        for key in _RATIO + _DIFF:
            value = getattr(m, key)
            if value is None or not self.ready(key):
                continue
            base = self.means[key]
            if key in _RATIO:
                if base > 0:
                    rel[key] = (value / base - 1.0) * 100.0
            else:
                rel[key] = value - base
        return rel

    def update(self, m: ProsodyMeasures, thresholds: ClueThresholds = ClueThresholds()) -> None:
        for key in _RATIO + _DIFF:
            value = getattr(m, key)
            if value is None:
                continue
            if key in ("f0_mean_hz", "f0_range_st", "jitter_pct", "shimmer_pct", "hnr_db"):
                if m.voiced_s < thresholds.min_voiced_s:
                    continue  # too little voice to say what this speaker sounds like
            n = self.counts.get(key, 0) + 1
            self.counts[key] = n
            w = 1.0 / min(n, self.config.memory)  # plain mean first, then exponential
            self.means[key] = self.means.get(key, value) * (1 - w) + value * w

    def as_dict(self) -> dict:
        return {k: round(v, 3) for k, v in self.means.items()}


@dataclass(frozen=True)
class ProsodyClues:
    measures: ProsodyMeasures
    relative: dict[str, float]  # measure -> % change or difference vs the speaker's baseline
    clues: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "measures": self.measures.as_dict(),
            "relative": {k: round(v, 2) for k, v in self.relative.items()},
            "clues": list(self.clues),
        }


def _pct(word_up: str, word_down: str, rel: float) -> str:
    return f"{abs(rel):.0f}% {word_up if rel > 0 else word_down}"


def describe(
    m: ProsodyMeasures,
    rel: dict[str, float],
    baseline: SpeakerBaseline | None = None,
    t: ClueThresholds = ClueThresholds(),
) -> tuple[str, ...]:
    """Human-readable clues, most telling first (pitch, loudness, rate, voice, pauses)."""
    out: list[str] = []
    base = baseline.means if baseline else {}
    voiced = m.voiced_s >= t.min_voiced_s
    if voiced and "f0_mean_hz" in rel and abs(rel["f0_mean_hz"]) >= t.pitch_rel_pct:
        out.append(
            f"pitch {_pct('above', 'below', rel['f0_mean_hz'])} this speaker's baseline "
            f"({m.f0_mean_hz:.0f} Hz vs {base['f0_mean_hz']:.0f} Hz)"
        )
    if voiced and m.f0_range_st is not None:
        if "f0_range_st" in rel and rel["f0_range_st"] >= t.range_rel_st:
            out.append(f"more animated intonation than usual (range {m.f0_range_st:.1f} semitones)")
        elif "f0_range_st" in rel and rel["f0_range_st"] <= -t.range_rel_st:
            out.append(f"flatter intonation than usual (range {m.f0_range_st:.1f} semitones)")
        elif m.f0_range_st <= t.monotone_st and m.voiced_s >= 1.0:
            out.append(f"monotone (pitch range {m.f0_range_st:.1f} semitones)")
        elif m.f0_range_st >= t.lively_st:
            out.append(f"lively intonation (pitch range {m.f0_range_st:.1f} semitones)")
    if "loudness_db" in rel and abs(rel["loudness_db"]) >= t.loudness_rel_db:
        word = "louder" if rel["loudness_db"] > 0 else "quieter"
        out.append(f"{word} than this speaker's baseline ({rel['loudness_db']:+.1f} dB)")
    elif m.loudness_db is not None and m.loudness_db <= t.quiet_db:
        out.append(f"very quiet ({m.loudness_db:.0f} dB)")
    if m.rate_syl_s is not None:
        r = m.rate_syl_s
        if r >= t.fast_syl_s:
            out.append(f"speaking fast ({r:.1f} syllables/s)")
        elif r <= t.slow_syl_s:
            out.append(f"speaking slowly ({r:.1f} syllables/s)")
        elif "rate_syl_s" in rel and abs(rel["rate_syl_s"]) >= t.rate_rel_pct:
            word = _pct("faster", "slower", rel["rate_syl_s"])
            out.append(f"speaking {word} than usual ({r:.1f} syllables/s)")
    if m.jitter_pct is not None:
        up = rel.get("jitter_pct", 0.0) >= t.jitter_rel_pct
        if m.jitter_pct >= t.tremor_jitter_pct or (up and m.jitter_pct >= 1.0):
            out.append(f"voice trembling (jitter {m.jitter_pct:.1f}%)")
    if m.shimmer_pct is not None and rel.get("shimmer_pct", 0.0) >= t.shimmer_rel_pct:
        out.append(
            f"unsteady voice (shimmer {m.shimmer_pct:.1f}%, {rel['shimmer_pct']:.0f}% above usual)"
        )
    if voiced and m.hnr_db is not None and m.hnr_db <= t.breathy_hnr_db:
        out.append(f"breathy or hoarse voice (HNR {m.hnr_db:.1f} dB)")
    if m.pauses >= t.hesitant_pauses:
        out.append(f"hesitant ({m.pauses} pauses, {m.pause_s:.1f} s in all)")
    if m.clipped_ratio >= t.clipped_ratio:
        out.append(f"audio clipped ({m.clipped_ratio:.1%} of samples): loudness unreliable")
    return tuple(out)


class ProsodyDescriber:
    """Measures -> ProsodyClues, comparing with and then updating one speaker's baseline."""

    def __init__(
        self,
        thresholds: ClueThresholds = ClueThresholds(),
        baseline: SpeakerBaseline | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.baseline = baseline or SpeakerBaseline()

    def __call__(self, m: ProsodyMeasures) -> ProsodyClues:
        rel = self.baseline.relative(m)
        clues = describe(m, rel, self.baseline, self.thresholds)
        self.baseline.update(m, self.thresholds)
        return ProsodyClues(m, rel, clues)
