"""Instrumentation (timbre) change novelty that a fixed instrument changing register does not trigger.

Two windows are compared at each frame (the mean difference in units of the pooled within-window spread, as
:mod:`.novelty` does for every group) on descriptor sets of two kinds, and both must move:

* the **envelope** (:func:`descriptors`): MFCCs 1-6 of the harmonic part (HPSS), attack and decay of its energy
  in 8 mel bands (piano, guitar and mallets decay; organ, strings, reeds and brass hold) and spectral contrast.
  On the General MIDI set it finds instrument changes, but on HarmonySet-mini's wavetable pads (a fixed set
  of harmonic amplitudes, so the spectrum slides with the notes) it moved as much inside a section, every
  chord, as at a change;
* three **register-free** confirmations, of which one must move too: attack and decay over the low and the
  high half of the bands (``broad``: energy sliding from band to band as a chord moves no longer counts);
  the slope (dB/octave) of the spectral peaks and their mean pitch above the picked notes (``brightness``,
  frames without a picked note carry no weight); and a cepstrum of the harmonic part on a semitone axis
  shifted to the lowest strong note (``shape``: the spectrum relative to the bass, DCT coefficients 1-6).

Each part is in units of :data:`UNITS`, its 98th percentile of peaks inside sections on the tune half of the
General MIDI set (:mod:`.music`); the curve is ``min(envelope, max(broad, brightness, shape))``.
:func:`instrument_change` measures how new the embedding of :mod:`.instrument` is on each side of a frame to the
other (:func:`~.windows.recurrence_distance`: what a section repeats finds its twin up to :data:`REACH` s away, a
new arrangement does not), and :func:`posterior_change` how far the instrument classes that network names move;
:mod:`.novelty` averages the three.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .pitch import LOWEST
from .windows import recurrence_distance, spread_distance, total_variation

# Each part's 98th percentile of peaks more than 1.5 s from any change (windows of 3 and 3.5 s, smoothed 0.1 s) on
# the tune half of the General MIDI set: the parts are compared in these units.
# "instrument": the same on :func:`instrument_change` (peaks at least 0.7 s apart where every group counts),
# measured with the network shipped in harmonyset_hf/sync/instrument_net.npz.
# "posterior": the same on the total variation of the network's chord and lead class probabilities.
UNITS = {"envelope": 0.5336, "broad": 0.2367, "brightness": 0.8959, "shape": 0.7909, "instrument": 0.7095,
         "posterior": 0.9200}
# s: how far back (and ahead) a block of the embedding looks for its twin in instrument_change. A section's
# arrangement repeats within a chord loop, and a clip's earlier sections count too: a new arrangement has no twin
# anywhere before it. On tune draws 0-11 reaches of 3, 6, 9 and 14 s found 132, 134, 135 and 135 timbre changes
# of 144 at the guard's floor with blocks of 8 frames (blocks of 4 at 14 s and of 16 at 9 s: 133).
REACH = 14.0
BLOCK = 8  # frames a block of the embedding averages (about 0.19 s)
# The spread of each of the embedding's 64 dimensions over the frames of tune draw 0 (decoded clips), measured
# with the shipped network (re-measure it with new weights): the distances between blocks are taken with every
# dimension in these units, so that no few dimensions rule them.
EMBEDDING_SPREAD = np.array([
    3.331, 2.992, 3.595, 3.757, 4.827, 3.633, 1.807, 3.503, 0.8282, 2.699, 3.042, 3.868, 3.057, 3.159, 3.181,
    0.2465, 3.793, 3.159, 1.006, 3.683, 4.06, 4.879, 3.485, 3.1, 4.193, 3.169, 3.088, 2.514, 2.706, 3.91, 4.176,
    4.049, 0.3933, 2.651, 2.615, 2.941, 3.677, 3.352, 2.753, 2.419, 3.898, 3.338, 3.011, 4.248, 2.592, 0.3386,
    2.639, 3.308, 4.121, 2.652, 3.187, 3.197, 3.705, 5.559, 3.632, 3.959, 3.205, 4.846, 1.583, 3.885, 3.773, 3.042,
    4.43, 2.506])


def descriptors(power: np.ndarray, harmonic: np.ndarray, sr: int) -> np.ndarray:
    """(29, frames): MFCCs 1-6 and attack/decay in 8 mel bands of the harmonic part, spectral contrast (7 bands)."""
    import librosa

    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=harmonic, sr=sr, n_mels=64, fmin=40.0))
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=13)[1:7]  # the low orders: the envelope, not the notes
    coarse = 10 * np.log10(librosa.feature.melspectrogram(S=harmonic, sr=sr, n_mels=8, fmin=40.0) + 1e-10)
    d = np.diff(coarse, axis=1, prepend=coarse[:, :1])
    contrast = librosa.feature.spectral_contrast(S=np.sqrt(power), sr=sr)
    return np.concatenate([mfcc, np.maximum(d, 0), np.maximum(-d, 0), contrast]).astype(np.float64)


@lru_cache(maxsize=4)
def _semitone_bank(sr: int, n_fft: int) -> np.ndarray:
    """Triangular filters on a half-semitone axis (MIDI 24-132) over the bins of an ``n_fft`` STFT."""
    import librosa

    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    centers = np.arange(24, 132.01, 0.5)
    width = np.maximum(1.0, 1.5 * (sr / n_fft) / (440 * 2 ** ((centers - 69) / 12) * np.log(2) / 12))
    pitch = 69 + 12 * np.log2(np.maximum(freqs, 1e-3) / 440)
    bank = np.maximum(0, 1 - np.abs(pitch[None, :] - centers[:, None]) / width[:, None])
    return bank / (bank.sum(axis=1, keepdims=True) + 1e-12)


def _held(v: np.ndarray, ok: np.ndarray, default: float = 60.0) -> np.ndarray:
    """``v`` where ``ok``, else its last value where ``ok`` (the first such value before it)."""
    if not ok.any():
        return np.full_like(v, default)
    idx = np.where(ok, np.arange(len(v)), 0)
    np.maximum.accumulate(idx, out=idx)
    v = v.copy()
    v[:int(np.argmax(ok))] = v[int(np.argmax(ok))]
    return np.where(ok, v, v[idx])


def part_features(power: np.ndarray, harmonic: np.ndarray, grid: np.ndarray, midi: np.ndarray,
                  salience: np.ndarray, sr: int) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Each part's frame features (d, n) and frame weights (None: all frames count alike).

    ``grid`` is :func:`harmonyset_hf.sync.pitch.semitone_peaks`, ``midi``/``salience`` its picked notes.
    """
    from scipy.fft import dct

    n = power.shape[1]
    desc = descriptors(power, harmonic, sr)
    broad = np.array([desc[6:10].mean(0), desc[14:18].mean(0), desc[10:14].mean(0), desc[18:22].mean(0)])
    grid = grid[:, :n]
    pitch = np.arange(grid.shape[0])[:, None] + float(LOWEST)
    on = grid > 0
    level = np.where(on, 40 * np.log10(grid + 1e-12), 0)  # dB of amplitude: the grid holds square roots
    w = on * grid ** 2
    total = w.sum(0) + 1e-12
    mean_pitch, mean_level = (w * pitch).sum(0) / total, (w * level).sum(0) / total
    slope = (w * (pitch - mean_pitch) * (level - mean_level)).sum(0) / ((w * (pitch - mean_pitch) ** 2).sum(0) + 1e-9)
    f0 = (salience * midi).sum(0) / (salience.sum(0) + 1e-12)
    brightness = np.array([12 * slope, mean_pitch - f0])
    semi = 10 * np.log10(_semitone_bank(sr, 2 * (power.shape[0] - 1)) @ harmonic + 1e-10)
    semi = np.maximum(semi, semi.max(axis=0, keepdims=True) - 80)
    strong = grid > 0.1 * grid.max(axis=0, keepdims=True)
    bass = _held(np.argmax(strong, axis=0) + float(LOWEST), strong.any(axis=0))
    idx = np.round(2 * (bass - 24)).astype(int)[None, :] + np.arange(-4, 120)[:, None]
    inside = (idx >= 0) & (idx < semi.shape[0])
    shifted = np.where(inside, semi[np.clip(idx, 0, semi.shape[0] - 1), np.arange(n)[None, :]], semi.min(0)[None, :])
    return {"envelope": (desc, None), "broad": (broad, None),
            "brightness": (brightness, (salience.sum(0) > 0).astype(float)),
            "shape": (dct(shifted, axis=0, norm="ortho")[1:7], None)}


