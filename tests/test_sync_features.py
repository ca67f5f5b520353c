"""The change detector's features on music synthesised here with numpy (neither FluidSynth nor HarmonySet-mini):
note pitch classes, key changes, drums, timbre that a fixed instrument keeps across registers, and which of
several nearby peaks stands for a change."""

from __future__ import annotations

import numpy as np
import pytest

from harmonyset_hf.sync import novelty, pitch
from harmonyset_hf.sync.analysis import SyncParams
from harmonyset_hf.sync.windows import sides

SR, HOP = 22050, 512
RATE = SR / HOP


def _note(midi: float, seconds: float, harmonics: list[float], decay: float | None = None) -> np.ndarray:
    """One note: the given harmonic amplitudes, a 10 ms attack, held or decaying with time constant ``decay``."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t) for h, a in enumerate(harmonics) if f0 * (h + 1) < SR / 2)
    env = np.minimum(1.0, t / 0.01) * (np.exp(-t / decay) if decay else 1.0)
    return (y * env).astype(np.float32)


def _chords(roots_and_triads: list[list[int]], seconds: float, harmonics: list[float], decay: float | None = None
            ) -> np.ndarray:
    return np.concatenate([sum(_note(m, seconds, harmonics, decay) for m in chord) / len(chord)
                           for chord in roots_and_triads])


SAW = [1 / h for h in range(1, 9)]             # a bright, sawtooth-like spectrum
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)


def _diatonic_triads(key: int, degrees: list[int], octave: int = 60) -> list[list[int]]:
    def note(d: int) -> int:
        return octave + key + MAJOR_STEPS[d % 7] + 12 * (d // 7)

    return [[note(d), note(d + 2), note(d + 4)] for d in degrees]


def test_note_pitch_classes_keep_the_notes_not_their_partials():
    """A C major triad with 8 harmonics: the picked notes put >= 90 % in C, E and G, where chroma (every partial
    folded) leaves a quarter or more elsewhere (the 3rd and 5th harmonics are a fifth and a third up)."""
    import librosa

    y = _chords([[60, 64, 67]], 2.0, SAW)
    pcs = pitch.pitch_classes(y, SR, HOP)[:, 10:-10].mean(axis=1)
    assert pcs[[0, 4, 7]].sum() >= 0.9, np.round(pcs, 2)
    chroma = librosa.feature.chroma_stft(y=y, sr=SR, hop_length=HOP, tuning=0.0)[:, 10:-10]
    chroma = (chroma / chroma.sum(axis=0, keepdims=True)).mean(axis=1)
    assert chroma[[0, 4, 7]].sum() < 0.75 < pcs[[0, 4, 7]].sum()


def test_key_change_is_found_where_the_key_moves_and_not_at_chord_changes():
    """Chords I-IV-V-vi in C major for 8 s, then the same in E flat major: the harmony curve crosses its bar
    within 0.35 s of the modulation and stays under it at every chord change inside a key."""
    degrees = [0, 3, 4, 5] * 2
    y = np.concatenate([_chords(_diatonic_triads(key, degrees), 1.0, SAW) for key in (0, 3)])
    nov = novelty.novelty_curves(y, SR, HOP)
    h = nov.curves["harmony"] / novelty.SCALE["harmony"]
    t = np.arange(h.size) / RATE
    near = np.abs(t - 8.0) <= 0.35
    assert h[near].max() >= 1.0, h[near].max()
    inside = nov.full & (np.abs(t - 8.0) > 1.5)
    assert h[inside].max() < 0.5, h[inside].max()


def test_drums_coming_in_move_the_noise_floor_and_a_louder_pad_does_not():
    """A held pad, then the same pad with hi-hat noise bursts every eighth: the drums curve crosses its bar at
    the entry; the same pad getting 6 dB louder (no noise) leaves it at about half of it."""
    rng = np.random.default_rng(0)
    pad = _chords(_diatonic_triads(2, [0, 3, 4, 0] * 3), 1.0, [1.0, 0.4, 0.2])
    hats = np.zeros_like(pad)
    burst = np.diff(rng.standard_normal(int(0.04 * SR) + 1)) * np.exp(-np.arange(int(0.04 * SR)) / (0.01 * SR))
    for start in np.arange(6.0, 12.0, 0.25):
        k = int(start * SR)
        hats[k:k + burst.size] += 0.15 * burst[:hats.size - k]
    t = np.arange(novelty.novelty_curves(pad, SR, HOP).curves["drums"].size) / RATE
    with_drums = novelty.novelty_curves(pad + hats, SR, HOP)
    assert (with_drums.curves["drums"][np.abs(t - 6.0) <= 0.35] / novelty.SCALE["drums"]).max() >= 1.0
    louder = pad * np.where(np.arange(pad.size) < 6 * SR, 0.5, 1.0).astype(np.float32)
    # An almost empty band: its floor is the pad's faint leakage, which a 6 dB step moves a few dB (not the ~10
    # dB a hi-hat entry does); about half the bar, where drums count (within the first second the hits' view
    # sees the sound start, where only loudness counts).
    quiet = novelty.novelty_curves(louder, SR, HOP)
    assert (quiet.curves["drums"][quiet.full] / novelty.SCALE["drums"]).max() < 0.6


def test_timbre_ignores_a_fixed_instrument_changing_register_but_sees_a_new_instrument():
    """Held chords of one additive timbre jumping between registers bar by bar stay under the timbre bar (the
    spectrum slides with the notes, the instrument does not change); switching at 8 s to a plucked, hollow
    timbre (odd harmonics, decaying) crosses it there."""
    degrees = [0, 5, 3, 4] * 2
    registers = [48, 60, 72, 60] * 2
    hold = np.concatenate([_chords(_diatonic_triads(0, [d], octave=o), 1.0, SAW) for d, o in zip(degrees, registers)])
    hollow = [1.0 if h % 2 == 0 else 0.05 for h in range(8)]
    pluck = np.concatenate([_chords(_diatonic_triads(0, [d], octave=o), 1.0, hollow, decay=0.25)
                            for d, o in zip(degrees, registers)])
    same = novelty.novelty_curves(np.concatenate([hold, hold]), SR, HOP)
    assert (same.curves["timbre"][same.full] / novelty.SCALE["timbre"]).max() < 1.0
    new = novelty.novelty_curves(np.concatenate([hold, pluck]), SR, HOP)
    t = np.arange(new.curves["timbre"].size) / RATE
    assert (new.curves["timbre"][np.abs(t - 8.0) <= 0.35] / novelty.SCALE["timbre"]).max() >= 1.0


def _bump(n: int, at: float, height: float, width: float = 0.3) -> np.ndarray:
    return height * np.exp(-0.5 * ((np.arange(n) / RATE - at) / width) ** 2)


def _novelty(curves: dict[str, np.ndarray]) -> novelty.Novelty:
    """Hand-made curves as a clip's novelty: the same curves at the shortest window, every frame in full."""
    n = len(next(iter(curves.values())))
    return novelty.Novelty(curves, {g: c.copy() for g, c in curves.items()}, np.ones(n, bool), np.zeros(n), RATE)


