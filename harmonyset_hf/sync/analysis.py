"""Signal-level synchronization: visual cuts vs musical changes, onsets and beats.

HarmonySet judges synchronization only through text: annotators mark up to three key timestamps
where the visuals turn and code each A (the music changes precisely in sync), B (near it, not
strongly) or C (no musical change there). This module measures the same thing on the signals:

* **cuts** -- hard cuts and gradual transitions, from small frames (a colour-histogram plus pixel
  difference between consecutive frames, against a local adaptive threshold);
* **music** -- onsets and beats (librosa), and *musical changes*: peaks of a change strength that compares
  the stretch before each instant with the one after it in loudness, drums (noise above 6 kHz), attacks,
  timbre (instrumentation), harmony (the key of the notes) and rhythm, each in units of its usual movement
  inside a section
  (:mod:`.novelty`); each change reports every group's value there;
* **alignment** -- cuts matched one-to-one to changes within ``tol_b`` (the offset of each pair),
  a predicted code per key timestamp (nearest change within ``tol_a`` -> A, within ``tol_b`` -> B,
  else C) and a score in [0, 1] (see :func:`credit`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import HarmonySetError
from ..media import load_frames_at_fps
from .novelty import novelty_curves, pick_changes


class SyncError(HarmonySetError, ValueError):
    """A clip whose sync cannot be measured (no audio track, too short); unreadable files raise media.MediaError."""


@dataclass(frozen=True)
class SyncParams:
    """Every knob of the analysis; change bars chosen on the General MIDI set's tune half (docs/sync.md)."""

    fps: float = 15.0            # frames analysed per second (all frames when the video has fewer)
    max_side: int = 64           # frames are shrunk to this longer side before differencing
    cut_threshold: float = 0.12  # minimum frame difference (0-1) of a hard cut
    cut_ratio: float = 3.0       # ... and at least this many times the local median difference
    fade_seconds: float = 0.5    # half-span of the before/after comparison that finds gradual transitions
    fade_threshold: float = 0.25
    min_shot: float = 0.4        # two cuts closer than this are one
    sample_rate: int = 22050
    hop: int = 512               # audio hop (23 ms)
    change_threshold: float = 1.0  # minimum change strength (novelty.strength, 1 = each group's bar)
    min_change_gap: float = 2.5  # of changes closer than this, the one most groups agree on stands for all
    tol_a: float = 0.35          # |cut - change| <= tol_a -> code A
    tol_b: float = 1.8           # ... <= tol_b -> code B, else C
    beat_tolerance: float = 0.1  # a cut "on the beat" is this close to one


@dataclass
class Cut:
    """A visual turn: a hard cut or a gradual transition (its centre), with its strength (0-1)."""

    time: float
    strength: float
    kind: str = "cut"


