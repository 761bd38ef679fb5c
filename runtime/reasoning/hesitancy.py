"""Hesitancy (ambivalence) in a window: pauses, fillers, restarts and gaze aversion, each
with the value it rests on, combined into one flag beside the conflict flag.

The cues are the ones the BAH dataset's annotators name for ambivalence/hesitancy (Gonzalez-
Gonzalez et al., "BAH Dataset for Ambivalence/Hesitancy Recognition in Videos for Behavioural
Change"): silent pauses, filled pauses ("um", "uh"), restarts and repetitions ("I- I think",
"I was, I was going"), and looking away. No A/H-labelled data was at hand here (BAH is
shared on request), so the strengths and weights below are set by hand from the definitions,
not fitted: the score orders windows by how many and how strong the cues are; it is not a
probability. What each cue counts:

- pauses: silent pauses of >= 150 ms inside the utterances (``ProsodyMeasures.pauses``); the
  cue needs ``min_pauses`` and a pause share of the speaking time above ``pause_share_from``
  (or, once the speaker's voice baseline is ready, ``pause_rel_share`` above the speaker's
  own share). Fluent read speech pauses too (between phrases), so pauses alone are weak.
- fillers: "um", "uh", "er", "erm", "hmm", "mm", "ah"; the phrases "you know", "I mean" when
  set off by a comma ("I mean, ...", "..., you know."; not "I mean it"); "like" only when set
  off by commas (", like," / "like, " opening a clause), since "I like
  it" and "I was like" (quoting) are not hesitation. Whisper (the lite ASR) leaves most filled
  pauses out of its transcripts, so fillers are under-counted: a filler seen is a strong cue.
- restarts: a cut-off word ("I- I think", "wh-"), or a word or a run of up to three words
  said twice in a row ("I, I was", "I was, I was going"), except doubled intensifiers and
  answers that people repeat on purpose ("very very", "no no").
- gaze: the main face looking away (|yaw| >= ``YAW_AWAY_DEG``) or down (pitch ratio >=
  ``PITCH_DOWN``), the thresholds of the visual clues, as a share of the window's frames
  (from the window's expression events; with none, the latest frame only). Gaze supports the
  other cues; on its own it is never enough (someone may be reading, or looking at a person).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emolive.runtime.vision.clues import PITCH_DOWN, YAW_AWAY_DEG

FILLERS = ("um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "hm", "mm", "ah")
FILLER_PHRASES = ("you know", "i mean")
# Words people double on purpose or by grammar ("I know that that is", "had had"): no restart.
DOUBLED_ON_PURPOSE = frozenset(
    "very really so no yes yeah yep bye ha oh well much more many ok okay that had is".split()
)


@dataclass(frozen=True)
class HesitancyConfig:
    min_pauses: int = 2
    pause_share_from: float = 0.15  # pause time / (speaking + pause time): strength 0 here
    pause_share_full: float = 0.40  # ... and 1 here
    pause_rel_share: float = 0.10  # above the speaker's own share, once the baseline is ready
    fillers_full: int = 3  # this many fillers give full strength
    restarts_full: int = 2
    gaze_share_from: float = 0.20  # share of frames looking away or down: strength 0 here
    gaze_share_full: float = 0.60
    # Weight of each cue at full strength: score = 1 - prod(1 - weight * strength).
    weights: tuple[tuple[str, float], ...] = (
        ("pauses", 0.35),
        ("fillers", 0.45),
        ("restarts", 0.45),
        ("gaze", 0.25),
    )
    # The flag: at least this score (one full-strength filler or restart cue reaches it; pauses
    # or gaze need another cue with them).
    threshold: float = 0.40


def _ramp(x: float, lo: float, hi: float) -> float:
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


_WORD = re.compile(r"[a-z']+-?|[,.;:!?\u2014-]")


def _tokens(text: str) -> list[str]:
    """Lower-case words (a trailing hyphen kept: a cut-off) and punctuation marks."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def fillers(text: str) -> list[str]:
    """The filled pauses in ``text``, in order."""
    toks = _tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i].rstrip("-")
        pair = " ".join(toks[i : i + 2])
        if pair in FILLER_PHRASES:
            before = toks[i - 1] if i else ","
            after = toks[i + 2] if i + 2 < len(toks) else "."
            # "I mean, ..." / "..., you know." - not "I mean it" or "do you know".
            if after == "," or (before == "," and after in {".", "?", "!"}):
                out.append(pair)
                i += 2
                continue
        if t in FILLERS:
            out.append(t)
        elif t == "like":
            before = toks[i - 1] if i else ","
            after = toks[i + 1] if i + 1 < len(toks) else "."
            # ", like," or a clause opening with "like," - never "I like it" / "was like".
            if after == "," and before in {",", ".", ";", "!", "?", "so", "and", "but"}:
                out.append("like")
        i += 1
    return out


