"""Pitch classes of the notes sounding in each frame, and how much a key change explains two windows of them.

Chroma folds every partial into the pitch classes, so a note's 3rd and 5th harmonics (a fifth and a major
third above it) put about a quarter of a section's chroma energy outside its key, and the best-fitting
diatonic collection of a 2-3 s window was wrong about half the time on the General MIDI set. Here the
notes themselves are estimated instead:

1. spectral peaks of a 4096-point STFT (local maxima within 50 dB of the frame's loudest and 6 dB above the
   local median floor), their frequency refined by a parabola, summed onto a semitone grid (MIDI 24-107);
2. per frame, four fundamentals picked one at a time by harmonic sum (MIDI 40-83, each with a peak of its
   own; harmonics 1-6 and 8 weighted 0.8^(h-1)), each pick taking its partials away;
3. the picks folded to 12 pitch classes, normalised per frame.

:func:`key_change` compares the windows before and after each frame: how much worse one diatonic collection
fits both together than one collection each (a likelihood-ratio style test: an out-of-key note on one side
costs nothing while that side's best collection stays the same).
"""

from __future__ import annotations

import numpy as np

# The 12 diatonic collections (major scales; their relative minors share them) as pitch-class masks.
COLLECTIONS = np.array([[1.0 if (pc - k) % 12 in (0, 2, 4, 5, 7, 9, 11) else 0.0 for pc in range(12)]
                        for k in range(12)])
LOWEST, HIGHEST = 24, 108            # the semitone grid (MIDI), C1 up to B7
F0_RANGE = (40, 84)                  # fundamentals considered (MIDI): E2 to B5
NOTES_PER_FRAME = 4
_HARMONIC_STEPS = (0, 12, 19, 24, 28, 31, 36)         # harmonics 1, 2, 3, 4, 5, 6, 8 in semitones
_HARMONIC_WEIGHTS = tuple(0.8 ** h for h in range(len(_HARMONIC_STEPS)))
_TAKEN = (1.0, 1.0, 0.5, 1.0, 0.5, 0.5, 1.0)          # how much of each partial a picked note takes away
# How far (s) from the key curve's peak a modulation may be placed, and where the far music that names the old and
# new keys begins. With the old and new collections and KEY_CHORD, tune draws 0-11 placed 133 of 144 key changes with
# 1.2 s and with 1.6 s; held-out draws 0 and 19-40 255 of 276 with 1.2 s, 250 with 1.6 s (docs/sync.md).
KEY_SPAN = 1.2
# How many seconds of notes a full change of chord at a split counts for (refine_key_change): on tune draws 0-11
# (144 key changes) 133 placed within 0.35 s with 1.5 (131-133 over 1-2), 128 without the chord (the old and new
# collections alone), 127 with collections chosen anew for every split and no chord (as before).
KEY_CHORD = 1.5
# How many seconds of notes a split on the bar lines of the music around it counts for (the mean chord change one to
# three bars before and after it, novelty.bar_grid): chords move on melody notes too, a bar line is where the section
# starts. On tune draws 0-11 key 133 -> 135 of 144 (135 over 0.5-1.5 s, 134 at 2-3 s); held-out draws 0 and 19-40,
# not chosen on, 255 -> 262 of 276.
KEY_BAR = 1.0


def semitone_peaks(mag: np.ndarray, sr: int, n_fft: int, fmax: float = 5400.0) -> np.ndarray:
    """(HIGHEST - LOWEST, frames): the square-root amplitude of the spectral peaks of ``mag`` on each semitone."""
    from scipy.ndimage import median_filter

    s = mag[:min(mag.shape[0], int(fmax * n_fft / sr))]
    log = np.log(s + 1e-9)
    peak = np.zeros_like(s, dtype=bool)
    peak[1:-1] = (s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])
    peak &= s > s.max(axis=0, keepdims=True) * 10 ** (-50 / 20)
    peak &= s > np.exp(median_filter(log, size=(31, 1), mode="nearest")) * 10 ** (6 / 20)
    k, t = np.nonzero(peak)
    a, b, c = log[k - 1, t], log[k, t], log[k + 1, t]
    den = a - 2 * b + c
    safe = np.abs(den) > 1e-9
    d = np.clip(np.where(safe, 0.5 * (a - c) / np.where(safe, den, 1.0), 0.0), -0.5, 0.5)
    midi = 69 + 12 * np.log2(np.maximum((k + d) * sr / n_fft, 1.0) / 440.0)
    m = np.round(midi).astype(int)
    ok = (m >= LOWEST) & (m < HIGHEST) & (np.abs(midi - m) < 0.4)  # off-grid peaks: noise or a detuned partial
    grid = np.zeros((HIGHEST - LOWEST, s.shape[1]))
    np.add.at(grid, (m[ok] - LOWEST, t[ok]), np.sqrt(np.exp(b - 0.25 * (a - c) * d)[ok]))
    return grid