def test_of_two_peaks_the_one_where_groups_agree_stands_for_both():
    """Loudness and harmony cross their bars together at 5 s, drums alone (higher) at 6.5 s, as a crash that
    opened the section dies away: one change, at 5 s, placed by loudness, the sharpest group that moved (and here
    the furthest)."""
    n = int(12 * RATE)
    curves = {g: np.zeros(n) for g in novelty.GROUPS}
    curves["loudness"] = _bump(n, 5.0, 1.6 * novelty.SCALE["loudness"])
    curves["harmony"] = _bump(n, 5.2, 1.5 * novelty.SCALE["harmony"])
    curves["drums"] = _bump(n, 6.5, 3.0 * novelty.SCALE["drums"])
    nov = _novelty(curves)
    picked = novelty.pick_changes(nov, SyncParams().change_threshold, SyncParams().min_change_gap)
    assert len(picked) == 1
    frame, strength, groups = picked[0]
    assert abs(frame / RATE - 5.0) <= 1 / RATE and strength == pytest.approx(1.6, abs=0.05)
    assert groups["loudness"] >= 1.0 and groups["harmony"] >= 1.0 and groups["drums"] < 0.1
    far = novelty.pick_changes(nov, 1.0, min_gap=1.0)  # apart by more than the gap: both stand
    assert [round(f / RATE, 1) for f, _, _ in far] == [5.0, 6.5]


def _hats_floor(n: int, start: float, end: float, ring: float = 0.0) -> np.ndarray:
    """A drums band's floor (dB): -50 with a hit of -20 every 0.25 s from ``start`` to ``end``, then ``ring`` s
    of a cymbal ringing on at -44, then -65."""
    t = np.arange(n) / RATE
    floor = np.where(t < end + ring, -50.0, -65.0)
    floor[(t >= end) & (t < end + ring)] = -44.0
    for hit in np.arange(start, end - 1e-9, 0.25):
        floor[int(round(hit * RATE))] = -20.0
    return floor