def timbre_change(parts: dict[str, tuple[np.ndarray, np.ndarray | None]], half: int) -> np.ndarray:
    """min(envelope, max(broad, brightness, shape)) with windows of ``half`` frames, each part in :data:`UNITS`."""
    z = {k: spread_distance(m, half, w) / UNITS[k] for k, (m, w) in parts.items()}
    return np.minimum(z["envelope"], np.maximum(np.maximum(z["broad"], z["brightness"]), z["shape"]))


def instrument_change(embedding: np.ndarray, half: int, rate: float) -> np.ndarray:
    """How new the instrument network's embedding (:mod:`.instrument`, frames at ``rate`` a second) is on each
    side of a frame to the other: :func:`~.windows.recurrence_distance` of the ``half`` frames after against the
    :data:`REACH` s before, and back, in :data:`UNITS`. Unlike a distance of the two windows' means it is not
    moved by a section's chords taking the embedding elsewhere and back, as long as the place was heard before."""
    if embedding.shape[0] != EMBEDDING_SPREAD.size:
        raise ValueError(f"instrument_change takes the {EMBEDDING_SPREAD.size}-dimensional embedding it was measured "
                         f"on, got {embedding.shape[0]} dimensions")
    z = embedding / EMBEDDING_SPREAD[:, None]
    return recurrence_distance(z, half, int(round(REACH * rate)), BLOCK) / UNITS["instrument"]


def posterior_change(posteriors: np.ndarray, half: int) -> np.ndarray:
    """How far the network's mean class probabilities (:func:`harmonyset_hf.sync.instrument.family_posteriors`)
    move between windows of ``half`` frames: the total variation of the chord head plus the lead head's, in
    :data:`UNITS`. Unlike the embedding distance it is not divided by the spread inside the windows, which drums
    raise in every frame while the classes the network names stay put."""
    return total_variation(posteriors, half) / UNITS["posterior"]