@dataclass
class MusicChange:
    """A musical change (a novelty peak) and how much each feature group moved there."""

    time: float
    strength: float
    groups: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The group that moved most, in units of its typical movement inside a section (see sync.novelty)."""
        return max(self.groups, key=self.groups.get) if self.groups else "change"


@dataclass
class Match:
    """A cut paired with a musical change; ``offset`` = change - cut (positive: music comes later)."""

    cut: float
    change: float
    offset: float
    code: str


@dataclass
class KeyPoint:
    """A key timestamp with its predicted code and the nearest musical change."""

    time: float
    code: str
    nearest_change: float | None
    offset: float | None
    human: str | None = None


@dataclass
class SyncAnalysis:
    """What :func:`analyze` measured on one clip."""

    duration: float
    cuts: list[Cut]
    music_changes: list[MusicChange]
    onsets: list[float]
    beats: list[float]
    tempo_bpm: float
    matches: list[Match]
    key_points: list[KeyPoint]   # the given key times, or every detected cut when none were given
    score: float | None          # mean credit over detected cuts (None: no cut)
    key_score: float | None      # mean credit over the key timestamps (None: none given)
    beat_hit_rate: float | None  # share of cuts within beat_tolerance of a beat
    beat_hit_chance: float | None  # the same share expected of cuts placed at random
    params: SyncParams
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        """The predicted code of each key point, in time order."""
        return [k.code for k in self.key_points]

    @property
    def music_events(self) -> list[dict[str, Any]]:
        """Every musical event in time order: changes, onsets and beats as ``{time, kind}``."""
        events = [{"time": c.time, "kind": "change", "strength": c.strength} for c in self.music_changes]
        events += [{"time": t, "kind": "onset"} for t in self.onsets]
        events += [{"time": t, "kind": "beat"} for t in self.beats]
        return sorted(events, key=lambda e: e["time"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times in seconds, rounded to the millisecond)."""
        def r(x):
            return None if x is None else round(float(x), 3)

        return {
            "duration": r(self.duration), "score": r(self.score), "key_score": r(self.key_score),
            "codes": self.codes,
            "key_points": [{"time": r(k.time), "code": k.code, "nearest_change": r(k.nearest_change),
                            "offset": r(k.offset), **({"human": k.human} if k.human else {})}
                           for k in self.key_points],
            "cuts": [{"time": r(c.time), "strength": r(c.strength), "kind": c.kind} for c in self.cuts],
            "music_changes": [{"time": r(c.time), "strength": r(c.strength), "kind": c.kind,
                               "groups": {g: r(v) for g, v in c.groups.items()}} for c in self.music_changes],
            "matches": [{"cut": r(m.cut), "change": r(m.change), "offset": r(m.offset), "code": m.code}
                        for m in self.matches],
            "tempo_bpm": r(self.tempo_bpm), "beats": [r(t) for t in self.beats], "onsets": [r(t) for t in self.onsets],
            "beat_hit_rate": r(self.beat_hit_rate), "beat_hit_chance": r(self.beat_hit_chance),
            "params": asdict(self.params), "timings": {k: r(v) for k, v in self.timings.items()},
        }


# --------------------------------------------------------------------------------------------
# Decoding (harmonyset_hf.media: PyAV, one pass over both streams)
# --------------------------------------------------------------------------------------------
@dataclass
class _Media:
    frames: np.ndarray      # (n, h, w, 3) uint8, small
    times: np.ndarray       # (n,) seconds
    frame_dt: float         # native frame interval
    audio: np.ndarray       # (m,) float32 mono, taken to start with the video (time 0)
    sample_rate: int
    duration: float


def _decode(source: Any, params: SyncParams) -> _Media:
    """Small RGB frames at about ``params.fps`` (each video frame once) and mono audio, via :mod:`.media`."""
    clip = load_frames_at_fps(source, fps=params.fps, max_side=params.max_side, audio_mode="full",
                              sample_rate=params.sample_rate)
    name = clip.source
    if not clip.has_audio or clip.audio is None:
        raise SyncError(f"{name}: no audio stream (nothing to sync the cuts with)")
    # The grid repeats a frame when the video has fewer frames per second than asked: keep each once.
    _, first = np.unique(clip.frame_indices, return_index=True)
    frames, times = clip.frames[first], clip.frame_times[first]
    if len(frames) < 2:
        raise SyncError(f"{name}: fewer than 2 video frames")
    if clip.audio.size < params.sample_rate // 2:
        raise SyncError(f"{name}: less than half a second of audio")
    frame_dt = 1.0 / clip.fps if clip.fps else float(np.median(np.diff(times)))
    duration = clip.duration or max(times[-1] + frame_dt, clip.audio.size / params.sample_rate)
    # The audio is taken to start with the video (true of the files HarmonySet and most encoders write).
    return _Media(frames, np.asarray(times, dtype=np.float64), frame_dt, clip.audio.astype(np.float32),
                  params.sample_rate, float(duration))