def test_drums_dropping_out_are_placed_after_the_last_hit_not_where_a_ringing_cymbal_dies():
    """Hats every 0.25 s until 6 s, then a cymbal ringing for a second: the floor's step (here a bump at 7 s)
    is the ring's end; the change is held within one hit interval of the last hit (5.75 s). Drums coming in
    keep the floor's place."""
    n = int(12 * RATE)
    curves = {g: np.zeros(n) for g in novelty.GROUPS}
    curves["drums"] = _bump(n, 7.0, 2.0 * novelty.SCALE["drums"])
    nov = _novelty(curves)
    p = SyncParams()
    assert [round(f / RATE, 1) for f, _, _ in novelty.pick_changes(nov, p.change_threshold, p.min_change_gap)] == [7.0]
    nov.noise = _hats_floor(n, 0.0, 6.0, ring=1.0)
    (frame, _, _), = novelty.pick_changes(nov, p.change_threshold, p.min_change_gap)
    assert 5.75 <= frame / RATE <= 6.0 + 1 / RATE, frame / RATE
    nov.noise = np.where(np.arange(n) / RATE < 6.0, -65.0, _hats_floor(n, 0.0, 12.0))  # hits from 6 s on: a rise
    (frame, _, _), = novelty.pick_changes(nov, p.change_threshold, p.min_change_gap)
    assert round(frame / RATE, 1) == 7.0


def test_drums_dropping_out_after_a_backbeat_are_placed_a_beat_after_the_last_hit():
    """A snare on 2 and 4 at 100 bpm (a hit every 1.2 s, the last at 5.4 s) while the music's beat (0.6 s) goes
    on in the onset envelope, and a cymbal ringing to 6.4 s: the section ends at 6.0 s, one beat after the last
    hit. Held to one hit interval (at most 1 s) the ring's end would stand (6.4 s); the beat holds it to 6.0 s."""
    n = int(12 * RATE)
    curves = {g: np.zeros(n) for g in novelty.GROUPS}
    curves["drums"] = _bump(n, 6.5, 2.0 * novelty.SCALE["drums"])
    nov = _novelty(curves)
    t = np.arange(n) / RATE
    nov.noise = np.where(t < 6.4, -50.0, -65.0)
    nov.noise[(t >= 5.4) & (t < 6.4)] = -44.0
    for hit in np.arange(0.6, 5.4 + 1e-9, 1.2):
        nov.noise[int(round(hit * RATE))] = -20.0
    for beat in np.arange(0.0, 12.0, 0.6):
        nov.onset[int(round(beat * RATE))] = 1.0
    p = SyncParams()
    (frame, _, _), = novelty.pick_changes(nov, p.change_threshold, p.min_change_gap)
    assert abs(frame / RATE - 6.0) <= 0.05, frame / RATE
    peak = int(round(6.5 * RATE))
    assert abs(novelty.hold_to_hits(nov.noise, peak, peak, RATE) / RATE - 6.4) <= 0.05  # the hit interval alone


def test_a_modulation_is_placed_where_the_notes_leave_the_old_key():
    """The C to E flat modulation at 8 s: the picked change lies within 0.1 s of it (the two-window curve alone
    may peak ~0.7 s off), no other key change is picked, and refine_key_change finds the boundary from 0.6 s
    either side of it. (These bare sawtooth chords leave the band above 6 kHz almost empty, where the drums
    curve can reach its bar as partials come and go: that is not what this test is about.)"""
    degrees = [0, 3, 4, 5] * 2
    y = np.concatenate([_chords(_diatonic_triads(key, degrees), 1.0, SAW) for key in (0, 3)])
    nov = novelty.novelty_curves(y, SR, HOP)
    picked = novelty.pick_changes(nov, SyncParams().change_threshold, SyncParams().min_change_gap)
    times = [f / RATE for f, _, _ in picked]
    assert [t for t in times if abs(t - 8.0) <= 0.1] and not [t for t in times if 0.1 < abs(t - 8.0) <= 2.5], times
    assert all(g["harmony"] < 1.0 for f, _, g in picked if abs(f / RATE - 8.0) > 2.5), picked
    for start in (8.0 - 0.6, 8.0 + 0.6):
        assert abs(pitch.refine_key_change(nov.pcs, int(start * RATE), RATE) / RATE - 8.0) <= 0.1