def restarts(text: str) -> list[str]:
    """Cut-off words and immediate repetitions in ``text``, each as it was said."""
    toks = _tokens(text)
    words = [(i, t) for i, t in enumerate(toks) if t[0].isalpha() or t[0] == "'"]
    out: list[str] = []
    # Cut-offs: "i- i think", "wh- what": a word ending in a hyphen.
    for i, t in words:
        if t.endswith("-") and len(t) > 1:
            nxt = next((w for j, w in words if j > i), "")
            out.append(f"{t} {nxt}".strip())
    # Repetitions of 1..3 words, punctuation between them ignored.
    seq = [t.rstrip("-") for _, t in words if not t.endswith("-")]
    i = 0
    while i < len(seq):
        for n in (3, 2, 1):
            a, b = seq[i : i + n], seq[i + n : i + 2 * n]
            if len(b) == n and a == b and not (n == 1 and a[0] in DOUBLED_ON_PURPOSE):
                out.append(" ".join(a) + ", " + " ".join(b))
                i += 2 * n - 1
                break
        i += 1
    return out


def gaze_share(
    expressions: Sequence[Mapping] = (), track_id: int | None = None, latest: Mapping | None = None
) -> tuple[float, int, str] | None:
    """(share of frames looking away or down, frames, 'away'/'down'/'away or down') for one
    face track of the window's expression events; with no events, the ``latest`` measures
    (one frame). None: no measures to go on."""
    rows = [
        e.get("measures")
        for e in expressions
        if track_id is None or int(e.get("track_id", -1)) == track_id
    ]
    rows = [m for m in rows if m]
    if not rows and latest:
        rows = [latest]
    if not rows:
        return None
    away = [abs(float(m["yaw_deg"])) >= YAW_AWAY_DEG for m in rows]
    down = [float(m["pitch_ratio"]) >= PITCH_DOWN for m in rows]
    either = [a or d for a, d in zip(away, down, strict=True)]
    kind = "away" if not any(down) else "down" if not any(away) else "away or down"
    return sum(either) / len(rows), len(rows), kind


def _pause_cue(utterances: Iterable[Any], c: HesitancyConfig) -> dict | None:
    pauses, pause_s, speaking_s, rel = 0, 0.0, 0.0, []
    for u in utterances:
        p = getattr(u, "prosody", None)
        if p is None:
            continue
        m = p.measures
        pauses += m.pauses
        pause_s += m.pause_s
        speaking_s += m.speaking_s
        if "pause_share" in p.relative:
            rel.append(p.relative["pause_share"])
    total = speaking_s + pause_s
    if pauses < c.min_pauses or total <= 0:
        return None
    share = pause_s / total
    if rel:  # the speaker's baseline is ready: compare with their own pausing
        up = max(rel)
        strength = _ramp(up, 0.0, c.pause_rel_share * 2)
        detail = f"{pauses} pauses ({pause_s:.1f} s, {up:+.0%} of the time vs usual)"
    else:
        strength = _ramp(share, c.pause_share_from, c.pause_share_full)
        detail = f"{pauses} pauses ({pause_s:.1f} s, {share:.0%} of the time)"
    if strength <= 0:
        return None
    return {"cue": "pauses", "value": pauses, "unit": "pauses", "strength": strength,
            "detail": detail}  # fmt: skip


def hesitancy(
    evidence: Any, expressions: Sequence[Mapping] = (), config: HesitancyConfig | None = None
) -> dict | None:
    """The window's hesitancy flag: ``{"score", "cues", "description"}`` or None when the
    score stays below ``config.threshold`` (or there is nothing to go on).

    ``evidence``: an ``emolive.runtime.evidence.Evidence``; ``expressions``: the window's
    expression events (per-frame gaze; without them, the main face's latest frame)."""
    c = config or HesitancyConfig()
    cues: list[dict] = []
    pause = _pause_cue(evidence.utterances, c)
    if pause:
        cues.append(pause)
    texts = [
        u.transcript.text
        for u in evidence.utterances
        if getattr(u, "transcript", None) is not None and u.transcript.text
    ]
    found = [f for t in texts for f in fillers(t)]
    if found:
        quoted = ", ".join(f"'{f}'" for f in dict.fromkeys(found))
        cues.append({"cue": "fillers", "value": len(found), "unit": "fillers",
                     "strength": min(1.0, len(found) / c.fillers_full),
                     "detail": f"{len(found)} filler{'s' * (len(found) > 1)} ({quoted})"})  # fmt: skip
    again = [r for t in texts for r in restarts(t)]
    if again:
        quoted = ", ".join(f"'{r}'" for r in again[:3])
        cues.append({"cue": "restarts", "value": len(again), "unit": "restarts",
                     "strength": min(1.0, len(again) / c.restarts_full),
                     "detail": f"{len(again)} restart{'s' * (len(again) > 1)} ({quoted})"})  # fmt: skip
    face = evidence.main_face
    if face is not None:
        g = gaze_share(expressions, face.track_id, face.measures)
        if g is not None:
            share, frames, kind = g
            strength = _ramp(share, c.gaze_share_from, c.gaze_share_full)
            if strength > 0:
                of = f"{frames} frames" if frames > 1 else "the latest frame"
                cues.append({"cue": "gaze", "value": round(share, 3), "unit": "share of frames",
                             "strength": strength,
                             "detail": f"looking {kind} {share:.0%} of {of}"})  # fmt: skip
    if not cues:
        return None
    weights = dict(c.weights)
    keep = 1.0
    for cue in cues:
        keep *= 1.0 - weights[cue["cue"]] * cue["strength"]
    score = 1.0 - keep
    if score < c.threshold:
        return None
    for cue in cues:
        cue["strength"] = round(cue["strength"], 2)
    return {
        "score": round(score, 2),
        "cues": cues,
        "description": "hesitant: " + ", ".join(cue["detail"] for cue in cues),
    }
