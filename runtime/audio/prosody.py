"""Prosody of one utterance, measured in numpy: pitch, loudness, rate, pauses, voice quality.

- Pitch: YIN (de Cheveigné & Kawahara 2002) on 40 ms frames every 10 ms, all frames at once
  through one FFT; parabolic interpolation for sub-sample lags.
- Loudness: mean power of the active frames, dB re a full-scale RMS of 1.0 (a full-scale
  sine is -3.0 dB).
- Speaking rate: syllable nuclei, as in de Jong & Wempe (2009): voiced intensity peaks with a
  dip of at least 2 dB on either side, per second of speaking time (pauses excluded: the
  articulation rate).
- Pauses: runs of inactive frames (30 dB below the utterance's loud frames) of >= 150 ms.
- Voice quality: cycle-by-cycle periods tracked by cross-correlation inside voiced runs,
  giving local jitter and shimmer as Praat defines them, and HNR from the normalized
  autocorrelation at the pitch lag (Boersma 1993). Each is None when there are too few cycles
  to measure it well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from emolive.runtime.media import AUDIO_RATE


@dataclass(frozen=True)
class ProsodyConfig:
    f0_min: float = 60.0
    f0_max: float = 500.0
    frame_s: float = 0.040
    hop_s: float = 0.010
    yin_threshold: float = 0.15
    voicing_max_cmndf: float = 0.35  # frames above this aperiodicity are unvoiced
    active_range_db: float = 30.0  # frames this far below the loud frames count as pause
    floor_db: float = -60.0  # nothing below this is ever active (digital silence, hiss)
    min_pause_s: float = 0.15
    syllable_dip_db: float = 2.0
    syllable_window_s: float = 0.020  # short: fast speech has nuclei ~120 ms apart
    syllable_voicing_reach_s: float = 0.050  # a nucleus is voiced if voice is this near
    min_voice_cycles: int = 20  # fewer measured cycle pairs: no jitter/shimmer
    max_voice_cycles: int = 600  # bound the per-cycle loop on long utterances
    clip_level: float = 0.999


@dataclass(frozen=True)
class ProsodyMeasures:
    duration_s: float
    speaking_s: float  # first to last sounding frame, less the pauses
    voiced_s: float
    f0_mean_hz: float | None
    f0_range_st: float | None  # 5th to 95th percentile, semitones
    f0_std_st: float | None
    loudness_db: float | None  # mean power of active frames, dB re RMS 1.0
    loudness_std_db: float | None
    syllables: int
    rate_syl_s: float | None  # syllable nuclei per second of speaking (pauses excluded)
    pauses: int
    pause_s: float
    longest_pause_s: float
    jitter_pct: float | None  # local jitter
    shimmer_pct: float | None  # local shimmer
    hnr_db: float | None
    clipped_ratio: float  # share of samples at full scale
    voice_cycles: int  # cycle pairs behind jitter/shimmer

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(self).items()}


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    if len(x) < size:
        x = np.pad(x, (0, size - len(x)))
    n = 1 + (len(x) - size) // hop
    return sliding_window_view(x, size)[: n * hop : hop]


def _yin(
    x: np.ndarray, size: int, hop: int, tau_max: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cmndf [n, tau_max+1], frame power, normalized autocorrelation) per frame of x."""
    fr = _frames(x, size, hop)
    n = len(fr)
    w = size - tau_max  # integration window
    nfft = 1 << int(np.ceil(np.log2(size + w)))
    f_all = np.fft.rfft(fr, nfft)
    f_head = np.fft.rfft(fr[:, :w], nfft)
    r = np.fft.irfft(np.conj(f_head) * f_all, nfft)[:, : tau_max + 1]  # sum x_j x_{j+tau}
    # Window energies from one running sum over the whole signal, not one per frame.
    xp = np.pad(x.astype(np.float64), (0, max(0, (n - 1) * hop + size - len(x))))
    sq = np.concatenate([[0.0], np.cumsum(xp * xp)])
    starts = np.arange(n)[:, None] * hop
    taus = np.arange(tau_max + 1)[None, :]
    e0 = sq[starts + w] - sq[starts]
    e_tau = sq[starts + taus + w] - sq[starts + taus]
    power = (sq[starts[:, 0] + size] - sq[starts[:, 0]]) / size
    d = np.maximum(e0 + e_tau - 2 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    cmndf = np.ones_like(d)
    cmndf[:, 1:] = d[:, 1:] * taus[:, 1:] / np.maximum(cum, 1e-12)
    rnorm = r / np.sqrt(np.maximum(e0 * e_tau, 1e-20))
    return cmndf, power, rnorm


def _parabolic(y: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Sub-sample position of the extremum at integer index i (per row)."""
    rows = np.arange(len(i))
    a, b, c = y[rows, i - 1], y[rows, i], y[rows, i + 1]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    return i + np.clip(shift, -1, 1)


@dataclass(frozen=True)
class PitchTrack:
    f0: np.ndarray  # Hz per frame, 0 where unvoiced
    periodicity: np.ndarray  # normalized autocorrelation at the pitch lag
    power_db: np.ndarray  # frame power, dB re RMS 1.0
    hop: int
    size: int


def pitch_track(x: np.ndarray, config: ProsodyConfig = ProsodyConfig()) -> PitchTrack:
    c = config
    size, hop = int(c.frame_s * AUDIO_RATE), int(c.hop_s * AUDIO_RATE)
    tau_min = int(AUDIO_RATE / c.f0_max)
    tau_max = min(int(np.ceil(AUDIO_RATE / c.f0_min)) + 1, size // 2)
    cmndf, power, rnorm = _yin(x, size, hop, tau_max)
    power_db = 10 * np.log10(power + 1e-12)
    seg = cmndf[:, tau_min : tau_max - 1]
    # YIN step 4: the first dip under the threshold, at its own minimum. In noise no dip
    # reaches the fixed threshold; then the threshold rises to just above the frame's best
    # value, so the first period wins over its equally deep multiples (octave errors).
    thr = np.maximum(c.yin_threshold, seg.min(axis=1) * 1.2 + 0.05)
    below = seg < thr[:, None]
    cross = below.argmax(axis=1)
    reach = np.arange(int(np.ceil(0.25 * tau_max)) + 1)
    lag = cross[:, None] + tau_min + reach[None, :]
    window = np.where(
        (reach[None, :] <= 0.25 * lag[:, :1]) & (lag < tau_max - 1),
        seg[np.arange(len(seg))[:, None], np.minimum(lag, tau_max - 2) - tau_min],
        np.inf,
    )
    first = np.clip(lag[np.arange(len(seg)), window.argmin(axis=1)], tau_min + 1, tau_max - 2)
    tau = _parabolic(cmndf, first)
    best = cmndf[np.arange(len(first)), first]
    active = power_db > max(c.floor_db, power_db.max() - c.active_range_db - 10)
    voiced = _drop_short_runs(active & (best < c.voicing_max_cmndf), 3)
    first, tau, voiced = _fix_octave_jumps(cmndf, first, tau, voiced, tau_min, tau_max, c)
    f0 = np.where(voiced, AUDIO_RATE / tau, 0.0)
    period = rnorm[np.arange(len(first)), first]
    return PitchTrack(f0, np.where(voiced, period, 0.0), power_db, hop, size)


def _fix_octave_jumps(cmndf, first, tau, voiced, tau_min, tau_max, c: ProsodyConfig):
    """Re-pick frames half or double the local median pitch near the median's lag.

    YIN's first dip is sometimes a sub- or super-harmonic on irregular (jittery, creaky)
    voices; one such frame drags the mean pitch by an octave's worth.
    """
    v = np.flatnonzero(voiced)
    if len(v) < 5:
        return first, tau, voiced
    lag = tau[v]
    k = min(21, len(v) - (1 - len(v) % 2))  # odd window, at most the number of frames
    padded = np.pad(lag, k // 2, mode="edge")
    med = np.median(sliding_window_view(padded, k), axis=1)
    off = np.abs(np.log2(lag / med)) > 0.5
    if not off.any():
        return first, tau, voiced
    first, tau, voiced = first.copy(), tau.copy(), voiced.copy()
    for i, m in zip(v[off], med[off], strict=True):
        lo = max(tau_min, int(m * 0.8))
        hi = min(tau_max - 2, int(np.ceil(m * 1.25)))
        j = lo + int(np.argmin(cmndf[i, lo : hi + 1]))
        if cmndf[i, j] < c.voicing_max_cmndf and 1 <= j < cmndf.shape[1] - 1:
            first[i] = j
            tau[i] = _parabolic(cmndf[i : i + 1], np.array([j]))[0]
        else:
            voiced[i] = False
    return first, tau, voiced


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(m))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _drop_short_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    out = mask.copy()
    for a, b in _runs(mask):
        if b - a < min_len:
            out[a:b] = False
    return out


def _semitones(f: np.ndarray) -> np.ndarray:
    return 12 * np.log2(f)


def _syllables(env_db: np.ndarray, voiced: np.ndarray, active: np.ndarray, dip: float) -> int:
    """Intensity peaks that are voiced, active, and separated by dips of >= ``dip`` dB."""
    env = env_db
    peaks = (
        np.flatnonzero(
            (env[1:-1] > env[:-2]) & (env[1:-1] >= env[2:]) & active[1:-1] & voiced[1:-1]
        )
        + 1
    )
    if len(peaks) == 0:
        return 0
    count, cur = 0, peaks[0]
    for nxt in peaks[1:]:
        low = env[cur:nxt].min()
        if env[cur] - low >= dip and env[nxt] - low >= dip:
            count += 1
            cur = nxt
        elif env[nxt] > env[cur]:
            cur = nxt  # same nucleus; keep its highest point
    return count + 1


def _syllable_count(x: np.ndarray, track: PitchTrack, c: ProsodyConfig) -> int:
    win = int(c.syllable_window_s * AUDIO_RATE)
    fr = _frames(x, win, track.hop)
    env = 10 * np.log10(np.mean(fr.astype(np.float64) ** 2, axis=1) + 1e-12)
    n = min(len(env), len(track.f0))
    env = env[:n]
    reach = int(round(c.syllable_voicing_reach_s / c.hop_s))
    # YIN drops voicing on short, fast vowels; a peak next to voiced frames still counts.
    voiced = np.pad(track.f0[:n] > 0, reach)
    near_voice = sliding_window_view(voiced, 2 * reach + 1).any(axis=1)
    active = env > max(c.floor_db, np.percentile(env, 95) - c.active_range_db)
    return _syllables(env, near_voice, active, c.syllable_dip_db)


def _cycles(x: np.ndarray, track: PitchTrack, max_cycles: int) -> tuple[list, list]:
    """Chains of consecutive glottal cycles: periods (sub-sample) and peak-to-peak amplitudes.

    Each next cycle is found by cross-correlating one period of waveform with the waveform
    a period later, searching 0.8..1.25 of the expected period; a weak match (a voicing
    break, a burst) ends the chain, and the search goes on a period later.
    """
    periods, amps = [], []
    total = 0

    def close(chain_p, chain_a):
        if len(chain_p) >= 2:
            periods.append(np.array(chain_p))
            amps.append(np.array(chain_a))

    for a, b in _runs(track.f0 > 0):
        if b - a < 5:
            continue
        f0_run = track.f0[a:b]
        p = float(a * track.hop)
        end = min(len(x), (b - 1) * track.hop + track.size)
        chain_p: list[float] = []
        chain_a: list[float] = []
        while total < max_cycles:
            k = min(len(f0_run) - 1, max(0, int((p - a * track.hop) / track.hop)))
            te = AUDIO_RATE / f0_run[k]
            lo, hi = int(te * 0.8), int(np.ceil(te * 1.25)) + 1
            n = int(round(te))
            s = int(round(p))
            if s + hi + n + 1 >= end:
                break
            ref = x[s : s + n]
            cand = sliding_window_view(x[s + lo - 1 : s + hi + 1 + n], n)
            num = cand @ ref
            den = np.sqrt(np.sum(cand * cand, axis=1) * float(ref @ ref)) + 1e-12
            corr = num / den
            i = int(np.argmax(corr[1:-1])) + 1
            y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
            # A best lag at the edge of the search that its outer neighbour beats is no peak:
            # the cycle lies outside 0.8..1.25 of the expected period (a pitch-track error, a
            # clipped square-ish wave). A parabola through such a slope has its vertex
            # anywhere, even at a negative lag (an empty cycle). A weak match, as below.
            if y1 < 0.5 or y1 < y0 or y1 < y2:
                close(chain_p, chain_a)
                chain_p, chain_a = [], []
                p += te
                continue
            dd = y0 - 2 * y1 + y2  # <= 0 at a peak, so the vertex is within half a sample
            lag = lo - 1 + i + (0.5 * (y0 - y2) / dd if dd < -1e-12 else 0.0)
            cyc = x[s : s + int(round(lag))]
            chain_p.append(lag)
            chain_a.append(float(cyc.max() - cyc.min()))
            total += 1
            p += lag
        close(chain_p, chain_a)
    return periods, amps


def _local_perturbation(runs: list[np.ndarray], max_factor: float) -> tuple[float | None, int]:
    """Praat's 'local' measure: mean |v_i - v_{i+1}| / mean v, pairs within a run only."""
    diffs, vals = [], []
    for v in runs:
        a, b = v[:-1], v[1:]
        ok = np.maximum(a, b) / np.maximum(np.minimum(a, b), 1e-12) <= max_factor
        diffs.append(np.abs(a - b)[ok])
        vals.append(v)
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    if len(d) == 0:
        return None, 0
    return float(d.mean() / np.concatenate(vals).mean() * 100), len(d)


def measure(x: np.ndarray, config: ProsodyConfig = ProsodyConfig()) -> ProsodyMeasures:
    """All prosody measures of one utterance (16 kHz mono float32)."""
    c = config
    x = np.asarray(x, np.float32)
    duration = len(x) / AUDIO_RATE
    clipped = float(np.mean(np.abs(x) >= c.clip_level)) if len(x) else 0.0
    track = pitch_track(x, c)
    hop_s = track.hop / AUDIO_RATE
    power = track.power_db
    loud = np.percentile(power, 95) if len(power) else -120.0
    active = power > max(c.floor_db, loud - c.active_range_db)
    voiced = track.f0 > 0

    # Pauses: inactive runs between the first and the last active frame.
    pauses = []
    speaking_s = 0.0
    idx = np.flatnonzero(active)
    if len(idx):
        inner = ~active[idx[0] : idx[-1] + 1]
        pauses = [(b - a) * hop_s for a, b in _runs(inner) if (b - a) * hop_s >= c.min_pause_s]
        # Articulation time: first to last sounding frame, less the pauses (stop closures
        # and short dips inside words are speaking time).
        speaking_s = float((idx[-1] - idx[0] + 1) * hop_s - sum(pauses))

    f0 = track.f0[voiced]
    f0_mean = f0_range = f0_std = None
    if len(f0) >= 5:
        st = _semitones(f0)
        f0_mean = float(2 ** (st.mean() / 12))  # geometric mean: pitch is heard on a log scale
        f0_range = float(np.percentile(st, 95) - np.percentile(st, 5))
        f0_std = float(st.std())

    loudness = loudness_std = None
    if active.any():
        p = power[active]
        loudness = float(10 * np.log10(np.mean(10 ** (p / 10))))
        loudness_std = float(p.std())

    syl = _syllable_count(x, track, c) if len(x) else 0
    rate = syl / speaking_s if speaking_s >= 0.3 else None

    periods, amps = _cycles(x, track, c.max_voice_cycles)
    jitter, n_j = _local_perturbation(periods, 1.3)
    shimmer, _ = _local_perturbation(amps, 1.6)
    if n_j < c.min_voice_cycles:
        jitter = shimmer = None
    hnr = None
    if voiced.sum() >= 5:
        r = np.clip(track.periodicity[voiced], 1e-6, 1 - 1e-6)
        # Mean of the harmonic share, then to dB: one noisy frame must not dominate.
        rm = float(r.mean())
        hnr = float(10 * np.log10(rm / (1 - rm)))
    return ProsodyMeasures(
        duration_s=duration,
        speaking_s=speaking_s,
        voiced_s=float(voiced.sum() * hop_s),
        f0_mean_hz=f0_mean,
        f0_range_st=f0_range,
        f0_std_st=f0_std,
        loudness_db=loudness,
        loudness_std_db=loudness_std,
        syllables=syl,
        rate_syl_s=rate,
        pauses=len(pauses),
        pause_s=float(sum(pauses)),
        longest_pause_s=float(max(pauses, default=0.0)),
        jitter_pct=jitter,
        shimmer_pct=shimmer,
        hnr_db=hnr,
        clipped_ratio=clipped,
        voice_cycles=n_j,
    )