def pick_notes(grid: np.ndarray, notes: int = NOTES_PER_FRAME, f0_range: tuple[int, int] = F0_RANGE
               ) -> tuple[np.ndarray, np.ndarray]:
    """(MIDI notes, saliences), each (notes, frames): fundamentals picked one at a time from a :func:`semitone_peaks`
    grid by harmonic sum, each pick taking its partials away."""
    grid = grid.copy()
    n_bins, n = grid.shape
    cand = np.arange(f0_range[0] - LOWEST, f0_range[1] - LOWEST)
    midi, sal = np.zeros((notes, n), int), np.zeros((notes, n))
    t = np.arange(n)
    for j in range(notes):
        salience = np.zeros((len(cand), n))
        for w, step in zip(_HARMONIC_WEIGHTS, _HARMONIC_STEPS):
            idx = cand + step
            ok = idx < n_bins
            salience[ok] += w * grid[idx[ok]]
        salience *= grid[cand] > 0
        best = salience.argmax(axis=0)
        midi[j], sal[j] = cand[best] + LOWEST, salience[best, t]
        for share, step in zip(_TAKEN, _HARMONIC_STEPS):
            idx = cand[best] + step
            ok = idx < n_bins
            grid[idx[ok], t[ok]] *= 1 - share
    return midi, sal


def note_pitch_classes(midi: np.ndarray, salience: np.ndarray) -> np.ndarray:
    """(12, frames): the picked notes (:func:`pick_notes`) folded to pitch classes, normalised per frame."""
    pcs = np.zeros((12, midi.shape[1]))
    for j in range(midi.shape[0]):
        np.add.at(pcs, (midi[j] % 12, np.arange(midi.shape[1])), salience[j])
    return pcs / (pcs.sum(axis=0, keepdims=True) + 1e-9)


def note_grid(y: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """The :func:`semitone_peaks` grid of mono ``y``, one column per librosa frame at ``hop``."""
    import librosa

    n_fft = 4096 if sr <= 24000 else 8192  # about 5 Hz bins: the semitones of low notes stay apart
    mag = np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop))
    return semitone_peaks(mag, sr, n_fft)


def pitch_classes(y: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """(12, frames): the pitch classes of the notes in mono ``y``, one column per librosa frame at ``hop``."""
    return note_pitch_classes(*pick_notes(note_grid(y, sr, hop)))


def _side_collection(far: np.ndarray, near: np.ndarray) -> int:
    """The diatonic collection that holds most of the notes ``far`` (12,) from a change on one side of it; of
    collections that hold them equally, the one that holds most of the notes ``near`` (12,) it."""
    fit = COLLECTIONS @ far
    tied = np.flatnonzero(fit >= fit.max() - 1e-6 * (far.sum() + 1e-9))
    return int(tied[int(np.argmax((COLLECTIONS @ near)[tied]))])


def refine_key_change(pcs: np.ndarray, frame: int, rate: float, span: float = KEY_SPAN, reach: float = 3.5,
                      chords: np.ndarray | None = None, chord: float = KEY_CHORD, bars: np.ndarray | None = None,
                      bar: float = KEY_BAR) -> int:
    """The frame within ``span`` s of ``frame`` that best splits the notes (:func:`note_pitch_classes`) within
    ``reach`` s of it into the old key's collection before and the new key's after.

    The two-window key curve peaks up to ~1.4 s off a modulation: a window holding a little of the other key
    still fits one collection, and a chord that both keys share fits either side. The old and new collections
    are those that hold most of the music beyond ``span`` on each side (ties, where no note there tells two
    collections apart, broken by the music within ``span``); each candidate split scores the notes before it
    that the old collection holds and those after it that the new one holds, plus ``chord`` s of notes times how
    far the chord moves there (``chords``, the share of pitch classes that changes, 0-1): a section starts
    at a bar line, where the chord changes; and ``bar`` s of notes times how far it moves a whole number of bars
    away (``bars``, 0-1 a frame): on the bar lines of the music around it. Of equally good splits the earliest
    wins. Where both sides' music fits the same collection (a change of mode on the same notes, or no change of
    key at all), ``frame`` is kept.
    """
    n = pcs.shape[1]
    s, r = int(span * rate), int(reach * rate)
    old = _side_collection(pcs[:, max(0, frame - r):max(0, frame - s)].sum(axis=1),
                           pcs[:, max(0, frame - s):frame].sum(axis=1))
    new = _side_collection(pcs[:, min(n, frame + s):min(n, frame + r)].sum(axis=1),
                           pcs[:, frame:min(n, frame + s)].sum(axis=1))
    first, last = max(0, frame - r), min(n, frame + r)
    cand = np.arange(max(first + 1, frame - s), min(last, frame + s + 1))
    if old == new or cand.size == 0:
        return frame
    gain = np.concatenate([[0.0], np.cumsum((COLLECTIONS[new] - COLLECTIONS[old]) @ pcs)])  # [i]: frames < i
    # (new - old) over the frames after the split less (new - old) over those before it: the notes the old collection
    # holds before the split plus those the new one holds after it, less what is the same for every split
    score = gain[last] - 2 * gain[cand] + gain[first]
    if chords is not None:
        score = score + chord * rate * chords[cand]
    if bars is not None:
        score = score + bar * rate * bars[cand]
    # a plateau's sums differ by rounding only; the first split within a millionth of a frame of the best wins
    return int(cand[int(np.flatnonzero(score >= score.max() - 1e-6)[0])])


def _outside(x: np.ndarray) -> np.ndarray:
    """The share of each column of ``x`` (12, n) outside its best-fitting diatonic collection."""
    x = x / (x.sum(axis=0, keepdims=True) + 1e-9)
    return 1 - (COLLECTIONS @ x).max(axis=0)


def key_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How much worse one collection fits both windows' pitch classes (12, n) than one collection each (>= 0)."""
    b = before / (before.sum(axis=0, keepdims=True) + 1e-9)
    a = after / (after.sum(axis=0, keepdims=True) + 1e-9)
    return np.maximum(0.0, _outside((a + b) / 2) - (_outside(a) + _outside(b)) / 2)
