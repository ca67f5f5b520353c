"""Musical changes as novelty: per-feature curves comparing the stretch before each instant with the one after it.

Every curve compares two adjacent windows of ``W`` seconds at each hop, at several ``W``, and keeps the
smallest value over the scales: a section change persists on both sides at every scale, while the ups and
downs inside a bar (a decaying chord, a rest in the melody, a fill) move a short window only. Groups:

* ``loudness`` -- the step of the level (dB of the mean power), less what a straight ramp through both
  windows explains: a crescendo does not count, a sudden drop counts as much as a sudden rise;
* ``drums`` -- the change of the loud end (90th percentile) of the share of energy above 5 kHz (dB):
  hats, cymbals and snares put it there, pitched instruments rarely do;
* ``onsets`` -- the step of the log mean spectral flux above 3 kHz (attacks: drums in/out, a new instrument);
* ``timbre`` -- the distance of mean MFCCs 1-12, in units of their spread inside the two windows
  (reported with each change, does not decide: see :data:`DECIDING`);
* ``harmony`` -- how much chroma energy leaves the diatonic collection (major scale) that held most of it
  before, plus how much the one that holds most after gains: a new key or mode moves it, chords inside a
  key hardly do;
* ``rhythm`` -- 1 - cosine of the onset autocorrelations of the two windows (tempo, groove).

Each curve is divided by the height that makes a change (:data:`SCALE`, chosen on the ``tune`` half of
:mod:`harmonyset_hf.sync.music` only); the change strength is the largest of them. Where not every
window fits (near the ends) only loudness counts, against a higher bar (:data:`EDGE_FACTOR`). A change
found by rhythm is moved to the instant where the beat grid before it and the one after it meet
(:func:`refine_tempo_change`).
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

GROUPS = ("loudness", "drums", "onsets", "timbre", "harmony", "rhythm")
# The groups that decide; timbre is reported only: on HarmonySet-mini's synthetic pads its MFCC novelty
# crossed any bar the tune half supported every few seconds (3 C cuts of 64 coded A/B), while a change of
# instrumentation on the MIDI set moves the onsets (attacks) group as well.
DECIDING = ("loudness", "drums", "onsets", "harmony", "rhythm")
WINDOWS = {"loudness": (1.0, 2.0, 3.0), "drums": (1.0, 2.0, 3.0), "onsets": (1.0, 2.0, 3.0),
           "timbre": (1.0, 2.0, 3.0), "harmony": (2.0, 3.0), "rhythm": (2.0, 3.0)}
# Each curve's height that makes a change (strength 1), chosen on the tune half of sync.music only by
# sync.music_eval.choose_thresholds (`python benchmarks/sync.py --tune` prints these): the 98th percentile of
# the curve's peaks more than 1.5 s from any change, times a factor from a coordinate search (timbre, reported
# only, keeps x1).
SCALE = {"loudness": 4.44, "drums": 7.676, "onsets": 0.42, "timbre": 1.193, "harmony": 0.184, "rhythm": 0.404}
EDGE_FACTOR = 1.5
# The 12 diatonic collections (major scales) as pitch-class masks.
COLLECTIONS = np.array([[1.0 if (pc - k) % 12 in (0, 2, 4, 5, 7, 9, 11) else 0.0 for pc in range(12)]
                        for k in range(12)])


def _sides(x: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``x`` (d, n) over the ``half`` frames before and after each frame (cut at the ends)."""
    n = x.shape[-1]
    c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    t = np.arange(n)
    lo, hi = np.clip(t - half, 0, n), np.clip(t + half, 0, n)
    return (c[:, t] - c[:, lo]) / np.maximum(1, t - lo), (c[:, hi] - c[:, t]) / np.maximum(1, hi - t)


def _shift(v: np.ndarray, k: int) -> np.ndarray:
    """``v`` (d, n) moved ``k`` frames later (k > 0) or earlier (k < 0), the edge value repeated."""
    out = np.empty_like(v)
    if k > 0:
        out[:, k:], out[:, :k] = v[:, :-k], v[:, :1]
    else:
        out[:, :k], out[:, k:] = v[:, -k:], v[:, -1:]
    return out


