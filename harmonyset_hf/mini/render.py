"""Real media for HarmonySet-mini: abstract shots with hard cuts, synthesised music in sections, h264+AAC mp4.

An item's plan (made by :mod:`harmonyset_hf.mini.sample`) fixes the shots (a cut starts each new shot)
and the music sections (a section boundary is a musical change). Everything here is a pure
function of that plan, so the same plan always gives the same frames, samples and mp4 bytes
(single-threaded encoders, bit-exact flags).

Shots differ in hue (>= 100 degrees apart), pattern and shape, and move slowly inside, so a
frame-difference detector sees every cut and nothing else. Sections differ in tempo, key,
timbre and loudness all at once and open with a crash on the downbeat; inside a section the
beat, chords and arpeggio are regular, so an onset/novelty detector sees only the boundaries.
"""

from __future__ import annotations

import colorsys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 44100
FPS = 10
WIDTH, HEIGHT = 320, 180
VIDEO_CRF = "30"
AUDIO_BITRATE = 96_000

# Harmonic amplitudes of each timbre (one cycle of a wavetable); chosen to differ in brightness.
TIMBRES: dict[str, list[float]] = {
    "warm pad": [1.0, 0.35, 0.12, 0.04],
    "bright saw": [1.0 / k for k in range(1, 16)],
    "hollow square": [1.0 / k if k % 2 else 0.0 for k in range(1, 14)],
    "glass bell": [1.0, 0.0, 0.55, 0.0, 0.4, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.2],
}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
# Chord progressions as scale degrees (0-based): I-V-vi-IV and i-VI-III-VII.
PROGRESSIONS = {"major": (0, 4, 5, 3), "minor": (0, 5, 2, 6)}
PATTERNS = ("stripes", "checker", "rings", "waves", "dots")


# --------------------------------------------------------------------------------------------
# Music
# --------------------------------------------------------------------------------------------
def _wavetable(harmonics: list[float], size: int = 4096) -> np.ndarray:
    phase = np.arange(size) / size
    table = sum(a * np.sin(2 * np.pi * (k + 1) * phase) for k, a in enumerate(harmonics) if a)
    return (table / np.max(np.abs(table))).astype(np.float32)


_TABLES = {name: _wavetable(h) for name, h in TIMBRES.items()}
_SINE = _wavetable([1.0])


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _tone(table: np.ndarray, freq: float, n: int, attack: float, decay: float | None) -> np.ndarray:
    """n samples of a wavetable note with a linear attack and an exponential (or no) decay."""
    t = np.arange(n, dtype=np.float64)
    idx = ((freq / SAMPLE_RATE) * t * table.size).astype(np.int64) % table.size
    env = np.minimum(1.0, t / max(1.0, attack * SAMPLE_RATE))
    if decay:
        env *= np.exp(-t / (decay * SAMPLE_RATE))
    release = min(n, int(0.012 * SAMPLE_RATE))  # 12 ms fade-out: no click where a note ends
    env[n - release:] *= np.linspace(1.0, 0.0, release)
    return (table[idx] * env).astype(np.float32)