def test_refine_key_change_keeps_the_frame_when_both_sides_share_a_collection():
    """Pitch classes of C major on both sides (no modulation to place): the frame it was given comes back."""
    pcs = np.zeros((12, 400))
    pcs[[0, 4, 7], :200] = 1 / 3
    pcs[[5, 9, 0], 200:] = 1 / 3  # F major: another chord of the same collection
    assert pitch.refine_key_change(pcs, 215, RATE) == 215
    pcs[[1, 5, 8], 200:] = 1 / 3  # D flat major chord added: the sides now fit different collections
    pcs[[9], 200:] = 0.0
    assert abs(pitch.refine_key_change(pcs, 215, RATE) - 200) <= 1


def _timed_chord_pitch_classes(n: int, chords: list[tuple[float, tuple[int, ...]]], rate: float = RATE) -> np.ndarray:
    """(12, n) pitch classes of triads at ``rate`` frames a second, each from its start time (s) to the next one's."""
    t = np.arange(n) / rate
    pcs = np.zeros((12, n))
    for (start, triad), (end, _) in zip(chords, chords[1:] + [(t[-1] + 1, ())]):
        pcs[np.ix_(list(triad), (t >= start) & (t < end))] = 1 / 3
    return pcs


def _chord_pitch_classes(chords: list[tuple[int, int, int]], rate: float) -> np.ndarray:
    """(12, frames) pitch classes of the triads ``chords``, one a second at ``rate`` frames a second."""
    return _timed_chord_pitch_classes(int(len(chords) * rate), list(enumerate(chords)), rate)


def test_a_closing_chord_the_far_music_never_played_stays_with_the_old_key():
    """F minor (i iv i iv ... v) to F major (I IV I V), a chord a second, the change at 8 s. The music more than
    1.2 s before the change fits the D flat and the A flat collections alike; only the closing C minor chord (its
    G) says A flat. Taking the first of those (D flat) placed the change at the start of that chord (7 s); the
    tie broken by the music nearer the change, the C minor chord goes with the old key and the change lands at 8 s."""
    rate = 50.0
    minor = [(5, 8, 0), (10, 1, 5)] * 3 + [(5, 8, 0), (0, 3, 7)]
    major = [(5, 9, 0), (10, 2, 5), (5, 9, 0), (0, 4, 7)] * 2
    pcs = _chord_pitch_classes(minor + major, rate)
    for start in (7.6, 8.4):
        assert abs(pitch.refine_key_change(pcs, int(start * rate), rate) / rate - 8.0) <= 0.05


def test_a_chord_both_keys_hold_leaves_the_split_to_the_bar_line_where_the_chord_moves_most():
    """C major (C F G C F G C Em) to D major (D G A D ...), a chord a second, the change at 8 s. E minor fits both
    collections, so the notes split as well anywhere from 7 s to 8 s (the first of equal splits in reach wins).
    Given how far the chord moves at each frame, the split goes to 8 s, where E minor gives way to D major (no note
    shared), not to 7 s, where C major gives way to E minor (two notes shared)."""
    rate = 50.0
    old = [(0, 4, 7), (5, 9, 0), (7, 11, 2), (0, 4, 7), (5, 9, 0), (7, 11, 2), (0, 4, 7), (4, 7, 11)]
    new = [(2, 6, 9), (7, 11, 2), (9, 1, 4), (2, 6, 9)] * 2
    pcs = _chord_pitch_classes(old + new, rate)
    chords = novelty.chord_change(pcs, rate)
    for start in (7.4, 8.6):
        assert pitch.refine_key_change(pcs, int(start * rate), rate) / rate < 7.5
        assert abs(pitch.refine_key_change(pcs, int(start * rate), rate, chords=chords) / rate - 8.0) <= 0.05