def step(x: np.ndarray, half: int) -> np.ndarray:
    """|mean after - mean before| of ``x`` (n,), less the part a straight ramp through both windows explains."""
    x = np.atleast_2d(x)
    q = max(1, half // 2)
    b, a = _sides(x, half)
    b_half, a_half = _sides(x, q)  # each window's halves: their difference is the slope inside the window
    slope = ((b_half - _shift(b_half, q)) + (_shift(a_half, -q) - a_half)) / (2 * q)
    d = a - b
    return (np.abs(d) - np.clip(slope * half * np.sign(d), 0, np.abs(d)))[0]


def _upper(x: np.ndarray, half: int, q: float = 90) -> tuple[np.ndarray, np.ndarray]:
    """The ``q``-th percentile of ``x`` (n,) over the ``half`` frames before and after each frame."""
    n = x.shape[0]
    per = np.percentile(sliding_window_view(np.pad(x, (half, half), mode="edge"), half), q, axis=1)
    return per[:n], per[half:half + n]


def frame_features(y: np.ndarray, sr: int, hop: int) -> dict[str, np.ndarray]:
    """Frame-wise power, level (dB), high-band share (dB), high-band flux, MFCCs, chroma and the onset envelope."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64, fmin=40.0)
    mel_db = librosa.power_to_db(mel)
    total = power.sum(axis=0) + 1e-10
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    high = librosa.mel_frequencies(n_mels=64, fmin=40.0, fmax=sr / 2) > 3000
    flux = np.maximum(0, np.diff(mel_db[high], axis=1, prepend=mel_db[high][:, :1])).mean(axis=0)
    return {
        "power": total, "level": 10 * np.log10(total),
        "high": 10 * np.log10(power[freqs > 5000].sum(axis=0) + 1e-10) - 10 * np.log10(total),
        "flux": np.log(flux + 0.05), "mfcc": librosa.feature.mfcc(S=mel_db, n_mfcc=13)[1:],
        # tuning=0: the chroma grid stays at A440 (the collections need pitch classes, not cents; and it is faster).
        "chroma": librosa.feature.chroma_stft(S=power, sr=sr, hop_length=hop, tuning=0.0),
        "onset": librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop),
    }


def _curve(f: dict[str, np.ndarray], group: str, half: int) -> np.ndarray:
    """One group's two-window novelty with windows of ``half`` frames."""
    n = f["onset"].shape[0]
    if group == "loudness":
        b, a = _sides(f["power"][None, :n], half)  # the level of the mean power: a decaying note weighs little
        jump = np.abs(10 * np.log10(a + 1e-10) - 10 * np.log10(b + 1e-10))[0]
        return np.minimum(jump, step(f["level"][:n], half))
    if group == "drums":
        b, a = _upper(f["high"][:n], half)
        return np.abs(a - b)
    if group == "onsets":
        return step(f["flux"][:n], half)
    if group == "timbre":
        m = f["mfcc"][:, :n]
        b, a = _sides(m, half)
        b2, a2 = _sides(m ** 2, half)
        spread = (np.maximum(b2 - b ** 2, 1e-6) + np.maximum(a2 - a ** 2, 1e-6)) / 2
        return np.sqrt(np.mean((a - b) ** 2 / spread, axis=0))
    if group == "harmony":
        ch = f["chroma"][:, :n] / (f["chroma"][:, :n].sum(axis=0, keepdims=True) + 1e-9)
        b, a = _sides(ch, half)
        sb, sa = COLLECTIONS @ b, COLLECTIONS @ a
        kb, ka, t = sb.argmax(axis=0), sa.argmax(axis=0), np.arange(n)
        return ((sb[kb, t] - sa[kb, t]) + (sa[ka, t] - sb[ka, t])) / 2
    if group == "rhythm":
        env = f["onset"]
        win = sliding_window_view(np.pad(env - np.median(env), (half, half)), half)
        ac = np.fft.irfft(np.abs(np.fft.rfft(win, 2 * half, axis=1)) ** 2, axis=1)[:, 6:max(8, min(half - 4, 70))]
        ac = ac - ac.mean(axis=1, keepdims=True)
        ac /= np.linalg.norm(ac, axis=1, keepdims=True) + 1e-9
        return (1 - (ac[:n] * ac[half:half + n]).sum(axis=1)) / 2
    raise ValueError(f"unknown novelty group {group!r}")


def novelty_curves(y: np.ndarray, sr: int, hop: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Each group's novelty (smallest over its window scales), where every scale fits (bool), the onset envelope."""
    f = frame_features(y, sr, hop)
    n = f["onset"].shape[0]
    t = np.arange(n)
    rate = sr / hop
    curves: dict[str, np.ndarray] = {}
    full = np.ones(n, bool)
    for group, scales in WINDOWS.items():
        stack = []
        for w in scales:
            half = max(4, int(round(w * rate)))
            margin = half + half // 4  # a quarter window more: the onset envelope is unsettled where audio starts
            inside = (t >= margin) & (n - t >= margin)
            full &= inside
            stack.append(np.where(inside, _curve(f, group, half), np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no scale fits at the very ends: no novelty there
            curves[group] = np.nan_to_num(np.nanmin(np.array(stack), axis=0), nan=0.0)
    return curves, full, f["onset"]


def strength(curves: dict[str, np.ndarray], full: np.ndarray) -> np.ndarray:
    """The change strength: the largest deciding curve in units of its bar; near the ends loudness alone."""
    scaled = np.max([curves[g] / SCALE[g] for g in DECIDING], axis=0)
    return np.where(full, scaled, curves["loudness"] / SCALE["loudness"] / EDGE_FACTOR)


def _beat_period(env: np.ndarray, start: int, end: int, rate: float) -> int:
    """The onset envelope's strongest period (0.25-1 s, in frames) between frames ``start`` and ``end``."""
    seg = env[max(0, start):max(0, end)]
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo, hi = int(0.25 * rate), min(int(1.0 * rate), len(ac) - 1)
    return lo + int(np.argmax(ac[lo:hi])) if hi > lo else lo


def refine_tempo_change(env: np.ndarray, frame: int, rate: float, span: float = 0.8, beats: int = 4) -> int:
    """The frame within ``span`` s of ``frame`` where the beat grid of the music before meets the one after.

    Two-window rhythm novelty peaks up to ~0.7 s off a tempo change; the change itself is the last onset
    that fits the old period looking back and the new period looking forward.
    """
    from scipy.ndimage import maximum_filter1d

    peaks = maximum_filter1d(env, 5)  # an onset may sit a frame or two off the grid
    before = _beat_period(env, frame - int(3.5 * rate), frame - int(0.5 * rate), rate)
    after = _beat_period(env, frame + int(0.5 * rate), frame + int(3.5 * rate), rate)
    best, where = -1.0, frame
    for c in range(frame - int(span * rate), frame + int(span * rate) + 1):
        back = [c - j * before for j in range(1, beats + 1)]
        ahead = [c + j * after for j in range(beats)]
        if back[-1] < 0 or ahead[-1] >= len(env):
            continue
        score = float(peaks[back].mean() + peaks[ahead].mean())
        if score > best:
            best, where = score, c
    return where
