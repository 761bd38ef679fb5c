"""What the prosody clues (and the reading the LLM makes of them) say on a labelled set of
synthetic "emotional" speech made here with espeak-ng.

The set: 4 espeak-ng voices (the "speakers") x 5 prosody profiles x 4 sentences whose words
carry no emotion = 80 clips. The profiles follow the directions of Murray & Arnott (1993)'s
summary of vocal emotion relative to the speaker's neutral voice (anger: louder, higher,
wider range, a little faster; happiness: higher, much wider range, faster; sadness: slower,
lower, narrower, quieter; fear: much faster, much higher). It is a rule-made set, so it can show
what the clue machinery does (which clues fire, when) and whether a reading follows a clue
list; it cannot show that prosody reads real emotion.

Each speaker's clips are heard in a seeded random order through one ProsodyDescriber, as a
session would; the reading is the bundle LLM's calibrated label scores over the audio clues
alone (``--llm``), abstaining where there is no clue.

    .venv/bin/python benchmarks/voice_clues.py [--llm --bundle bundles/lite] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from emolive.runtime.audio.clues import ProsodyDescriber
from emolive.runtime.audio.prosody import measure
from emolive.runtime.sources.audio_files import WavSource

SPEAKERS = ("en-us", "en-us+f3", "en+m3", "en+f2")
# label -> (words per minute, pitch 0-99, amplitude 0-200, SSML pitch range)
PROFILES = {
    "neutral": (160, 50, 100, "medium"),
    "happy": (190, 70, 130, "x-high"),
    "angry": (185, 60, 170, "high"),
    "sad": (130, 35, 60, "x-low"),
    "fear": (220, 80, 100, "high"),
}
SENTENCES = (
    "We are going to the market later this afternoon.",
    "Please leave the door open when you go out.",
    "The meeting has been moved to the second floor.",
    "I will take the train at seven tomorrow morning.",
)


def synth(voice: str, text: str, profile: tuple) -> np.ndarray:
    wpm, pitch, amp, rng = profile
    ssml = f'<speak><prosody range="{rng}">{text}</prosody></speak>'
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(
            ["espeak-ng", "-m", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-a", str(amp),
             "-w", str(wav), ssml],
            check=True, capture_output=True,
        )  # fmt: skip
        return np.concatenate([c.samples for c in WavSource(wav)])


def clips(seed: int = 0) -> list[dict]:
    """Every clip, each speaker's in a seeded random order (the order a session hears)."""
    out = []
    rnd = random.Random(seed)
    for voice in SPEAKERS:
        items = [(label, s) for label in PROFILES for s in SENTENCES]
        rnd.shuffle(items)
        describe = ProsodyDescriber()
        for k, (label, text) in enumerate(items, 1):
            m = measure(synth(voice, text, PROFILES[label]))
            pc = describe(m)
            out.append({"speaker": voice, "k": k, "label": label, "text": text,
                        "clues": list(pc.clues), "notes": list(getattr(pc, "notes", ())),
                        "measures": m.as_dict(), "relative": pc.relative,
                        "baseline_ready": getattr(pc, "baseline_ready", bool(pc.relative))})  # fmt: skip
    return out


def read_labels(rows: list[dict], bundle: str) -> float:
    from emolive.runtime.reasoning import Clues, Reasoner

    reasoner = Reasoner.from_bundle(bundle)
    reasoner.warm_up()
    cache: dict[tuple, tuple[str, float]] = {}
    t0, calls = time.perf_counter(), 0
    for r in rows:
        key = tuple(r["clues"])
        if not key:
            r["read"], r["p"] = None, None
            continue
        if key not in cache:
            s = reasoner.score(Clues(audio=key))
            i = int(np.argmax(s.probs))
            cache[key] = (s.labels.labels[i], float(s.probs[i]))
            calls += 1
        r["read"], r["p"] = cache[key]
    return (time.perf_counter() - t0) / max(1, calls)


def _kind(clue: str) -> str:
    return re.sub(r"\d+% ", "N% ", clue.split(" (")[0])


def summary(rows: list[dict]) -> dict:
    first = [r for r in rows if r["k"] <= 3]
    later = [r for r in rows if r["k"] > 3]
    emotional = [
        r
        for r in first
        if r["clues"] and not all(c.startswith("audio clipped") for c in r["clues"])
    ]
    out = {
        "clips": len(rows),
        "first3_with_clues": f"{len(emotional)}/{len(first)}",
        "first3_clues": collections.Counter(_kind(c) for r in first for c in r["clues"]),
        "later_clues": collections.Counter(_kind(c) for r in later for c in r["clues"]),
    }
    if "read" in rows[0]:
        for name, part in (("all", rows), ("first3", first), ("after_baseline", later)):
            read = [r for r in part if r["read"] is not None]
            right = sum(r["read"] == r["label"] for r in read)
            out[f"{name}_read"] = collections.Counter(r["read"] or "abstain" for r in part)
            out[f"{name}_accuracy_of_all"] = f"{right}/{len(part)}"
            out[f"{name}_accuracy_of_read"] = f"{right}/{len(read)}"
        out["confusion"] = {
            label: dict(
                collections.Counter(r["read"] or "abstain" for r in rows if r["label"] == label)
            )
            for label in PROFILES
        }
    return out


def fit_voice(rows: list[dict]) -> str:
    """Leave-one-speaker-out accuracy of a VoiceModel over the speaker-relative measures
    (utterances with a ready baseline only). On rule-made speech this shows the measures
    carry the rules' directions, not that they read real emotion."""
    from emolive.runtime.audio.voice_evidence import FEATURES, VoiceModel

    ready = [r for r in rows if r["baseline_ready"]]
    right = 0
    for held in SPEAKERS:
        train = [r for r in ready if r["speaker"] != held]
        test = [r for r in ready if r["speaker"] == held]
        x = np.array([[r["relative"].get(k, 0.0) for k in FEATURES] for r in train])
        model = VoiceModel.fit(x, [r["label"] for r in train], list(PROFILES), "synthetic")
        for r in test:
            p = model.predict([r["relative"].get(k, 0.0) for k in FEATURES])
            right += model.labels[int(np.argmax(p))] == r["label"]
    return f"{right}/{len(ready)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", action="store_true")
    ap.add_argument("--bundle", default="bundles/lite")
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = clips()
    print(f"voice model, leave one speaker out: {fit_voice(rows)} right")
    if a.llm:
        print(f"LLM {read_labels(rows, a.bundle) * 1000:.0f} ms per distinct clue list")
    s = summary(rows)
    for k, v in s.items():
        print(f"{k}: {dict(v) if isinstance(v, collections.Counter) else v}")
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": s, "rows": rows}, indent=1, default=dict))


if __name__ == "__main__":
    main()
