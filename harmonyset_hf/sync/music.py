"""An evaluation set for musical-change detection made apart from HarmonySet-mini: General MIDI music, FluidSynth.

Each clip is planned as bars of 4/4 music (chords, bass, a melody, drums) in sections. A section change
lands on a downbeat and is of one kind -- tempo up/down, key or mode, instrumentation (timbre), dynamics
up/down, drums out/in -- or several at once (``combined``). Control clips hold what must not count as a
change: a crescendo, a drum fill (often closed by a crash), a steady groove. The plan is written as MIDI
(``mido``) and rendered by FluidSynth with a General MIDI soundfont (Debian's ``fluidsynth`` and
``timgm6mb-soundfont``, see scripts/ensure_fluidsynth.sh), so none of it comes from the project's own
synthesiser. A clip also gets a video of flat-coloured shots with hard cuts placed on a change (truth A),
0.75-1.45 s from one (B) or more than 2.5 s from every change (C), muxed with the audio into an mp4.

The set has two halves drawn from the same design with different seeds: ``tune`` (to choose the
detector's thresholds on) and ``heldout`` (to report on).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HarmonySetError
from ..io import atomic_write_bytes

CHANGE_KINDS = ("tempo_up", "tempo_down", "key", "timbre", "louder", "quieter", "drums_out", "drums_in", "combined")
CONTROL_KINDS = ("crescendo", "fill", "steady")
HALVES = ("tune", "heldout")
SAMPLE_RATE = 22050
FPS, WIDTH, HEIGHT = 15, 96, 64
B_OFFSET = (0.75, 1.45)   # a "near" cut is this far from a change
AWAY = 2.6                # a "C" cut is at least this far from every change (> 2.5 s)
SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/default.sf2")
# Scale degrees (0-based) of the chord roots of common progressions; triads are built on the mode's scale.
PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 5, 3, 4), (0, 3, 0, 4))
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# General MIDI programs grouped into families that sound clearly different from each other.
FAMILIES = {
    "piano": (0, 1, 4), "organ": (16, 17, 19), "guitar": (24, 25, 27), "strings": (48, 49, 50),
    "brass": (61, 62, 56), "reed": (65, 66, 71), "synth": (80, 81, 90), "mallet": (11, 12, 8),
}
BASSES = (32, 33, 34, 38)
# Drum grooves on a 16-step bar: GM notes 36 kick, 38 snare, 42 closed hat, 46 open hat, 51 ride.
GROOVES = {
    "rock": {36: (0, 8, 10), 38: (4, 12), 42: (0, 2, 4, 6, 8, 10, 12, 14)},
    "disco": {36: (0, 4, 8, 12), 38: (4, 12), 42: (0, 4, 8, 12), 46: (2, 6, 10, 14)},
    "halftime": {36: (0, 6, 10), 38: (8,), 42: (0, 2, 4, 6, 8, 10, 12, 14)},
    "funk": {36: (0, 3, 10), 38: (4, 12), 42: tuple(range(16))},
    "ride": {36: (0, 7, 10), 38: (4, 12), 51: (0, 4, 6, 8, 12, 14)},
}
TOMS = (50, 48, 47, 45, 43, 41)
CRASH = 49
# Bumped whenever the music a plan renders to changes (rendered clips are cached under a name holding it).
GENERATOR_VERSION = 2
TICKS = 960  # ticks per second: MIDI written at a constant 120 bpm (480 ticks a beat), tempo lives in the timing


class SyncMusicError(HarmonySetError):
    """The evaluation music cannot be made (no FluidSynth or soundfont, a failed render, a bad argument)."""


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def _section(rng: random.Random, drums: bool | None = None) -> dict[str, Any]:
    """A random opening section."""
    family = rng.choice(sorted(FAMILIES))
    lead = rng.choice([f for f in sorted(FAMILIES) if f != family])
    return {"tempo_bpm": rng.randrange(84, 141, 2), "key_pc": rng.randrange(12), "mode": rng.choice(["major", "minor"]),
            "progression": rng.randrange(len(PROGRESSIONS)), "families": [family, lead],
            "programs": [rng.choice(FAMILIES[family]), rng.choice(FAMILIES[lead]), rng.choice(BASSES)],
            "level_db": rng.uniform(-4.0, 0.0), "drums": rng.random() < 0.75 if drums is None else drums,
            "groove": rng.choice(sorted(GROOVES)), "comp": rng.choice(["sustain", "halves", "eighths"])}


def _changed(prev: dict[str, Any], kinds: list[str], rng: random.Random) -> dict[str, Any]:
    """The section that follows ``prev`` with the changes ``kinds`` (everything else carries on)."""
    sec = {**prev, "families": list(prev["families"]), "programs": list(prev["programs"])}
    for kind in kinds:
        if kind in ("tempo_up", "tempo_down"):
            ratio = rng.uniform(1.22, 1.4)
            sec["tempo_bpm"] = round(prev["tempo_bpm"] * (ratio if kind == "tempo_up" else 1 / ratio), 1)
        elif kind == "key":
            if rng.random() < 0.35:  # the parallel mode
                sec["mode"] = "minor" if prev["mode"] == "major" else "major"
            else:  # a modulation that brings in new pitch classes (not to a neighbour on the circle of fifths)
                sec["key_pc"] = (prev["key_pc"] + rng.choice([1, 2, 3, 4, -1, -2, -3, -4])) % 12
        elif kind == "timbre":
            fams = [f for f in sorted(FAMILIES) if f not in prev["families"]]
            sec["families"] = rng.sample(fams, 2)
            sec["programs"] = [rng.choice(FAMILIES[sec["families"][0]]), rng.choice(FAMILIES[sec["families"][1]]),
                               rng.choice([b for b in BASSES if b != prev["programs"][2]])]
        elif kind in ("louder", "quieter"):
            step = rng.uniform(8.0, 12.0)
            sec["level_db"] = prev["level_db"] + (step if kind == "louder" else -step)
        elif kind == "drums_out":
            sec["drums"] = False
        elif kind == "drums_in":
            sec["drums"] = True
            sec["groove"] = rng.choice(sorted(GROOVES))
    return sec


def _opening_for(kinds: list[str], rng: random.Random) -> dict[str, Any]:
    """An opening section from which every change in ``kinds`` is possible (drums on for drums_out, ...)."""
    sec = _section(rng, drums=True if "drums_out" in kinds else False if "drums_in" in kinds else None)
    if "louder" in kinds:
        sec["level_db"] = rng.uniform(-13.0, -9.0)
    if "tempo_up" in kinds:
        sec["tempo_bpm"] = rng.randrange(84, 111, 2)
    if "tempo_down" in kinds:
        sec["tempo_bpm"] = rng.randrange(118, 151, 2)
    return sec


def _bars_until(start: float, tempo: float, seconds: float) -> int:
    """Whole bars of ``tempo`` that last at least ``seconds`` from ``start``."""
    return max(1, int(np.ceil(seconds / (240.0 / tempo) - 1e-9)))


FAMILY = {"tempo_up": "tempo", "tempo_down": "tempo", "key": "key", "timbre": "timbre", "louder": "dynamics",
          "quieter": "dynamics", "drums_out": "drums", "drums_in": "drums"}
# Families whose second change depends on the first (drums cannot go out twice): one change per clip each.
STATEFUL = ("tempo", "dynamics", "drums")


def _expand(kind: str, taken: set[str], rng: random.Random) -> list[str]:
    """The atomic changes of a change ``kind``: itself, or for ``combined`` 2-3 of families not in ``taken``."""
    if kind != "combined":
        return [kind]
    fams = [f for f in ("tempo", "key", "timbre", "dynamics", "drums") if f not in taken]
    chosen = rng.sample(fams, min(len(fams), rng.choice([2, 2, 3])))
    return [rng.choice([k for k, f in FAMILY.items() if f == fam]) for fam in chosen]


def compatible(first: str, second: str) -> bool:
    """Whether a clip can hold a change of kind ``first`` followed by one of kind ``second``."""
    if "combined" in (first, second):
        return True
    return FAMILY[first] != FAMILY[second] or FAMILY[first] not in STATEFUL


def plan_clip(clip_id: str, half: str, kind: str, index: int) -> dict[str, Any]:
    """The planned truth of one clip (a pure function of its arguments): sections, changes, controls and cuts.

    ``kind`` is ``"change:<k1>+<k2>"`` (two successive changes of those kinds) or a control kind.
    """
    rng = random.Random(f"sync-music:{half}:{index}:{kind}")
    sections: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    if kind.startswith("change:"):
        kinds = kind.split(":", 1)[1].split("+")
        if len(kinds) != 2 or not all(k in CHANGE_KINDS for k in kinds) or not compatible(*kinds):
            raise SyncMusicError(f"{clip_id}: cannot plan changes {kind!r}")
        # Atomic kinds first, so that a combined change takes its families from those left.
        parts: list[list[str]] = [[], []]
        for i in sorted(range(2), key=lambda i: kinds[i] == "combined"):
            taken = {FAMILY[k] for k in parts[1 - i] if FAMILY[k] in STATEFUL} if kinds[i] == "combined" else set()
            parts[i] = _expand(kinds[i], taken, rng)
        sec = _opening_for(parts[0] + [k for k in parts[1] if FAMILY[k] not in {FAMILY[j] for j in parts[0]}], rng)
        t = 0.0
        gaps = [rng.uniform(4.0, 6.5), rng.uniform(4.8, 7.0), rng.uniform(3.8, 5.5)]
        for i, gap in enumerate(gaps):
            bars = _bars_until(t, sec["tempo_bpm"], gap)
            sections.append({**sec, "start": round(t, 4), "bars": bars})
            t += bars * 240.0 / sec["tempo_bpm"]
            if i < len(parts):
                changes.append({"time": round(t, 4), "kind": kinds[i], "parts": parts[i]})
                sec = _changed(sec, parts[i], rng)
    elif kind in CONTROL_KINDS:
        sec = _section(rng, drums=True if kind == "fill" else None)
        bars = _bars_until(0.0, sec["tempo_bpm"], rng.uniform(15.0, 18.0))
        sections.append({**sec, "start": 0.0, "bars": bars})
        bar = 240.0 / sec["tempo_bpm"]
        if kind == "fill":  # a fill before a downbeat 5-9 s in (and another 2-4 bars later when there is room)
            first = _bars_until(0.0, sec["tempo_bpm"], rng.uniform(5.0, 9.0))
            for b in (first, first + rng.choice([2, 4])):
                if b * bar <= bars * bar - 3.5:
                    controls.append({"time": round(b * bar, 4), "kind": "fill", "beats": rng.choice([1, 2, 4]),
                                     "crash": rng.random() < 0.6})
        elif kind == "crescendo":  # 4-7 s from about -12 dB to the section's level, then steady
            start = rng.uniform(3.5, 6.0)
            controls.append({"time": round(start, 4), "kind": "crescendo", "seconds": round(rng.uniform(4.0, 7.0), 3),
                             "from_db": round(-rng.uniform(9.0, 13.0), 2)})
        else:
            controls.append({"time": round(rng.uniform(5.0, bars * bar - 5.0), 4), "kind": "steady"})
    else:
        raise SyncMusicError(f"{clip_id}: unknown clip kind {kind!r}")
    last = sections[-1]
    duration = round(last["start"] + last["bars"] * 240.0 / last["tempo_bpm"], 4)
    for s, e in zip(sections, sections[1:] + [None]):
        s["end"] = e["start"] if e else duration
    cuts = _plan_cuts([c["time"] for c in changes], controls, duration, rng)
    return {"id": clip_id, "half": half, "kind": kind, "duration": duration, "sections": sections,
            "changes": changes, "controls": controls, "cuts": cuts, "seed": index}


def control_time(control: dict[str, Any]) -> float:
    """The moment a control stands for, where a cut on it is planted: a fill's downbeat, a crescendo's middle."""
    return control["time"] + control.get("seconds", 0.0) / 2


def _plan_cuts(changes: list[float], controls: list[dict[str, Any]], duration: float, rng: random.Random
               ) -> list[dict[str, Any]]:
    """Cuts with their true codes: one on a change (A), one near a change (B), one away from every change (C)."""
    cuts: list[dict[str, Any]] = []
    if changes:
        on = rng.randrange(len(changes))
        cuts.append({"time": round(changes[on], 3), "code": "A"})
        near = changes[1 - on] if len(changes) > 1 else changes[on]
        for _ in range(50):  # either side, but inside the clip and a shot away from the A cut
            t = round(near + rng.choice([-1, 1]) * rng.uniform(*B_OFFSET), 3)
            if 1.0 < t < duration - 1.0 and all(abs(t - c["time"]) > 1.0 for c in cuts):
                cuts.append({"time": t, "code": "B"})
                break
    else:  # controls: a cut on each control moment (the music must not count it) and one more
        cuts += [{"time": round(control_time(c), 3), "code": "C"} for c in controls]
    spans = [(1.5, duration - 1.5)]
    for c in changes:
        spans = [s for a, b in spans for s in ((a, min(b, c - AWAY)), (max(a, c + AWAY), b)) if s[1] - s[0] > 0.2]
    if spans:
        a, b = rng.choice(spans)
        for _ in range(50):
            t = round(rng.uniform(a, b), 3)
            if all(abs(t - c["time"]) > 1.0 for c in cuts):
                cuts.append({"time": t, "code": "C"})
                break
    return sorted(cuts, key=lambda c: c["time"])


def set_name(half: str, draw: int = 0) -> str:
    """The name of a draw of ``half`` (its clip ids and cache folder): the half itself, or ``<half>-d<draw>``."""
    return f"{half}-d{draw}" if draw else half


def plan_set(half: str, per_kind: int = 12, controls_per_kind: int = 6, draw: int = 0) -> list[dict[str, Any]]:
    """Every clip of one half: change clips (two changes each, every kind ``per_kind`` times) and control clips.

    ``draw`` > 0 gives another draw of the same design under other seeds (ids ``<half>-d<draw>-NNN``): once a
    half's figures have been looked at, a new draw is music that no choice has yet been made on.
    """
    if half not in HALVES:
        raise SyncMusicError(f"unknown half {half!r}; expected one of {', '.join(HALVES)}")
    if draw < 0:
        raise SyncMusicError(f"draw must be 0 or more, got {draw}")
    name = set_name(half, draw)
    kinds = [k for _ in range(per_kind) for k in CHANGE_KINDS]
    order = random.Random(f"sync-music:{name}:order")
    while True:  # a shuffle whose successive pairs all fit in one clip
        order.shuffle(kinds)
        if all(compatible(kinds[i], kinds[i + 1]) for i in range(0, len(kinds) - 1, 2)):
            break
    plans = []
    for i in range(0, len(kinds) - 1, 2):
        plans.append(plan_clip(f"{name}-{len(plans):03d}", name, f"change:{kinds[i]}+{kinds[i + 1]}", len(plans)))
    if len(kinds) % 2:
        plans.append(plan_clip(f"{name}-{len(plans):03d}", name, f"change:{kinds[-1]}+{kinds[0]}", len(plans)))
    for c in CONTROL_KINDS:
        for _ in range(controls_per_kind):
            plans.append(plan_clip(f"{name}-{len(plans):03d}", name, c, len(plans)))
    return plans


# --------------------------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------------------------
def _triad(sec: dict[str, Any], degree: int) -> list[int]:
    """MIDI notes of the triad on ``degree`` of the section's scale, rooted near C4."""
    scale = SCALES[sec["mode"]]
    notes = [sec["key_pc"] + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
    return [n + 60 if n < 7 else n + 48 for n in notes]


def _velocity(level_db: float, accent: float = 0.0) -> int:
    """A note velocity for a level in dB below full (GM: level ~ 40 log10(velocity / 127))."""
    return int(np.clip(round(127 * 10 ** ((level_db + accent) / 40)), 12, 127))


def _events(plan: dict[str, Any]) -> list[tuple[float, int, list[int]]]:
    """(seconds, order, MIDI bytes) of the whole clip; ``order`` puts note-offs and program changes first."""
    rng = random.Random(f"sync-music:notes:{plan['id']}:{plan['seed']}")
    ev: list[tuple[float, int, list[int]]] = []

    def note(t: float, dur: float, ch: int, pitch: int, vel: int) -> None:
        ev.append((t, 2, [0x90 | ch, pitch, vel]))
        ev.append((t + dur, 0, [0x80 | ch, pitch, 0]))

    fills = {round(c["time"], 4): c for c in plan["controls"] if c["kind"] == "fill"}
    cresc = next((c for c in plan["controls"] if c["kind"] == "crescendo"), None)
    for s_index, sec in enumerate(plan["sections"]):
        for ch, prog in enumerate(sec["programs"]):
            ev.append((sec["start"], 1, [0xC0 | ch, prog]))
        beat = 60.0 / sec["tempo_bpm"]
        prog = PROGRESSIONS[sec["progression"]]
        scale = SCALES[sec["mode"]]
        crash_next = s_index > 0 and sec["drums"] and rng.random() < 0.5  # sections often open with a crash
        for b in range(sec["bars"]):
            t0 = sec["start"] + 4 * beat * b

            def level(t: float, base: float = sec["level_db"]) -> float:  # shaped by a crescendo when there is one
                if cresc is None or t >= cresc["time"] + cresc["seconds"]:
                    return base
                w = max(0.0, (t - cresc["time"]) / cresc["seconds"])
                return base + cresc["from_db"] * (1 - w)

            chord = _triad(sec, prog[b % len(prog)])
            if sec["comp"] == "sustain":
                hits = [(0.0, 4.0)]
            elif sec["comp"] == "halves":
                hits = [(0.0, 2.0), (2.0, 2.0)]
            else:
                hits = [(k * 0.5, 0.45) for k in range(8)]
            for k, (on, dur) in enumerate(hits):
                t = t0 + on * beat
                pitches = chord if sec["comp"] != "eighths" else [chord[k % 3], chord[k % 3] + 12]
                for p in pitches:
                    note(t, dur * beat * 0.95, 0, p, _velocity(level(t), rng.uniform(-3, 0) - 4))
            root = chord[0] - 24 if chord[0] - 24 >= 36 else chord[0] - 12
            for on in (0.0, 1.5, 2.0, 3.0) if sec["groove"] in ("funk", "ride") else (0.0, 2.0, 3.0):
                t = t0 + on * beat
                note(t, 0.9 * beat, 2, root, _velocity(level(t), -2))
            # A melody on the scale, from a chord tone, stepping up and down in eighths and quarters.
            pos = 0.0
            pitch = chord[rng.randrange(3)] + 12
            while pos < 4.0:
                dur = rng.choice([0.5, 0.5, 1.0, 1.0, 1.5])
                if rng.random() > 0.15:  # a rest now and then
                    t = t0 + pos * beat
                    note(t, min(dur, 4.0 - pos) * beat * 0.9, 1, pitch, _velocity(level(t), -1))
                pc = (pitch - sec["key_pc"]) % 12
                idx = min(range(7), key=lambda i: abs(scale[i] - pc))
                step = rng.choice([-2, -1, -1, 1, 1, 2])
                idx2 = idx + step
                pitch = pitch - scale[idx] % 12 + scale[idx2 % 7] + 12 * (idx2 // 7) - (pc - scale[idx])
                while pitch > 86:  # by octaves, so the melody stays in the key (clipping put G or D in any key)
                    pitch -= 12
                while pitch < 67:
                    pitch += 12
                pos += dur
            if not sec["drums"]:
                continue
            end = t0 + 4 * beat
            fill = fills.get(round(end, 4)) or next((f for ft, f in fills.items() if abs(ft - end) < 1e-3), None)
            fill_from = 16 - 4 * fill["beats"] if fill else 16
            groove = GROOVES[sec["groove"]]
            for step in range(16):
                t = t0 + step * beat / 4
                if step >= fill_from:  # the fill: toms falling in sixteenths, a snare to close
                    k = (step - fill_from) * len(TOMS) // (16 - fill_from)
                    note(t, beat / 4, 9, TOMS[k] if step < 15 else 38, _velocity(level(t), rng.uniform(-2, 2)))
                    continue
                for drum, steps in groove.items():
                    if step in steps:
                        acc = 0.0 if drum in (36, 38) else -6.0 + (2.0 if step % 4 == 0 else 0.0)
                        note(t, beat / 4, 9, drum, _velocity(level(t), acc + rng.uniform(-2, 1)))
            if (b == 0 and crash_next) or (fills.get(round(t0, 4)) or {}).get("crash"):
                note(t0, beat, 9, CRASH, _velocity(level(t0), 1.0))
    return ev


def write_events(events: list[tuple[float, int, list[int]]], path: str | os.PathLike) -> Path:
    """A type-0 MIDI file of (seconds, order, MIDI bytes) events (constant 120 bpm: tempo lives in the timing)."""
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS // 2)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    last = 0
    for t, _, data in sorted(events, key=lambda e: (e[0], e[1])):
        tick = int(round(t * TICKS))
        track.append(mido.Message.from_bytes(data, time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=int(TICKS * 0.5)))
    path = Path(path)
    mid.save(str(path))
    return path


def write_midi(plan: dict[str, Any], path: str | os.PathLike) -> Path:
    """The clip's MIDI file (:func:`write_events` of its notes, drums and program changes)."""
    return write_events(_events(plan), path)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def find_soundfont() -> Path:
    """The General MIDI soundfont to render with: $HARMONYSET_SOUNDFONT, else one of Debian's."""
    env = os.environ.get("HARMONYSET_SOUNDFONT")
    for cand in ([env] if env else []) + list(SOUNDFONTS):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise SyncMusicError("no General MIDI soundfont found (install Debian's timgm6mb-soundfont, "
                         "run scripts/ensure_fluidsynth.sh, or set HARMONYSET_SOUNDFONT)")


def render_midi(midi: str | os.PathLike, name: str, sample_rate: int = SAMPLE_RATE, timeout: float = 120.0,
                soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """Mono float32 audio of a MIDI file, rendered by FluidSynth (``name`` labels errors) with ``soundfont``
    (default :func:`find_soundfont`, the evaluation set's)."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise SyncMusicError("fluidsynth is not installed (run scripts/ensure_fluidsynth.sh, "
                             "or apt-get install fluidsynth)")
    font = Path(soundfont) if soundfont is not None else find_soundfont()
    if not font.is_file():
        raise SyncMusicError(f"{name}: no soundfont at {font}")
    with tempfile.TemporaryDirectory(prefix="sync-music-") as tmp:
        wav = Path(tmp) / "clip.wav"
        cmd = [exe, "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-O", "s16", "-T", "wav", "-F", str(wav),
               str(font), str(midi)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise SyncMusicError(f"{name}: fluidsynth took over {timeout:.0f} s") from err
        if done.returncode != 0 or not wav.exists():
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SyncMusicError(f"{name}: fluidsynth failed ({tail[0]})")
        with wave.open(str(wav), "rb") as fh:
            channels, rate = fh.getnchannels(), fh.getframerate()
            data = np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2")
    if rate != sample_rate:
        raise SyncMusicError(f"{name}: fluidsynth wrote {rate} Hz, asked {sample_rate}")
    return data.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0


def render_events(events: list[tuple[float, int, list[int]]], name: str, sample_rate: int = SAMPLE_RATE,
                  timeout: float = 120.0, soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """:func:`render_midi` of (seconds, order, MIDI bytes) events, through a temporary :func:`write_events` file."""
    with tempfile.TemporaryDirectory(prefix="sync-music-") as tmp:
        return render_midi(write_events(events, Path(tmp) / "clip.mid"), name, sample_rate, timeout, soundfont)


def render_audio(plan: dict[str, Any], sample_rate: int = SAMPLE_RATE, timeout: float = 120.0) -> np.ndarray:
    """Mono float32 audio of the clip, rendered by FluidSynth from its MIDI (cut to the planned duration)."""
    y = render_events(_events(plan), plan["id"], sample_rate, timeout)
    n = int(round(plan["duration"] * sample_rate))
    return np.pad(y[:n], (0, max(0, n - y.size)))


def write_clip(plan: dict[str, Any], audio: np.ndarray, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE
               ) -> Path:
    """An h264 + AAC mp4 of the clip: a flat colour per shot (a hard cut at each planned cut) and ``audio``."""
    import av


    rng = np.random.default_rng(plan["seed"])
    bounds = [c["time"] for c in plan["cuts"]]
    colours = [rng.integers(30, 226, 3)]
    for _ in bounds:  # each shot far from the last in colour, so every cut is a clear one
        while True:
            c = rng.integers(30, 226, 3)
            if np.abs(c - colours[-1]).sum() > 200:
                colours.append(c)
                break
    n_frames = int(np.ceil(plan["duration"] * FPS))
    xx = np.arange(WIDTH)[None, :, None]
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="sync-music-", dir=path.parent) as tmp:
        tmp_path = Path(tmp) / path.name
        with av.open(str(tmp_path), "w", format="mp4") as out:
            v = out.add_stream("libx264", rate=Fraction(FPS))
            v.width, v.height, v.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            a = out.add_stream("aac", rate=sample_rate, layout="mono")
            for i in range(n_frames):
                shot = sum(1 for b in bounds if b <= i / FPS + 1e-9)
                frame = np.empty((HEIGHT, WIDTH, 3), np.float64)
                frame[:] = colours[shot]
                frame = np.clip(frame + ((xx + i) % 32 < 16) * 16, 0, 255).astype(np.uint8)  # slow motion in a shot
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = i
                out.mux(v.encode(vf))
            out.mux(v.encode())
            y = audio.astype(np.float32)
            for s in range(0, y.size, 1024):
                af = av.AudioFrame.from_ndarray(y[None, s:s + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = sample_rate, s
                out.mux(a.encode(af))
            out.mux(a.encode())
        atomic_write_bytes(path, tmp_path.read_bytes())
    return path


def render_clip(plan: dict[str, Any], out_dir: str | os.PathLike, video: bool = True) -> dict[str, Any]:
    """Render one planned clip into ``out_dir`` (``<id>-<fingerprint>.npy``: the audio, and the ``.mp4``), reusing
    what is there; the fingerprint covers the plan, :data:`GENERATOR_VERSION` and the soundfont."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = json.dumps([plan, GENERATOR_VERSION, find_soundfont().name], sort_keys=True).encode()
    stem = f"{plan['id']}-{hashlib.sha1(key).hexdigest()[:10]}"
    npy, mp4 = out / f"{stem}.npy", out / f"{stem}.mp4"
    if npy.exists():
        audio = np.load(npy)
    else:
        audio = render_audio(plan)
        buf = io.BytesIO()
        np.save(buf, audio)
        atomic_write_bytes(npy, buf.getvalue())
    if video and not mp4.exists():
        write_clip(plan, audio, mp4)
    return {"plan": plan, "audio": npy, "video": mp4 if video else None}