def _add(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    end = min(buf.shape[-1], start + sig.shape[-1])
    if end > start >= 0:
        buf[..., start:end] += sig[..., : end - start]


def _drum(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One drum hit: kick (pitch-swept sine), snare (noise + tone), hat (bright noise), crash."""
    if kind == "kick":
        n = int(0.25 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        freq = 50 + 90 * np.exp(-t / 0.03)
        env = np.exp(-t / 0.09) * np.minimum(1.0, t / 0.002)
        return (np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * env).astype(np.float32)
    if kind == "snare":
        n = int(0.18 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        noise = rng.standard_normal(n) * np.exp(-t / 0.035) * np.minimum(1.0, t / 0.004)
        return (0.35 * noise + 0.6 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.04)).astype(np.float32)
    if kind == "hat":
        n = int(0.08 * SAMPLE_RATE)
        noise = np.diff(rng.standard_normal(n + 1))  # first difference = crude high-pass
        t = np.arange(n) / SAMPLE_RATE
        return (0.5 * noise * np.exp(-t / 0.025) * np.minimum(1.0, t / 0.004)).astype(np.float32)
    n = int(1.6 * SAMPLE_RATE)  # crash
    noise = np.diff(rng.standard_normal(n + 1)) + 0.5 * rng.standard_normal(n)
    return (0.6 * noise * np.exp(-np.arange(n) / (0.45 * SAMPLE_RATE))).astype(np.float32)


def _section_audio(sec: dict[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo samples (2, n) of one section at unit level: drums, bass, chord pad and arpeggio."""
    out = np.zeros((2, n), dtype=np.float32)
    beat = 60.0 / sec["tempo_bpm"]
    scale = MAJOR if sec["mode"] == "major" else MINOR
    table = _TABLES[sec["timbre"]]
    root = 48 + sec["key_pc"]  # the octave of C3
    kick, snare, hat = _drum("kick", rng), _drum("snare", rng), _drum("hat", rng)
    n_beats = int(np.ceil(n / (beat * SAMPLE_RATE)))
    for b in range(n_beats):
        t0 = int(round(b * beat * SAMPLE_RATE))
        bar, pos = divmod(b, 4)
        degree = PROGRESSIONS[sec["mode"]][bar % 4]
        chord = [root + 12 + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
        # Drums: kick on 1 and 3, snare on 2 and 4, hats on every eighth (moderate, steady).
        if pos in (0, 2):
            _add(out, t0, np.stack([kick, kick]) * 0.45)
        else:
            _add(out, t0, np.stack([0.8 * snare, snare]) * 0.25)
        for half in (0, 1):
            th = t0 + int(half * beat * SAMPLE_RATE / 2)
            _add(out, th, np.stack([0.6 * hat, hat]) * 0.08)
        # Bass: the chord root, one note a beat, warm sine with a decay.
        bass = _tone(_TABLES["warm pad"], _midi_hz(chord[0] - 24), int(beat * SAMPLE_RATE), 0.005, beat * 0.6)
        _add(out, t0, np.stack([bass, bass]) * 0.35)
        # Pad: the whole chord, held for the bar, swelling in and overlapping the next chord a little.
        if pos == 0:
            length = int((4 * beat + 0.15) * SAMPLE_RATE)
            pad = sum(_tone(table, _midi_hz(m), length, 0.12, None) for m in chord) / 3
            _add(out, t0, np.stack([pad, 0.8 * pad]) * 0.22)
        # Arpeggio: chord tones an octave up, one per eighth, plucked.
        for half in (0, 1):
            note = chord[(2 * pos + half) % 3] + 12
            length = int(beat * SAMPLE_RATE / 2)
            arp = _tone(table, _midi_hz(note), length, 0.008, beat * 0.25)
            _add(out, t0 + half * length, np.stack([0.8 * arp, arp]) * 0.16)
    # A steady noise bed (the "air" of a mix): it keeps every band busy, so a hi-hat or a chord change
    # is a small step, while a section change moves all bands.
    bed = rng.standard_normal((2, n)).astype(np.float32)
    return out + (0.02 if sec["timbre"] in ("bright saw", "hollow square") else 0.014) * bed


def synthesize_music(sections: list[dict[str, Any]], duration: float, seed: int) -> np.ndarray:
    """Stereo float32 samples (2, n) of the planned sections; a crash marks each section change."""
    rng = np.random.default_rng(seed)
    n_total = int(round(duration * SAMPLE_RATE))
    mix = np.zeros((2, n_total), dtype=np.float32)
    for i, sec in enumerate(sections):
        start = int(round(sec["start"] * SAMPLE_RATE))
        end = int(round(sec["end"] * SAMPLE_RATE))
        gain = 10 ** (sec["level_db"] / 20)
        part = _section_audio(sec, end - start, rng) * gain
        fade = min(int(0.01 * SAMPLE_RATE), part.shape[1] // 2)  # 10 ms: a hard but click-free edge
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        part[:, :fade] *= ramp
        part[:, part.shape[1] - fade:] *= ramp[::-1]
        mix[:, start:end] += part
        if i > 0:  # a new section opens with a crash and a heavy downbeat, as the louder side plays them
            louder = max(gain, 10 ** (sections[i - 1]["level_db"] / 20))
            crash, kick = _drum("crash", rng), _drum("kick", rng)
            _add(mix, start, np.stack([crash, 0.9 * crash]) * 1.2 * louder)
            _add(mix, start, np.stack([kick, kick]) * 0.8 * louder)
    peak = float(np.max(np.abs(mix))) or 1.0
    return (mix * (0.9 / peak)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------
_YY, _XX = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)


def _rgb(hue: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue % 360) / 360, sat, val), dtype=np.float32) * 255


def _rgb_luma(hue: float, sat: float, luma: float) -> np.ndarray:
    """A colour of this hue with the given luma (BT.601, 0-255), desaturated as far as needed to reach it."""
    while True:
        rgb = _rgb(hue, sat, 1.0)
        rgb = rgb * (luma / max(1.0, float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))))
        if rgb.max() <= 255 or sat <= 0:
            return np.clip(rgb, 0, 255)
        sat = max(0.0, sat - 0.05)