def test_the_group_that_moved_most_places_a_change_when_loudness_did_not():
    """Onsets cross their bar 2.5-fold at 5.0 s, drums just over theirs at 5.3 s (a new instrument lifts the noise
    floor a little, slowly): the change is placed by onsets at 5.0 s. Where loudness crosses too, at 4.8 s, it places
    only if its step is a real one (novelty.LOUDNESS_FIRST times its bar) or the furthest: a barely crossing level
    (a new arrangement whose first loud note comes late) leaves the place to onsets."""
    n = int(12 * RATE)
    curves = {g: np.zeros(n) for g in novelty.GROUPS}
    curves["onsets"] = _bump(n, 5.0, 2.5 * novelty.SCALE["onsets"], width=0.2)
    curves["drums"] = _bump(n, 5.3, 1.2 * novelty.SCALE["drums"], width=0.6)
    nov = _novelty(curves)
    picked = novelty.pick_changes(nov, 1.0, 2.5)
    assert len(picked) == 1 and abs(picked[0][0] / RATE - 5.0) <= 1 / RATE
    for height, placed in ((1.1, 5.0), (novelty.LOUDNESS_FIRST + 0.1, 4.8), (2.6, 4.8)):
        curves["loudness"] = _bump(n, 4.8, height * novelty.SCALE["loudness"], width=0.2)
        picked = novelty.pick_changes(_novelty(curves), 1.0, 2.5)
        assert len(picked) == 1 and abs(picked[0][0] / RATE - placed) <= 1 / RATE, (height, picked[0][0] / RATE)


def test_a_timbre_change_is_placed_on_the_chord_change_under_the_flat_top_of_its_curve():
    """The timbre curve (long windows) is flat for half a second around a new arrangement and peaks 0.4 s after it;
    the chord changing at 5 s (the bar line) places it there. Without notes, or where they do not change, the
    curve's own peak stands."""
    n = int(12 * RATE)
    curves = {g: np.zeros(n) for g in novelty.GROUPS}
    t = np.arange(n) / RATE
    curves["timbre"] = novelty.SCALE["timbre"] * (1.3 - 0.05 * np.abs(t - 5.4)) * (np.abs(t - 5.2) < 1.5)
    nov = _novelty(curves)
    nov.pcs = np.zeros((12, n))
    nov.pcs[np.ix_([0, 4, 7], t < 5.0)] = 1 / 3   # C E G up to the bar line ...
    nov.pcs[np.ix_([5, 9, 0], t >= 5.0)] = 1 / 3  # ... then F A C
    picked = novelty.pick_changes(nov)
    assert len(picked) == 1 and abs(picked[0][0] / RATE - 5.0) <= 1 / RATE, picked
    nov.pcs = np.full((12, n), 1 / 12)
    assert abs(novelty.pick_changes(nov)[0][0] / RATE - 5.4) <= 1 / RATE
    assert abs(novelty.pick_changes(_novelty(curves))[0][0] / RATE - 5.4) <= 1 / RATE


def _passing_chord_clip() -> novelty.Novelty:
    """A beat every 0.5 s, a chord a bar (bar lines at 1, 3, 5, 7, 9 s), except that the bar from 5 s holds E minor
    for half a second and then F; a timbre curve flat and topped at 5.4 s, over its bar."""
    n = int(12 * RATE)
    t = np.arange(n) / RATE
    C, F, G, Em = (0, 4, 7), (5, 9, 0), (7, 11, 2), (4, 7, 11)
    curves = {g: np.zeros(n) for g in novelty.GROUPS}
    curves["timbre"] = novelty.SCALE["timbre"] * (1.3 - 0.05 * np.abs(t - 5.4)) * (np.abs(t - 5.2) < 1.5)
    nov = _novelty(curves)
    nov.pcs = _timed_chord_pitch_classes(n, [(0, C), (1, F), (3, G), (5, Em), (5.5, F), (7, C), (9, G), (11, C)])
    nov.onset = np.where(np.abs((t + 0.25) % 0.5 - 0.25) < 0.6 / RATE, 1.0, 0.1)  # an onset on every beat
    return nov


def test_a_timbre_change_is_placed_on_the_bar_line_not_on_a_passing_chord_under_its_curve():
    """The chord moves more at 5.5 s (E minor to F shares nothing) than on the bar line at 5 s (G to E minor shares
    two notes), and the timbre curve's flat top leaves the choice to the chords. The bar lines a whole number of
    bars before and after (:func:`novelty.bar_grid`) put the change on the one at 5 s."""
    nov = _passing_chord_clip()
    chords = novelty.chord_change(nov.pcs, RATE)
    assert chords[int(5.5 * RATE)] > chords[int(5.0 * RATE)] + 0.2
    grid = novelty.bar_grid(chords, nov.onset, int(5.4 * RATE), 0, len(chords), RATE)
    assert grid[int(5.0 * RATE)] > grid[int(5.5 * RATE)] + 0.2
    assert abs(novelty.pick_changes(nov)[0][0] / RATE - 5.0) <= 2 / RATE  # the curve still rises towards its top


