"""Prosody measures -> clues a person (and the reasoning LLM) can read.

Voices differ: 180 Hz is high for one speaker and low for another, a lively voice is lively
every time, and a cheap microphone makes every voice hoarse. So a clue about pitch, loudness,
intonation, voice quality or pausing only ever compares the utterance with this speaker's own
running baseline ("pitch 30% above this speaker's baseline (182 Hz vs 140 Hz)"), and there is
no such clue until the baseline has heard ``BaselineConfig.min_utterances`` utterances: until
then ``ProsodyClues.notes`` says so ("no voice baseline yet for this speaker (1 of 3
utterances)") and the clues hold only what reads the same on any voice:

- speaking rate, against population norms: adult articulation rates in read and spontaneous
  English average about 5 syllables/s with a spread of roughly 4-6.5 (Jacewicz, Fox & Wei
  2010, JASA 128:839; Quene 2008, JASA 123:1104 for Dutch). This module's nucleus counter
  (de Jong & Wempe 2009) over-counts slow, long vowels: on espeak-ng speech of known syllable
  counts it read 5.3-6.7 where the true rate was 4.8-5.5 (160 words/min), 7.1-9.0 for a true
  6.5-7.6 (220), and it saturates near 8-9 (it under-counts past a true 9). So "fast" is
  measured >= 7.5 (a true rate near 6.5-7, past the normal spread) and "slow" <= 3.5;
- clipping, which says the loudness is unreliable (a fact about the signal, not the person).

Not absolute any more (they were, and fired on a speaker's first utterance): tremor from
jitter (Praat's 1.04% is a pathology threshold for sustained vowels; running speech has
higher jitter from intonation and consonant transitions, and espeak-ng's steady synthetic
voice reads 0.8-1.4%), breathiness from HNR (depends on the microphone and room noise),
"lively"/"monotone" from the pitch range (depends on the speaker, the language and the
sentence), "very quiet" (depends on the microphone gain) and "hesitant" from the pause count
(depends on the utterance's length; ``reasoning/hesitancy.py`` weighs pauses together with
fillers, restarts and gaze).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emolive.runtime.audio.prosody import ProsodyMeasures

# Measures the baseline follows, and how each compares with it.
_RATIO = ("f0_mean_hz", "rate_syl_s", "jitter_pct", "shimmer_pct")  # percent change
# Difference in the measure's own unit; pause_share is derived (pause time / speaking time).
_DIFF = ("loudness_db", "f0_range_st", "hnr_db", "pause_share")
_VOICED = ("f0_mean_hz", "f0_range_st", "jitter_pct", "shimmer_pct", "hnr_db")


def _value(m: ProsodyMeasures, key: str) -> float | None:
    if key == "pause_share":
        total = m.speaking_s + m.pause_s
        return m.pause_s / total if total >= 0.5 else None
    return getattr(m, key)


@dataclass(frozen=True)
class ClueThresholds:
    pitch_rel_pct: float = 15.0
    loudness_rel_db: float = 4.0
    rate_rel_pct: float = 20.0
    range_rel_st: float = 3.0
    jitter_rel_pct: float = 50.0  # jitter this much above the speaker's own
    shimmer_rel_pct: float = 50.0
    hnr_rel_db: float = 4.0  # HNR this much below the speaker's own: breathier
    pause_rel_share: float = 0.10  # pause share of speaking time this much above the speaker's
    fast_syl_s: float = 7.5  # measured articulation rate; see the module docstring
    slow_syl_s: float = 3.5
    # Below this mean pitch the nucleus counter's 20 ms intensity window ripples with the
    # glottal pulses and counts about twice the syllables (espeak-ng at 78 Hz: 24-29 nuclei
    # for 11-14 syllables; at 100 Hz it counts right): no rate clue there.
    min_rate_f0_hz: float = 90.0
    min_jitter_pct: float = 1.0  # a relative rise in jitter counts from this level up
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
    utterances: int = 0  # heard so far

    def ready(self, key: str | None = None) -> bool:
        """Whether ``key``'s baseline (None: the speaker's, any measure) has heard enough."""
        if key is None:
            return self.utterances >= self.config.min_utterances
        return self.counts.get(key, 0) >= self.config.min_utterances

    def relative(self, m: ProsodyMeasures) -> dict[str, float]:
        """Each measure relative to the baseline so far (only those with a ready baseline)."""
        rel = {}
        for key in _RATIO + _DIFF:
            value = _value(m, key)
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
        self.utterances += 1
        for key in _RATIO + _DIFF:
            value = _value(m, key)
            if value is None:
                continue
            if key == "rate_syl_s" and (m.f0_mean_hz or 0.0) < thresholds.min_rate_f0_hz:
                continue  # counted pitch periods, not syllables (see ClueThresholds)
            if key in _VOICED:
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
    clues: tuple[str, ...]  # evidence: what the voice did, each with its value
    # What the clues could not say, for the reader, not evidence: "no voice baseline yet ..."
    notes: tuple[str, ...] = ()
    baseline_utterances: int = 0  # utterances the speaker's baseline had heard before this one
    baseline_ready: bool = False  # whether the clues compared with the speaker's baseline

    def as_dict(self) -> dict:
        return {
            "measures": self.measures.as_dict(),
            "relative": {k: round(v, 2) for k, v in self.relative.items()},
            "clues": list(self.clues),
            "notes": list(self.notes),
            "baseline_utterances": self.baseline_utterances,
            "baseline_ready": self.baseline_ready,
        }


def _pct(word_up: str, word_down: str, rel: float) -> str:
    return f"{abs(rel):.0f}% {word_up if rel > 0 else word_down}"


def describe(
    m: ProsodyMeasures,
    rel: dict[str, float],
    baseline: SpeakerBaseline | None = None,
    t: ClueThresholds = ClueThresholds(),
) -> tuple[str, ...]:
    """Human-readable clues, most telling first (pitch, intonation, loudness, rate, voice,
    pauses): relative to the speaker's baseline (``rel``, empty until it is ready), except
    rate and clipping, which read the same on any voice."""
    out: list[str] = []
    base = baseline.means if baseline else {}
    voiced = m.voiced_s >= t.min_voiced_s
    if voiced and "f0_mean_hz" in rel and abs(rel["f0_mean_hz"]) >= t.pitch_rel_pct:
        out.append(
            f"pitch {_pct('above', 'below', rel['f0_mean_hz'])} this speaker's baseline "
            f"({m.f0_mean_hz:.0f} Hz vs {base['f0_mean_hz']:.0f} Hz)"
        )
    if voiced and m.f0_range_st is not None and "f0_range_st" in rel:
        if rel["f0_range_st"] >= t.range_rel_st:
            out.append(f"more animated intonation than usual (range {m.f0_range_st:.1f} semitones)")
        elif rel["f0_range_st"] <= -t.range_rel_st:
            out.append(f"flatter intonation than usual (range {m.f0_range_st:.1f} semitones)")
    if "loudness_db" in rel and abs(rel["loudness_db"]) >= t.loudness_rel_db:
        word = "louder" if rel["loudness_db"] > 0 else "quieter"
        out.append(f"{word} than this speaker's baseline ({rel['loudness_db']:+.1f} dB)")
    if m.rate_syl_s is not None and (m.f0_mean_hz or 0.0) >= t.min_rate_f0_hz:
        r = m.rate_syl_s
        if r >= t.fast_syl_s:
            out.append(f"speaking fast ({r:.1f} syllables/s)")
        elif r <= t.slow_syl_s:
            out.append(f"speaking slowly ({r:.1f} syllables/s)")
        elif "rate_syl_s" in rel and abs(rel["rate_syl_s"]) >= t.rate_rel_pct:
            word = _pct("faster", "slower", rel["rate_syl_s"])
            out.append(f"speaking {word} than usual ({r:.1f} syllables/s)")
    if voiced and m.jitter_pct is not None and m.jitter_pct >= t.min_jitter_pct:
        if rel.get("jitter_pct", 0.0) >= t.jitter_rel_pct:
            out.append(
                f"voice trembling (jitter {m.jitter_pct:.1f}%, "
                f"{rel['jitter_pct']:.0f}% above usual)"
            )
    if voiced and m.shimmer_pct is not None and rel.get("shimmer_pct", 0.0) >= t.shimmer_rel_pct:
        out.append(
            f"unsteady voice (shimmer {m.shimmer_pct:.1f}%, {rel['shimmer_pct']:.0f}% above usual)"
        )
    if voiced and m.hnr_db is not None and rel.get("hnr_db", 0.0) <= -t.hnr_rel_db:
        out.append(
            f"breathier or hoarser than usual (HNR {m.hnr_db:.1f} dB, "
            f"{-rel['hnr_db']:.1f} dB below usual)"
        )
    if m.pauses and rel.get("pause_share", 0.0) >= t.pause_rel_share:
        out.append(
            f"more pauses than usual ({m.pauses} pauses, {m.pause_s:.1f} s in all, "
            f"{rel['pause_share']:+.0%} of the time)"
        )
    if m.clipped_ratio >= t.clipped_ratio:
        out.append(f"audio clipped ({m.clipped_ratio:.1%} of samples): loudness unreliable")
    return tuple(out)


def baseline_note(baseline: SpeakerBaseline) -> str | None:
    """What to tell the reader while the speaker's baseline is not ready (None once it is),
    counting the utterance being described."""
    if baseline.ready():
        return None
    n = baseline.utterances + 1
    return (
        f"no voice baseline yet for this speaker ({n} of {baseline.config.min_utterances} "
        "utterances): pitch, loudness, intonation and voice quality not compared"
    )


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
        heard = self.baseline.utterances
        note = baseline_note(self.baseline)
        rel = self.baseline.relative(m) if note is None else {}
        clues = describe(m, rel, self.baseline, self.thresholds)
        self.baseline.update(m, self.thresholds)
        return ProsodyClues(m, rel, clues, (note,) if note else (), heard, note is None)