def _pattern(kind: str, period: float) -> np.ndarray:
    """A periodic field in [0, 1] the size of a frame, wrapped so that np.roll scrolls it seamlessly."""
    x, y = _XX * 2 * np.pi / period, _YY * 2 * np.pi / period
    if kind == "stripes":
        field = np.sin(x + y)
    elif kind == "checker":
        field = np.sign(np.sin(x) * np.sin(y))
    elif kind == "rings":
        field = np.sin(np.hypot(_XX - WIDTH / 2, _YY - HEIGHT / 2) * 2 * np.pi / period)
    elif kind == "waves":
        field = np.sin(x + 1.5 * np.sin(y / 2))
    else:  # dots
        field = (np.sin(x) * np.sin(y) > 0.6).astype(np.float32) * 2 - 1
    return ((field + 1) / 2).astype(np.float32)


def render_frames(shots: list[dict[str, Any]], n_frames: int):
    """Yield uint8 RGB frames (HEIGHT, WIDTH, 3): one look per shot, slow motion inside it."""
    for shot in shots:
        first, last = int(round(shot["start"] * FPS)), min(n_frames, int(round(shot["end"] * FPS)))
        base = _rgb_luma(shot["hue"], 0.75, 200 * shot["value"])
        accent = _rgb_luma(shot["hue"] + 40, 0.55, 200 * shot["value"] * 0.7)
        shape_rgb = _rgb(shot["hue"] + 180, 0.8, 1.0)
        field = _pattern(shot["pattern"], shot["period"])[..., None]
        background = base * (1 - 0.35 * field) + accent * (0.35 * field)
        r = shot["radius"]
        for f in range(first, last):
            k = f - first
            frame = np.roll(background, int(k * shot["scroll"]), axis=1)
            cx = WIDTH / 2 + (WIDTH / 2 - r - 4) * np.sin(shot["phase"] + k * shot["speed"])
            cy = HEIGHT / 2 + (HEIGHT / 2 - r - 4) * np.sin(shot["phase"] * 1.7 + k * shot["speed"] * 0.7)
            y0, y1 = max(0, int(cy - r)), min(HEIGHT, int(cy + r) + 1)
            x0, x1 = max(0, int(cx - r)), min(WIDTH, int(cx + r) + 1)
            yy, xx = _YY[y0:y1, x0:x1], _XX[y0:y1, x0:x1]
            if shot["shape"] == "circle":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                mask = (np.abs(yy - cy) + np.abs(xx - cx)) <= r  # diamond
            frame[y0:y1, x0:x1][mask] = shape_rgb
            yield frame.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def encode_mp4(path: str | Path, frames, n_frames: int, audio: np.ndarray) -> None:
    """Write h264 (yuv420p) video + stereo AAC audio to ``path`` with deterministic encoder settings."""
    import av

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        container.flags |= av.container.Flags.bitexact.value
        v = container.add_stream("libx264", rate=Fraction(FPS))
        v.width, v.height, v.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        v.codec_context.thread_count = 1
        # x264's lookahead reads uninitialised memory (output changes run to run); without it, and on one
        # thread, the same frames always give the same bytes.
        v.codec_context.options = {"preset": "veryfast", "crf": VIDEO_CRF, "threads": "1", "g": str(4 * FPS),
                                   "x264-params": "rc-lookahead=0:no-mbtree=1:sync-lookahead=0"}
        a = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        a.bit_rate = AUDIO_BITRATE
        a.codec_context.options = {"aac_coder": "fast"}  # half the cost of "twoloop"; plenty for synth music
        a.codec_context.thread_count = 1
        chunk, sent = 1024, 0

        def audio_until(sample: int) -> None:
            nonlocal sent
            while sent < min(sample, audio.shape[1]):
                block = np.ascontiguousarray(audio[:, sent:sent + chunk])
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = SAMPLE_RATE, sent
                container.mux(a.encode(frame))
                sent += block.shape[1]

        # Interleave by time so that players and decoders read the file front to back.
        for i, rgb in enumerate(frames):
            if i >= n_frames:
                break
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(v.encode(frame))
            audio_until(int((i + 1) * SAMPLE_RATE / FPS))
        container.mux(v.encode())
        audio_until(audio.shape[1])
        container.mux(a.encode())
    tmp.replace(path)


def probe_duration(path: str | Path) -> float:
    """The container duration in seconds (what ffprobe reports as format duration)."""
    import av

    with av.open(str(path)) as container:
        return container.duration / av.time_base


def render_item(plan: dict[str, Any], path: str | Path) -> float:
    """Render one planned item to an mp4 at ``path``; returns the encoded duration in seconds."""
    n_frames = int(round(plan["planned_duration"] * FPS))
    duration = n_frames / FPS
    audio = synthesize_music(plan["sections"], duration, plan["audio_seed"])
    encode_mp4(path, render_frames(plan["shots"], n_frames), n_frames, audio)
    return probe_duration(path)