def test_a_timbre_change_falls_to_the_passing_chord_without_the_bar_grid(monkeypatch):
    """The same music with the bar lines' weight at 0: the chord change alone places the change on the passing
    chord at 5.5 s (the grid, not something else, moved it in the test above)."""
    monkeypatch.setattr(novelty, "BAR_WEIGHT", 0.0)
    assert abs(novelty.pick_changes(_passing_chord_clip())[0][0] / RATE - 5.5) <= 2 / RATE


def test_the_level_of_the_mean_power_steps_at_a_step_and_not_along_a_crescendo():
    """A level climbing 12 dB over 5 s moves the mean power of two 2 s windows 4.8 dB apart, over the loudness
    bar; less the ramp that each window's halves show, the crescendo's kinks stay under 1 dB. A 10 dB step between
    two flat stretches keeps all of it, on its frame."""
    t = np.arange(int(15 * RATE)) / RATE
    half = int(round(2 * RATE))
    inner = slice(half, len(t) - half)
    ramp = 10 ** ((np.clip((t - 5) / 5, 0, 1) * 12 - 12) / 10)
    before, after = (np.log10(s[0]) * 10 for s in sides(ramp[None], half))
    assert (after - before)[inner].max() > novelty.SCALE["loudness"]
    assert novelty.power_step(ramp, half)[inner].max() < 1.0
    stepped = novelty.power_step(np.where(t < 7.5, 0.1, 1.0), half)
    assert stepped[inner].max() == pytest.approx(10.0, abs=1e-6)
    assert abs(t[inner][np.argmax(stepped[inner])] - 7.5) <= 1 / RATE


def test_a_tempo_change_is_placed_where_the_grids_meet_and_a_steady_grid_keeps_the_peak():
    """refine_tempo_change finds the onset where the old period stops and the new one starts; where several
    onsets fit the grids equally (a steady beat: each is as good as the next), the one nearest the peak wins,
    not the earliest in the span (which put tempo changes of the tune half a beat off)."""
    env = np.full(1000, 0.1)
    env[np.arange(500, 0, -20)] = 1.0   # a beat every 20 frames up to frame 500 ...
    env[np.arange(500, 1000, 14)] = 1.0  # ... then every 14: faster
    assert abs(novelty.refine_tempo_change(env, 510, RATE) - 500) <= 1  # onsets count a frame either side
    steady = np.full(1000, 0.1)
    steady[::20] = 1.0
    assert abs(novelty.refine_tempo_change(steady, 503, RATE) - 500) <= 1
    assert abs(novelty.refine_tempo_change(steady, 518, RATE) - 520) <= 1


def test_a_tempo_change_is_placed_where_the_chord_changes_when_the_onsets_fit_anywhere():
    """Where the onsets fit a grid equally well a beat either way (a steady beat), the place where the notes'
    pitch classes change (a chord on the bar line) wins over the nearest onset to the peak; without the notes the
    nearest onset still wins."""
    steady = np.full(1000, 0.1)
    steady[::20] = 1.0
    pcs = np.zeros((12, 1000))
    pcs[[0, 4, 7], :500] = 1 / 3   # C E G up to frame 500 ...
    pcs[[5, 9, 0], 500:] = 1 / 3   # ... then F A C
    assert abs(novelty.refine_tempo_change(steady, 518, RATE, chords=novelty.chord_change(pcs, RATE)) - 500) <= 1
    assert abs(novelty.refine_tempo_change(steady, 518, RATE) - 520) <= 1
    unmoved = novelty.chord_change(np.full((12, 1000), 1 / 12), RATE)
    assert abs(novelty.refine_tempo_change(steady, 518, RATE, chords=unmoved) - 520) <= 1


@pytest.mark.parametrize("before, after", [(18.4, 25.5), (20.5, 15.4)])
def test_a_beat_that_is_not_a_whole_number_of_frames_is_read_to_a_fraction_and_placed(before, after):
    """A beat of 18.4 frames (140 bpm) read as 18 lays the sixth beat of its grid 2.4 frames off, past an onset's
    width; the period is read to a fraction (parabola through the autocorrelation's top) and the change placed on
    its frame from anywhere in the span (with whole frames: 53 and 17 frames late from 0.5 and 0.23 s after)."""
    k = np.arange(1000)
    times = np.concatenate([500 - before * np.arange(27), 500 + after * np.arange(1, 20)])
    env = 0.1 + np.max([np.clip(1 - np.abs(k - t) / 1.5, 0, 1) for t in times], axis=0)  # onsets 3 frames wide
    for start in (480, 500, 510, 520, 530):
        assert abs(novelty.refine_tempo_change(env, start, RATE) - 500) <= 1