# --------------------------------------------------------------------------------------------
# Cuts
# --------------------------------------------------------------------------------------------
def _frame_distance(a: np.ndarray, b: np.ndarray, bins: int = 16) -> np.ndarray:
    """Distance in [0, 1] between frame stacks: mean of pixel difference and colour-histogram difference."""
    pix = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=(1, 2, 3)) / 255.0
    n = a.shape[1] * a.shape[2]
    rows = np.arange(len(a))[:, None] * bins
    hist = np.zeros(len(a))
    for c in range(3):
        ha = np.bincount((a[..., c].reshape(len(a), -1) // (256 // bins) + rows).ravel(), minlength=len(a) * bins)
        hb = np.bincount((b[..., c].reshape(len(b), -1) // (256 // bins) + rows).ravel(), minlength=len(b) * bins)
        hist += np.abs(ha - hb).reshape(len(a), bins).sum(axis=1) / (2 * n)
    return 0.5 * (np.minimum(1.0, 3 * pix) + hist / 3)


def _local_median(x: np.ndarray, half: int) -> np.ndarray:
    """The median of each point's neighbourhood (±half), the point itself left out."""
    out = np.empty_like(x)
    for i in range(len(x)):
        window = np.concatenate([x[max(0, i - half):i], x[i + 1:i + half + 1]])
        out[i] = np.median(window) if window.size else 0.0
    return out


def detect_cuts(frames: np.ndarray, times: np.ndarray, frame_dt: float, params: SyncParams = SyncParams()) -> list[Cut]:
    """Hard cuts and gradual transitions in small RGB frames sampled at ``times``."""
    if len(frames) < 2:
        return []
    step = float(np.median(np.diff(times)))
    d1 = _frame_distance(frames[1:], frames[:-1])
    base = _local_median(d1, max(2, int(round(1.0 / step))))
    cuts: list[Cut] = []
    for i in range(len(d1)):
        left = d1[i - 1] if i else 0.0
        right = d1[i + 1] if i + 1 < len(d1) else 0.0
        if d1[i] >= params.cut_threshold and d1[i] >= params.cut_ratio * base[i] and d1[i] >= max(left, right):
            # The cut lies between frames i and i+1: exactly at frame i+1 when no frame was skipped.
            t = times[i + 1] - max(0.0, times[i + 1] - times[i] - frame_dt) / 2
            cuts.append(Cut(float(t), float(d1[i]), "cut"))
    # Gradual transitions: frames half a span apart differ a lot, the frame-to-frame steps do not.
    k = max(2, int(round(params.fade_seconds / step)))
    if len(frames) > 2 * k:
        dk = _frame_distance(frames[2 * k:], frames[:-2 * k])  # dk[j] compares j and j + 2k, centre j + k
        base_k = _local_median(dk, max(2 * k, int(round(2.0 / step))))
        above = (dk >= params.fade_threshold) & (dk >= params.cut_ratio * base_k)
        j = 0
        while j < len(dk):  # each run of high span differences is one transition, placed at the run's top
            if not above[j]:
                j += 1
                continue
            end = j
            while end + 1 < len(dk) and above[end + 1]:
                end += 1
            run = np.arange(j, end + 1)
            top = run[dk[run] >= 0.9 * dk[run].max()]
            t = float(np.mean(times[top + k]))
            j = end + 1
            if any(abs(c.time - t) <= params.fade_seconds + step for c in cuts if c.kind == "cut"):
                continue  # the span difference of a hard cut
            cuts.append(Cut(t, float(dk[run].max()), "transition"))
    cuts.sort(key=lambda c: c.time)
    merged: list[Cut] = []
    for c in cuts:  # one cut per min_shot: keep the stronger
        if merged and c.time - merged[-1].time < params.min_shot:
            if c.strength > merged[-1].strength:
                merged[-1] = c
            continue
        merged.append(c)
    return merged


# --------------------------------------------------------------------------------------------
# Music
# --------------------------------------------------------------------------------------------
def detect_music(audio: np.ndarray, sample_rate: int, params: SyncParams = SyncParams(), start: float = 0.0
                 ) -> tuple[list[MusicChange], list[float], list[float], float]:
    """Musical changes, onsets, beats and tempo (BPM) of mono ``audio`` that starts at time ``start``."""
    import librosa

    y = audio.astype(np.float32)
    hop, rate = params.hop, sample_rate / params.hop
    nov = novelty_curves(y, sample_rate, hop)
    env = nov.onset
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=hop, units="time")
    tempo, beats = librosa.beat.beat_track(onset_envelope=env, sr=sample_rate, hop_length=hop, units="time")
    changes = [MusicChange(float(start + frame / rate), strength, groups)
               for frame, strength, groups in pick_changes(nov, params.change_threshold, params.min_change_gap)]
    return (changes, [start + float(t) for t in onsets], [start + float(t) for t in beats],
            float(np.atleast_1d(tempo)[0]))


def warm_up(params: SyncParams = SyncParams()) -> None:
    """Compile librosa's numba functions in this process, so that worker processes only read numba's cache.

    numba's on-disk cache is not safe when several processes compile the same functions at once:
    workers doing so on a cold cache corrupted it, and librosa then segfaulted (numba 0.68.1).
    """
    noise = 0.1 * np.random.default_rng(0).standard_normal(params.sample_rate * 8)
    detect_music(noise.astype(np.float32), params.sample_rate, params)


# --------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------
def code_for(distance: float | None, params: SyncParams = SyncParams()) -> str:
    """The A/B/C code of a visual turn whose nearest musical change is ``distance`` seconds away."""
    if distance is None or distance > params.tol_b:
        return "C"
    return "A" if distance <= params.tol_a else "B"


def credit(distance: float | None, params: SyncParams = SyncParams()) -> float:
    """Credit of one visual turn: 1 within tol_a of a change, falling linearly to 0 at tol_b."""
    if distance is None or distance >= params.tol_b:
        return 0.0
    if distance <= params.tol_a:
        return 1.0
    return (params.tol_b - distance) / (params.tol_b - params.tol_a)


def _nearest(t: float, times: np.ndarray) -> float | None:
    return float(times[np.argmin(np.abs(times - t))]) if times.size else None


def match_events(cuts: list[float], changes: list[float], tolerance: float) -> list[tuple[float, float]]:
    """One-to-one pairs (cut, change) within ``tolerance``, closest pairs first."""
    pairs = sorted((abs(c - m), c, m) for c in cuts for m in changes if abs(c - m) <= tolerance)
    used_c, used_m, out = set(), set(), []
    for _, c, m in pairs:
        if c not in used_c and m not in used_m:
            used_c.add(c)
            used_m.add(m)
            out.append((c, m))
    return sorted(out)


def align(cuts: list[Cut], changes: list[MusicChange], beats: list[float], key_times: list[float] | None,
          params: SyncParams = SyncParams(), human_codes: list[str] | None = None
          ) -> tuple[list[Match], list[KeyPoint], float | None, float | None, float | None, float | None]:
    """Matches, key points with codes, cut score, key score, beat hit rate and its chance level."""
    change_t = np.array([c.time for c in changes])
    cut_t = [c.time for c in cuts]
    matches = []
    for c, m in match_events(cut_t, list(change_t), params.tol_b):
        matches.append(Match(c, m, m - c, code_for(abs(m - c), params)))

    def dist(t: float) -> float | None:
        n = _nearest(t, change_t)
        return None if n is None else abs(n - t)

    score = float(np.mean([credit(dist(t), params) for t in cut_t])) if cut_t else None
    key_points = []
    for i, t in enumerate(key_times if key_times is not None else cut_t):  # no key times given: every cut
        n = _nearest(t, change_t)
        human = human_codes[i] if human_codes and i < len(human_codes) else None
        key_points.append(KeyPoint(float(t), code_for(dist(t), params), n, None if n is None else n - t, human))
    key_score = float(np.mean([credit(dist(k.time), params) for k in key_points])) if key_times else None
    hit = chance = None
    beat_t = np.asarray(beats)
    if cut_t and beat_t.size >= 2:
        hit = float(np.mean([abs(_nearest(t, beat_t) - t) <= params.beat_tolerance for t in cut_t]))
        chance = float(min(1.0, 2 * params.beat_tolerance / np.median(np.diff(beat_t))))
    return matches, key_points, score, key_score, hit, chance


def analyze(source: Any, key_times: list[float] | None = None, params: SyncParams | None = None,
            human_codes: list[str] | None = None, **overrides: Any) -> SyncAnalysis:
    """Measure cuts, musical events and their alignment in a video (path, bytes or datasets value)."""
    params = replace(params or SyncParams(), **overrides)
    timings = {}
    t0 = time.perf_counter()
    media = _decode(source, params)
    timings["decode_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    cuts = detect_cuts(media.frames, media.times, media.frame_dt, params)
    timings["cuts_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    changes, onsets, beats, tempo = detect_music(media.audio, media.sample_rate, params)
    timings["music_s"] = time.perf_counter() - t1
    matches, key_points, score, key_score, hit, chance = align(cuts, changes, beats, key_times, params, human_codes)
    timings["total_s"] = time.perf_counter() - t0
    return SyncAnalysis(media.duration, cuts, changes, onsets, beats, tempo, matches, key_points, score, key_score,
                        hit, chance, params, timings)
