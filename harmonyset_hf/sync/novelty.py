"""Musical changes as novelty: per-feature curves comparing the stretch before each instant with the one after it.

Every curve compares two adjacent windows of ``W`` seconds at each hop, at several ``W``, and keeps the
smallest value over the scales: a section change persists on both sides at every scale, while the ups and
downs inside a bar (a decaying chord, a rest in the melody, a fill) move a short window only. Groups:

* ``loudness`` -- the step of the level (dB of the mean power), less what a straight ramp through both
  windows explains: a crescendo does not count, a sudden drop counts as much as a sudden rise;
* ``drums`` -- the change of the noise floor above :data:`DRUMS_FROM` (the geometric mean of the power there, in
  dB of the total power): hats, cymbals and snares are noise across that band, while what pitched instruments
  put there is harmonics (peaks), which a geometric mean hardly sees; flatness alone failed on quiet pads, where
  an almost empty band is flat too. Read two ways, the larger counting: the floor's mean, and the mean of its
  peaks over :data:`HITS_WINDOW` (the hits themselves, which strings and mallets playing on under them fill less);
* ``onsets`` -- the step of the log mean spectral flux above 3 kHz (attacks: drums in/out, a new instrument);
* ``timbre`` -- instrumentation, the mean of three views: :func:`harmonyset_hf.sync.timbre.timbre_change` (the
  spectral envelope and the attack and decay of the harmonic part must move, and so must one of three
  measures that a fixed instrument keeps whatever notes it plays),
  :func:`harmonyset_hf.sync.timbre.instrument_change` (the embedding of a small network trained to name the
  instrument family of the chords and the lead, :mod:`harmonyset_hf.sync.instrument`) and
  :func:`harmonyset_hf.sync.timbre.posterior_change` (the classes that network names); windows of 3 s and
  more, so that each holds a whole bar;
* ``harmony`` -- how much worse one diatonic collection fits the notes of both windows than one collection
  each (:func:`harmonyset_hf.sync.pitch.key_change` on the pitch classes of the notes, not of every partial):
  a new key or mode moves it, chords inside a key and a passing out-of-key note hardly do;
* ``rhythm`` -- 1 - cosine of the onset autocorrelations of the two windows (tempo, groove).

Each curve is smoothed (:data:`SMOOTH`) and divided by the height that makes a change (:data:`SCALE`, chosen on
the ``tune`` half of :mod:`harmonyset_hf.sync.music` with HarmonySet-mini's music as a guard); the change strength
is the largest of them. Where not every window of 3 s fits (near the ends) only loudness counts, against a higher
bar (:data:`EDGE_FACTOR`). Of peaks closer than the minimum gap the one where most groups move wins
(:func:`agreement`). Loudness places it where its level stepped, when it moved most or by a real step
(:data:`LOUDNESS_FIRST`); else the group that moved most, in units of its bar: a tempo change where the beat grid
before it and the one after it meet and the chord changes (:func:`refine_tempo_change`, :func:`chord_change`), a
key change where the old key's collection holds the notes before it, the new key's those after, and the chord
changes (:func:`harmonyset_hf.sync.pitch.refine_key_change`), a timbre change at the top of its curve nearest a
chord change (key and timbre changes on the bar lines of the music around them, :func:`bar_grid`), drums and
onsets at the top of their shortest window (a drums-out change no later than one hit interval, or one beat, after
the last hit: :func:`hold_to_hits`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import instrument
from .pitch import key_change, note_grid, note_pitch_classes, pick_notes, refine_key_change
from .timbre import instrument_change, part_features, posterior_change, timbre_change
from .windows import sides, total_variation

GROUPS = ("loudness", "drums", "onsets", "timbre", "harmony", "rhythm")
WINDOWS = {"loudness": (2.0, 3.0), "drums": (1.0, 2.0, 3.0), "onsets": (1.0, 2.0, 3.0),
           "timbre": (3.0, 3.5), "harmony": (2.0, 3.5), "rhythm": (2.0, 3.0)}
FULL_WINDOW = 3.0  # s: where windows this long fit on both sides every group counts (longer ones join later)
# Each curve's height that makes a change (strength 1), chosen by sync.music_eval.choose_thresholds on the tune
# half of sync.music, HarmonySet-mini's music (264 items, decoded from their mp4s) as a guard (`python
# benchmarks/sync.py --tune` prints these): the 98th percentile of the curve's peaks more than 1.5 s from any
# change, times a factor from a coordinate search. The timbre bar was re-chosen with the 36-epoch instrument
# network and again with the network's class probabilities as a third view: the lowest (in steps of 0.02) that
# keeps the guard's precision at music_eval.GUARD_PRECISION, last when the embedding's view became how new each side
# is to the other (timbre.instrument_change; 1.02 -> 0.88). The drums bar was re-chosen with DRUMS_FROM. The
# loudness bar (dB) was kept when power_step took a crescendo's ramp off the level of the mean power: 1.81 times
# the new curve's 98th percentile on tune draw 0 (1.944 dB) instead of 1.75 times the old one's (2.012 dB).
SCALE = {"loudness": 3.521, "drums": 9.196, "onsets": 0.902, "timbre": 0.88, "harmony": 0.029, "rhythm": 0.401}
EDGE_FACTOR = 1.5
# Hz: the band whose noise floor tells drums. From 4 kHz, bowed strings and ringing mallets (celesta, vibraphone)
# kept it filled when the hats stopped: 10 of the 12 drums-out changes missed over tune 0 and 2 and held-out 0, 19
# and 20 had them playing on, and the floor fell 6-8 dB, under the bar. Above 6 kHz hats and cymbals still fill the
# band and those instruments put less there. On tune draws 0-3, each bar the 98th percentile of in-section peaks
# times the best factor where the mini guard keeps its floor (4 kHz: 1.75, 8.443 dB; 6 kHz: 2.0): drums out 0.94 ->
# 0.98, combined 0.96 -> 0.98, precision 0.944 -> 0.940, guard false detections 9 -> 8. From 5, 7 or 8 kHz, or over
# 4-8 kHz, was no better; above 9 kHz mini's pads got through (13-33 guard false detections at 1.5-2x).
DRUMS_FROM = 6000.0
# s: the hits' view of the drums band is the floor's largest value within this window around each frame, so that
# it follows the hats' and cymbals' peaks, not the troughs between them, which strings and mallets that play on fill.
# The floor's bar over the hits' one, each twice the 98th percentile of its in-section peaks on tune draw 0 (4.598
# and 5.968 dB), weighs the hits' curve into the floor's units. Chosen on tune draws 0-3 with the mini guard (windows
# of 0.5-1.5 s, bars 1.35-4x): 1 s at 2x was the one setting to lose nothing there (drums out 0.98 -> 1.00, drums
# in 0.96 -> 0.98, precision 0.940 -> 0.941, guard 8 false detections, unchanged).
HITS_WINDOW = 1.0
HITS_WEIGHT = 0.770
SMOOTH = 0.1      # s: the Gaussian that smooths each curve before peaks are picked
PLACE_SPAN = 0.75  # s: how far from the peak a group that crossed its bar may place the change
# s: the windows whose mean levels (dB) place a change that loudness tops. On tune draws 0-3, louder / quieter /
# combined recall and precision: 0.90 / 0.92 / 0.96, 0.930 placed by the 2 s loudness curve; 0.96 / 0.94 / 0.96,
# 0.939 with 0.75 s (0.937 with 1 s); windows of 0.25 s as well (the least of the scales) lose quieter ones (0.88):
# a note decays past a drop
LOUDNESS_PLACE_WINDOW = 0.75
# A level step places a change ahead of the group that crossed furthest only where it is a step worth the name: at
# least this many times its bar (HarmonySet-mini's sections step about 10 dB; placed by the level there, its changes
# fall within its 0.2 s, and the guard lost 2-4 of 243 when loudness lost its place altogether). A new arrangement
# that lifts the level a little as its instruments come in crosses the loudness bar barely, and the level steps where
# its first loud note sounds: on held-out draws 73-80 three timbre changes were placed 0.42-0.56 s late that way, while
# the timbre curve topped within 0.09 s of them. Chosen on tune draws 21-50 and the guard (1.5 and 2.0 kept the guard
# as it was; 3.0 cost it a change and a false detection): 2.0 found 4 more changes there and lost none.
LOUDNESS_FIRST = 2.0
# How much a tempo change's place is held to the novelty peak (median onset peaks per second away): of the 95 tempo
# changes of tune draws 0-3 with a peak within 1.2 s, 11 were placed more than 0.35 s off without it (most a beat
# early or late), 6 with pulls of 2-4.
TEMPO_PULL = 2.0
BEAT_SPAN = (0.5, 3.5)  # s from a frame: the onsets whose period is the beat on one side of it
# The beat's usual period (s) and how far from it it may lie (octaves: the standard deviation of a log-normal prior
# on the period, as in librosa's and Ellis's beat trackers, 120 bpm and one octave). Without drums the bass (beats 1,
# 2 1/2, 3) and the melody make the onsets' autocorrelation as strong at half a beat or a beat and a half as at the
# beat, and a grid laid with that period placed tempo changes a beat or two late. On tune draws 0-20 (every clip with a
# tempo change) 1,510 -> 1,512 changes of all kinds found; 1,512 for 1.0-2.0 octaves, 1,511 for 0.5; no prior, 1,510.
BEAT_PRIOR = (0.5, 1.0)
# How much the harmony moving at a place counts for a tempo change there (median onset peaks for every note changed),
# over windows of CHORD_WINDOW s either side. A section starts at a bar line, where the chord changes; in music without
# drums a bass on beats 1, 2 1/2, 3 and 4 reads as a beat and a half, and grids a beat or two late fit the onsets as
# well as the right one. On tune draws 0-11 (144 changes a kind): tempo down 134 -> 138, tempo up 142 -> 144, found
# 1,228 -> 1,235 right of 1,321; within a change or two over weights 5-10 and windows 0.5-1 s, lower at 0.25 s.
CHORD_WEIGHT = 10.0
CHORD_WINDOW = 1.0
# A timbre change is placed where its curve (in units of its bar) plus this times the chord's change is highest,
# within PLACE_SPAN of the peak: the curve's windows are 3-3.5 s, so its top is flat for a beat or two either side of
# a new arrangement, which starts on a bar line. On tune draws 0-11 timbre 127 -> 132 of 144 (131-132 over 0.2-0.5
# and windows of 0.5-1 s); the curve's own top alone found no more, the nearest chord change alone fewer.
TIMBRE_CHORD = 0.3
# How much a place on the bar grid of the music around it counts for a timbre change (the mean chord change one to
# BAR_REACH bars of BAR_BEATS beats before and after it, :func:`bar_grid`). Chords move on the melody's notes too, and
# a release tail of the old instruments holds the timbre curve's top a beat late; the bar lines around a change tell
# which beat starts a bar. On tune draws 0-11 timbre 135 -> 139 of 144 (138-139 over weights 0.6-1 and reaches of 3-4
# bars; 129 with bars of 2 beats); held-out draws 0 and 19-40, not chosen on, 246 -> 256 of 276. A beat misread (half
# a beat, or a beat and a half under a halftime groove) lays the grid wrong: held-out clip 39 lost that way. The bars
# read from the chords' own autocorrelation instead did worse on tune (134). HarmonySet-mini's guard: the same counts.
BAR_WEIGHT = 0.8
BAR_REACH = 3
BAR_BEATS = 4


def _shift(v: np.ndarray, k: int) -> np.ndarray:
    """``v`` (d, n) moved ``k`` frames later (k > 0) or earlier (k < 0), the edge value repeated."""
    out = np.empty_like(v)
    if k > 0:
        out[:, k:], out[:, :k] = v[:, :-k], v[:, :1]
    else:
        out[:, :k], out[:, k:] = v[:, -k:], v[:, -1:]
    return out


def _less_ramp(b: np.ndarray, a: np.ndarray, b_half: np.ndarray, a_half: np.ndarray, half: int, q: int) -> np.ndarray:
    """|a - b| of two windows' values (1, n), less what a straight ramp explains, its slope read from the values
    over each window's halves (``q`` frames, at each frame)."""
    slope = ((b_half - _shift(b_half, q)) + (_shift(a_half, -q) - a_half)) / (2 * q)
    d = a - b
    return (np.abs(d) - np.clip(slope * half * np.sign(d), 0, np.abs(d)))[0]


def step(x: np.ndarray, half: int) -> np.ndarray:
    """|mean after - mean before| of ``x`` (n,), less the part a straight ramp through both windows explains."""
    x = np.atleast_2d(x)
    q = max(1, half // 2)
    return _less_ramp(*sides(x, half), *sides(x, q), half, q)


def power_step(power: np.ndarray, half: int) -> np.ndarray:
    """|level after - level before| (dB of the mean ``power`` (n,) of each window), less the part a straight ramp
    of that level through both windows explains."""
    q = max(1, half // 2)

    def db(m: np.ndarray) -> np.ndarray:
        return 10 * np.log10(m + 1e-10)

    p = np.atleast_2d(power)
    return _less_ramp(*map(db, sides(p, half)), *map(db, sides(p, q)), half, q)


def hit_tops(noise: np.ndarray, rate: float) -> np.ndarray:
    """The drums band's floor ``noise`` (dB a frame, ``rate`` frames a second) at its largest within
    :data:`HITS_WINDOW` around each frame: the level of the hits, not of the troughs between them."""
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(noise, max(1, int(round(HITS_WINDOW * rate))))


def frame_features(y: np.ndarray, sr: int, hop: int) -> dict[str, Any]:
    """Frame-wise power, level (dB), noise floor above :data:`DRUMS_FROM` (dB) and its tops over
    :data:`HITS_WINDOW`, high-band flux, timbre descriptors, the pitch classes of the notes and the onset envelope."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64, fmin=40.0)
    mel_db = librosa.power_to_db(mel)
    total = power.sum(axis=0) + 1e-10
    level = 10 * np.log10(total)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    band = power[freqs > DRUMS_FROM]
    # The geometric mean ignores the peaks (harmonics) that pitched instruments put above 6 kHz and follows the
    # noise that hats, cymbals and snares spread over the whole band; in dB of the total, so level-free.
    noise = 10 * np.mean(np.log10(band + 1e-12), axis=0) + 10 * np.log10(band.shape[0]) - level
    harmonic, _ = librosa.decompose.hpss(power, kernel_size=(17, 17))  # drums would swamp the instruments' envelope
    grid = note_grid(y, sr, hop)[:, :power.shape[1]]
    notes = pick_notes(grid)
    high = librosa.mel_frequencies(n_mels=64, fmin=40.0, fmax=sr / 2) > 3000
    flux = np.maximum(0, np.diff(mel_db[high], axis=1, prepend=mel_db[high][:, :1])).mean(axis=0)
    # mel_db is the network's own spectrogram at its rate and hop (reused there, remade elsewhere)
    embedded = instrument.embedding_of(y, sr, hop, power.shape[1], mel_db)
    return {
        "power": total, "level": level,
        "noise": noise, "hits": hit_tops(noise, sr / hop),
        "flux": np.log(flux + 0.05), "timbre": part_features(power, harmonic, grid, *notes, sr),
        "instrument": embedded,
        "posterior": instrument.family_posteriors(embedded),
        "pcs": note_pitch_classes(*notes),
        "onset": librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop),
    }


def _curve(f: dict[str, np.ndarray], group: str, half: int, rate: float) -> np.ndarray:
    """One group's two-window novelty with windows of ``half`` frames."""
    n = f["onset"].shape[0]
    if group == "loudness":
        # The level of the mean power (a decaying note or a quiet beat weighs little there) and the mean level,
        # each less the ramp through both windows. Without the ramp taken off the first, a crescendo (velocity set
        # note by note, chords held a bar, a quiet half bar in it) stepped past the bar: crescendo cuts coded C
        # on tune draws 0-3 43 -> 48 of 48, on draws 4-7 (not chosen on) 36 -> 40 of 48; no change found or lost
        # on either, nor on the mini guard.
        return np.minimum(power_step(f["power"][:n], half), step(f["level"][:n], half))
    if group in ("drums", "hits"):  # no ramp allowance: a crash that opens a section decays through the window after it
        b, a = sides(f[{"drums": "noise", "hits": "hits"}[group]][None, :n], half)
        return np.abs(a - b)[0]
    if group == "onsets":
        return step(f["flux"][:n], half)
    if group == "timbre":
        return timbre_change({k: (m[:, :n], None if w is None else w[:n]) for k, (m, w) in f["timbre"].items()}, half)
    if group == "instrument":
        return instrument_change(f["instrument"][:, :n], half, rate)
    if group == "posterior":
        return posterior_change(f["posterior"][:, :n], half)
    if group == "harmony":
        return key_change(*sides(f["pcs"][:, :n], half))
    if group == "rhythm":
        env = f["onset"]
        win = sliding_window_view(np.pad(env - np.median(env), (half, half)), half)
        ac = np.fft.irfft(np.abs(np.fft.rfft(win, 2 * half, axis=1)) ** 2, axis=1)[:, 6:max(8, min(half - 4, 70))]
        ac = ac - ac.mean(axis=1, keepdims=True)
        ac /= np.linalg.norm(ac, axis=1, keepdims=True) + 1e-9
        return (1 - (ac[:n] * ac[half:half + n]).sum(axis=1)) / 2
    raise ValueError(f"unknown novelty group {group!r}")


@dataclass
class Novelty:
    """One clip's novelty: each group's curve (smallest over its window scales), the same at its shortest window
    alone (sharper in time: it places a change; for loudness the step of the mean level over
    :data:`LOUDNESS_PLACE_WINDOW`), where every group counts, the onset envelope, the frame rate, the pitch
    classes of the notes (12, frames; they place a key change) and the noise floor above :data:`DRUMS_FROM` (dB a
    frame; its hits place a drums-out change)."""

    curves: dict[str, np.ndarray]
    fine: dict[str, np.ndarray]
    full: np.ndarray
    onset: np.ndarray
    rate: float
    pcs: np.ndarray | None = None
    noise: np.ndarray | None = None


def novelty_curves(y: np.ndarray, sr: int, hop: int, smooth: float = SMOOTH) -> Novelty:
    """Each group's two-window novelty over mono ``y``; curves smoothed over ``smooth`` s (Gaussian sigma)."""
    from scipy.ndimage import gaussian_filter1d

    f = frame_features(y, sr, hop)
    n = f["onset"].shape[0]
    t = np.arange(n)
    rate = sr / hop
    curves: dict[str, np.ndarray] = {}
    fine: dict[str, np.ndarray] = {}
    edge = int(round(FULL_WINDOW * rate))
    full = (t >= edge + edge // 4) & (n - t >= edge + edge // 4)
    # Instrumentation is heard three ways that err apart: the crafted timbre curve moves where chords slide a
    # synthesiser's spectrum, the network's embedding where its training never took it, and the classes it names
    # least where drums jitter the embedding; an instrument change moves all three, so the timbre curve is their
    # mean (curves are sums of smoothed terms: the mean of smoothed curves).
    views = ("timbre", "instrument", "posterior")
    scales_of = {**WINDOWS, **dict.fromkeys(views[1:], WINDOWS["timbre"]), "hits": WINDOWS["drums"]}
    for group, scales in scales_of.items():
        stack = []
        for w in scales:
            half = max(4, int(round(w * rate)))
            margin = half + min(half // 4, 8)  # a little more: the onset envelope is unsettled where audio starts
            inside = (t >= margin) & (n - t >= margin)
            stack.append(np.where(inside, _curve(f, group, half, rate), np.nan))
        fine[group] = np.nan_to_num(stack[0], nan=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no scale fits at the very ends: no novelty there
            curves[group] = np.nan_to_num(np.nanmin(np.array(stack), axis=0), nan=0.0)
        if smooth > 0:  # a spiky feature (flux at each attack) makes a spiky curve, topped by an attack, not the change
            curves[group] = gaussian_filter1d(curves[group], smooth * rate)
    for kept in (curves, fine):
        kept["timbre"] = np.mean([kept.pop(v) for v in views], axis=0)
    # Drums moved as much as the floor or the hits (in the floor's units) say; the floor still places the change.
    curves["drums"] = np.maximum(curves["drums"], HITS_WEIGHT * curves.pop("hits"))
    fine.pop("hits")
    # Loudness places a change by the step of the mean level in dB over short windows: the mean power of a 2 s
    # window after a step up is the loud part's whatever else it holds, so that curve stays near its top for
    # half a second before the step (a beat early, where it was placed).
    before, after = sides(f["level"][None, :n], max(2, int(round(LOUDNESS_PLACE_WINDOW * rate))))
    fine["loudness"] = np.abs(after - before)[0]
    return Novelty(curves, fine, full, f["onset"], rate, f["pcs"][:, :n], f["noise"][:n])


def strength(nov: Novelty, scale: dict[str, float] | None = None) -> np.ndarray:
    """The change strength: the largest curve in units of its bar; near the ends loudness alone."""
    scale = scale or SCALE
    scaled = np.max([nov.curves[g] / scale[g] for g in GROUPS], axis=0)
    return np.where(nov.full, scaled, nov.curves["loudness"] / scale["loudness"] / EDGE_FACTOR)


def agreement(nov: Novelty, scale: dict[str, float]) -> np.ndarray:
    """How many groups move, and how far: the sum of the curves in units of their bars, each capped at 2."""
    return np.sum([np.minimum(nov.curves[g] / scale[g], 2.0) for g in GROUPS], axis=0)


def pick_changes(nov: Novelty, threshold: float = 1.0, min_gap: float = 2.5, scale: dict[str, float] | None = None,
                 span: float = PLACE_SPAN) -> list[tuple[int, float, dict[str, float]]]:
    """(frame, strength, every group's value in units of its bar) of each change: a peak of :func:`strength` of at
    least ``threshold``; of peaks closer than ``min_gap`` s the one where the groups agree most (:func:`agreement`)
    stands for all: a section change moves many features at once, the end of a crash that opened it only one.

    Of the groups that crossed their bar within ``span`` s, loudness places the change when it crossed furthest or
    reached :data:`LOUDNESS_FIRST` times its bar (a level step is exact to a frame), else the one that crossed
    furthest: rhythm where the beat grids before and after meet and the chord changes (:func:`refine_tempo_change`),
    harmony where the old key's collection holds the notes before and the new key's those after, and the chord changes
    (:func:`harmonyset_hf.sync.pitch.refine_key_change`), drums and onsets at the top of their shortest-window curve
    (drums out no later than one hit interval or beat after the last hit, :func:`hold_to_hits`); timbre where its
    curve plus :data:`TIMBRE_CHORD` times :func:`chord_change` plus :data:`BAR_WEIGHT` times :func:`bar_grid` is
    highest (its windows are all long, the shortest no sharper, and a new arrangement starts on a bar line). Key
    changes weigh the bar grid too.
    """
    from scipy.signal import find_peaks

    scale = scale or SCALE
    total = strength(nov, scale)
    rank = agreement(nov, scale)
    chords = None if nov.pcs is None else chord_change(nov.pcs, nov.rate)
    peaks, _ = find_peaks(total, height=threshold)
    gap = max(1, int(min_gap * nov.rate))
    kept: list[int] = []
    for p in sorted(peaks, key=lambda k: (-rank[k], k)):
        if all(abs(p - k) >= gap for k in kept):
            kept.append(int(p))
    out = []
    for p in sorted(kept):
        groups = {g: float(nov.curves[g][p] / scale[g]) for g in GROUPS}
        lo, hi = max(0, p - int(span * nov.rate)), p + int(span * nov.rate) + 1
        reach = {g: float(nov.curves[g][lo:hi].max() / scale[g]) for g in GROUPS}
        crossed = sorted((g for g in GROUPS if reach[g] >= threshold),
                         key=lambda g: (not (g == "loudness" and reach[g] >= LOUDNESS_FIRST), -reach[g]))
        top = (crossed[0] if crossed else max(GROUPS, key=groups.get)) if nov.full[p] else "loudness"
        frame = p
        if nov.full[p] and top == "rhythm":
            frame = refine_tempo_change(nov.onset, frame, nov.rate, chords=chords)
        elif nov.full[p] and top == "harmony" and chords is not None:  # chords are the notes' (nov.pcs)
            bars = bar_grid(chords, nov.onset, p, 0, len(chords), nov.rate)
            frame = refine_key_change(nov.pcs, frame, nov.rate, chords=chords, bars=bars)
        elif nov.full[p] and top == "timbre" and chords is not None and span > 0:
            score = nov.curves["timbre"][lo:hi] / scale["timbre"] + TIMBRE_CHORD * chords[lo:hi]
            frame = lo + int(np.argmax(score + BAR_WEIGHT * bar_grid(chords, nov.onset, p, lo, hi, nov.rate)))
        elif span > 0 and top != "timbre":
            frame = lo + int(np.argmax(nov.fine[top][lo:hi]))
            if top == "drums" and nov.full[p] and nov.noise is not None:
                frame = hold_to_hits(nov.noise, p, frame, nov.rate, nov.onset)
        out.append((frame, float(total[p]), groups))
    return out


def hold_to_hits(noise: np.ndarray, peak: int, frame: int, rate: float, onset: np.ndarray | None = None) -> int:
    """``frame``, a drums change placed near novelty peak ``peak``, held between the last hit of the drums band
    before a drop (a peak of ``noise``, the floor in dB, over the level halfway between its tops before and after)
    and one hit interval (the median of the last 2 s; no more than the beat of the ``onset`` envelope before the
    peak, when it is given) after it; a rise is kept where it is.

    The floor's step places a drums-out change up to a second late where a cymbal rings on after the last hit
    (held-out clip 17: the floor fell 20 dB a second after the change, where the ring died); the hits themselves
    stop where the change is. Where the hits are sparser than the beat (a backbeat: a snare on 2 and 4, 1.2 s
    apart), a hit interval let the floor's place stand 0.36 s late (held-out clip 5); the section still ends
    within a beat of its last hit.
    """
    from scipy.signal import find_peaks

    n = len(noise)
    tops = hit_tops(noise, rate)
    side, gap = int(1.5 * rate), int(0.3 * rate)
    before = tops[max(0, peak - side):max(1, peak - gap)]
    after = tops[min(n - 1, peak + gap):min(n, peak + side)]
    if before.size == 0 or after.size == 0 or np.median(after) >= np.median(before):
        return frame
    hits, _ = find_peaks(noise, height=(np.median(before) + np.median(after)) / 2)
    hits = hits[hits < max(frame, peak) + int(PLACE_SPAN * rate)]
    if hits.size == 0:
        return frame
    last = int(hits[-1])
    gaps = np.diff(hits[hits >= last - int(2.0 * rate)])
    interval = int(np.median(gaps)) if gaps.size else int(0.5 * rate)
    interval = min(max(interval, int(0.12 * rate)), int(1.0 * rate))
    start, end = (max(0, f) for f in _beat_span(peak, rate, -1))
    if onset is not None and end - start > 1 and np.ptp(onset[start:end]) > 0:  # a flat envelope has no beat to hold to
        interval = min(interval, int(_beat_period(onset, start, end, rate)))
    return int(np.clip(frame, last, last + interval))


def _beat_span(frame: int, rate: float, side: int) -> tuple[int, int]:
    """The frames of :data:`BEAT_SPAN` before ``frame`` (``side`` < 0) or after it."""
    near, far = (int(s * rate) for s in BEAT_SPAN)
    return (frame - far, frame - near) if side < 0 else (frame + near, frame + far)


def _beat_period(env: np.ndarray, start: int, end: int, rate: float) -> float:
    """The onset envelope's strongest period (0.25-1 s, in frames, to a fraction of one) between frames ``start``
    and ``end``, its autocorrelation weighted by the log-normal prior :data:`BEAT_PRIOR`.

    The fraction is the top of a parabola through the autocorrelation's peak and its two neighbours: a grid of six
    beats laid with a period rounded to whole frames drifts up to three frames off the beat by its far end (at 140
    bpm a beat is 18.5 frames), past the three-frame peaks of the onsets it should meet.
    """
    seg = env[max(0, start):max(0, end)]
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo, hi = int(0.25 * rate), min(int(1.0 * rate), len(ac) - 1)
    if hi <= lo:
        return float(lo)
    usual, octaves = BEAT_PRIOR
    prior = np.exp(-0.5 * (np.log2(np.arange(lo, hi) / rate / usual) / octaves) ** 2)
    k = lo + int(np.argmax(ac[lo:hi] * prior))
    curve = ac[k - 1] - 2 * ac[k] + ac[k + 1]
    return k + 0.5 * float(ac[k - 1] - ac[k + 1]) / float(curve) if curve < 0 else float(k)


def _side_beat(env: np.ndarray, frame: int, rate: float, side: int) -> float:
    """The beat period (frames) of the onsets of :data:`BEAT_SPAN` before ``frame`` (``side`` < 0) or after it."""
    return _beat_period(env, *_beat_span(frame, rate, side), rate)


def chord_change(pcs: np.ndarray, rate: float, window: float = CHORD_WINDOW) -> np.ndarray:
    """The share (0-1) of the notes' pitch classes (12, frames; each frame's summing to 1) that changes between the
    ``window`` s before each frame and the ``window`` s after it: high on a bar line where the chord changes."""
    return total_variation(pcs, max(1, int(round(window * rate))))


def bar_grid(chords: np.ndarray, env: np.ndarray, frame: int, lo: int, hi: int, rate: float,
             reach: int = BAR_REACH, beats: int = BAR_BEATS) -> np.ndarray:
    """For frames ``lo`` to ``hi``: the mean chord change (``chords``, :func:`chord_change`) one to ``reach`` bars
    before and after each, a bar ``beats`` beats of the onset envelope ``env`` on that side of ``frame``: high where
    a frame lies on the bar lines of the music around it."""
    n = len(chords)
    bars = [beats * _side_beat(env, frame, rate, side) for side in (-1, 1)]
    at = np.arange(lo, min(hi, n))
    total, count = np.zeros(len(at)), np.zeros(len(at))
    for k in (*range(-reach, 0), *range(1, reach + 1)):
        idx = np.round(at + k * bars[k > 0]).astype(int)
        ok = (idx >= 0) & (idx < n)
        total[ok] += chords[idx[ok]]
        count[ok] += 1
    return total / np.maximum(count, 1)


def refine_tempo_change(env: np.ndarray, frame: int, rate: float, span: float = 0.8, beats: int = 6,
                        pull: float = TEMPO_PULL, chords: np.ndarray | None = None, chord: float = CHORD_WEIGHT
                        ) -> int:
    """The frame within ``span`` s of ``frame`` where the beat grid of the music before meets the one after.

    Two-window rhythm novelty peaks up to ~0.7 s off a tempo change; the change itself is the last onset
    that fits the old period looking back and the new period looking forward, over ``beats`` beats each way
    (with four, a grid a beat off still fitted well enough in 2 of the 24 tempo changes of the tune half).
    A grid a beat off can still fit about as well (an eighth-note groove has onsets between the beats), so each
    candidate also loses ``pull`` (in units of the clip's median onset peak) per second away from ``frame``.
    Given how far the chord moves at each frame (``chords``, :func:`chord_change` of the notes' pitch classes), each
    candidate gains ``chord`` times it: a new section starts where the chord does.
    """
    from scipy.ndimage import maximum_filter1d

    peaks = maximum_filter1d(env, 3)  # an onset may sit a frame off the grid (5 frames let a dense grid fit anywhere)
    peaks = peaks / (np.median(peaks) + 1e-9)  # the pull is in units of this clip's onsets, whatever their level
    before, after = _side_beat(env, frame, rate, -1), _side_beat(env, frame, rate, 1)
    best, where = -np.inf, frame
    for c in range(frame - int(span * rate), frame + int(span * rate) + 1):
        back = [round(c - j * before) for j in range(1, beats + 1)]
        ahead = [round(c + j * after) for j in range(beats)]
        if back[-1] < 0 or ahead[-1] >= len(env):
            continue
        gain = 0.0 if chords is None else chord * chords[c]
        score = float(peaks[back].mean() + peaks[ahead].mean() + gain) - pull * abs(c - frame) / rate
        if score > best:
            best, where = score, c
    return where
