#!/usr/bin/env python
"""Fit the instrument network that sync.instrument ships (harmonyset_hf/sync/instrument_net.npz).

Renders training music apart from the evaluation set (harmonyset_hf/sync/music.py): its own patterns, one
arrangement a clip (a chord instrument and how it plays -- held, in halves, stabs or arpeggios -- a lead, a
bass, drums or not) while key, mode, chords, tempo, register and dynamics change every two bars. The chords
and the lead are General MIDI programs played by soundfonts other than the evaluation set's TimGM6mb (by
default Debian's FluidR3_GM and csound's GM bank, taken in turn) or, in a share of the clips,
additive-synthesis patches: a fixed table of harmonic amplitudes and an ADSR envelope, drawn at random (an
instrument whose spectrum slides with the notes, as synthesisers and HarmonySet-mini's pads have). The
network learns to name the family of the chord and of the lead instrument (the 16 General MIDI families, or
the patch) in every frame, whatever the notes.

    apt-get install fluid-soundfont-gm csound-soundfont
    python scripts/fit_instrument_net.py            # about 40 minutes on 2 cores (15 to render, 24 to train)
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harmonyset_hf.sync import instrument, music  # noqa: E402

FLUID_R3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CSOUND_GM = "/usr/share/sounds/sf2/sf_GMbank.sf2"
MELODIC = tuple(p for p in range(96) if not 32 <= p <= 39)  # every pitched GM program but the basses and effects
BASSES = (*range(32, 40), 42, 43)
MODES = {**music.SCALES, "dorian": (0, 2, 3, 5, 7, 9, 10)}
GM_FAMILIES = 16
PATCHES = 32        # additive-synthesis patches; classes GM_FAMILIES .. GM_FAMILIES + PATCHES - 1
CROP = 128          # frames a training example spans (about 3 s)
STEPS = 120         # batches an epoch


def plan_clip(index: int, seed: int, seconds: float) -> dict:
    """One training clip: its instrumentation and its MIDI events (seconds, order, bytes)."""
    rng = random.Random(f"instrument-net:{seed}:{index}")
    chords, lead = rng.sample(MELODIC, 2)
    bass, drums = rng.choice(BASSES), rng.random() < 0.6
    comp = rng.choice(["sustain", "arpeggio", "stabs", "halves"])  # how the chords are played is the arrangement's
    ev: list[tuple[float, int, list[int]]] = [(0.0, 1, [0xC0 | ch, prog])
                                              for ch, prog in enumerate((chords, lead, bass))]

    def note(t: float, dur: float, ch: int, pitch: int, vel: float) -> None:
        ev.append((t, 2, [0x90 | ch, pitch, int(np.clip(vel, 1, 127))]))
        ev.append((t + dur, 0, [0x80 | ch, pitch, 0]))

    t = 0.0
    while t < seconds:
        key, scale = rng.randrange(12), MODES[rng.choice(sorted(MODES))]
        beat = 60.0 / rng.uniform(70, 160)
        register, vel = rng.choice([-12, 0, 0, 12]), rng.uniform(45, 115)
        for bar in range(2):
            degree = rng.randrange(7)
            chord = [48 + register + key + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
            t0 = t + 4 * beat * bar
            hits = {"sustain": [(0, 4, chord)], "halves": [(0, 2, chord), (2, 2, chord)],
                    "stabs": [(k, 0.4, chord) for k in range(4)],
                    "arpeggio": [(k * 0.5, 0.5, [chord[k % 3]]) for k in range(8)]}[comp]
            for on, dur, pitches in hits:
                for p in pitches:
                    note(t0 + on * beat, dur * beat * 0.9, 0, p, vel + rng.uniform(-8, 8))
            root = 36 + key + scale[degree]
            note(t0, 1.8 * beat, 2, root, vel)
            note(t0 + 2 * beat, 1.8 * beat, 2, root, vel)
            pos, step = 0.0, rng.randrange(7)
            while pos < 4:
                dur = rng.choice([0.25, 0.5, 0.5, 1.0, 1.5])
                if rng.random() > 0.2:
                    pitch = 72 + register // 2 + key + scale[step % 7] + 12 * (step // 7)
                    note(t0 + pos * beat, min(dur, 4 - pos) * beat * 0.9, 1, int(np.clip(pitch, 55, 96)),
                         vel + rng.uniform(-6, 6))
                step = (step + rng.choice([-2, -1, 1, 1, 2, 3])) % 12
                pos += dur
            if drums:
                for s in range(16):
                    ts = t0 + s * beat / 4
                    if s % 8 == 0:
                        note(ts, beat / 4, 9, 36, vel)
                    if s % 8 == 4:
                        note(ts, beat / 4, 9, 38, vel)
                    if s % 2 == 0:
                        note(ts, beat / 4, 9, rng.choice([42, 42, 44, 46]), vel - 20)
        t += 8 * beat
    return {"index": index, "programs": [chords, lead, bass], "drums": drums, "comp": comp,
            "events": sorted(ev, key=lambda e: (e[0], e[1]))}


def patch(k: int) -> dict:
    """Additive-synthesis patch ``k``: harmonic amplitudes (random roll-off, odd/even balance, gaps) and ADSR."""
    r = np.random.default_rng(1000 + k)
    n = int(r.integers(6, 28))
    amps = np.arange(1, n + 1, dtype=float) ** -r.uniform(0.4, 2.5)
    amps[1::2] *= r.uniform(0.0, 1.0)
    amps *= np.exp(r.normal(0, 0.35, n)) * (r.random(n) > 0.15)
    amps[0] = 1.0
    return {"amps": amps, "attack": r.uniform(0.002, 0.15), "decay": r.uniform(0.05, 1.2),
            "sustain": r.uniform(0.0, 1.0), "release": r.uniform(0.02, 0.4),
            "detune": r.uniform(0, 10) if r.random() < 0.4 else 0.0}


def synth_note(p: dict, pitch: int, dur: float, vel: int, sr: int) -> np.ndarray:
    """One note of patch ``p``: its harmonics under Nyquist, shaped by the ADSR envelope."""
    f0 = 440 * 2 ** ((pitch - 69) / 12)
    t = np.arange(int((dur + p["release"]) * sr)) / sr
    env = np.where(t < p["attack"], t / p["attack"],
                   p["sustain"] + (1 - p["sustain"]) * np.exp(-(t - p["attack"]) / p["decay"]))
    env = np.where(t > dur, env * np.exp(-(t - dur) / (p["release"] / 4)), env)
    y = np.zeros(t.size)
    for cents in ([0.0] if not p["detune"] else [-p["detune"], p["detune"]]):
        f = f0 * 2 ** (cents / 1200)
        for k, a in enumerate(p["amps"], 1):
            if a and k * f < sr / 2 - 500:
                y += a * np.sin(2 * np.pi * k * f * t + k)
    return y * env * (vel / 127)


def training_clip(args: tuple[dict, str, float]) -> dict:
    """One rendered clip: its log-mel, the class of its chords and of its lead, and whether drums play."""
    plan, font, synth_share = args
    rng = random.Random(f"instrument-net-synth:{font}:{plan['index']}")
    which: dict[int, int] = {}
    if rng.random() < synth_share:  # chords, lead or both from synthesis patches
        while not which:
            which = {ch: rng.randrange(PATCHES) for ch in (0, 1) if rng.random() < 0.6}
        if len(which) == 2 and which[0] == which[1]:
            which[1] = (which[1] + 1) % PATCHES
    events = plan["events"]
    y = music.render_events([e for e in events if (e[2][0] & 0x0F) not in which], f"training clip {plan['index']}",
                            soundfont=font).astype(np.float64)
    if which:
        sr, patches, on = music.SAMPLE_RATE, {ch: patch(k) for ch, k in which.items()}, {}
        synth = np.zeros(y.size)
        for t, _, data in events:
            status, ch = data[0] & 0xF0, data[0] & 0x0F
            if ch not in which:
                continue
            if status == 0x90 and data[2] > 0:
                on[(ch, data[1])] = (t, data[2])
            elif status == 0x80 and (ch, data[1]) in on:
                t0, vel = on.pop((ch, data[1]))
                note = synth_note(patches[ch], data[1], t - t0, vel, sr)
                i = int(t0 * sr)
                synth[i:i + note.size] += note[:max(0, synth.size - i)]
        rms = float(np.sqrt(np.mean(y ** 2)))
        synth *= (rms if rms > 1e-3 else 0.05) * rng.uniform(0.6, 1.6) / (float(np.sqrt(np.mean(synth ** 2))) + 1e-9)
        y = y + synth
    labels = [GM_FAMILIES + which[ch] if ch in which else plan["programs"][ch] // 8 for ch in (0, 1)]
    # float16: a thousand clips' spectrograms in memory
    return {"mel": instrument.log_mel(y).astype(np.float16), "labels": labels, "drums": plan["drums"]}


def render_set(n: int, seed: int, fonts: list[str], synth_share: float, seconds: float, workers: int,
               desc: str) -> list[dict]:
    """``n`` rendered training clips, the soundfonts taken in turn."""
    from tqdm.auto import tqdm

    jobs = [(plan_clip(i, seed, seconds), fonts[i % len(fonts)], synth_share) for i in range(n)]
    with ProcessPoolExecutor(max(1, workers)) as pool:
        return list(tqdm(pool.map(training_clip, jobs, chunksize=4), total=n, desc=desc, unit="clip"))


def train(clips: list[dict], val: list[dict], epochs: int, seed: int) -> tuple[object, dict]:
    """Fit the network on random crops of ``clips``; per-epoch validation accuracy of the two heads."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = [(instrument.normalize(c["mel"].astype(np.float32)), *c["labels"], float(c["drums"])) for c in clips]
    held = [(instrument.normalize(c["mel"].astype(np.float32)), *c["labels"], float(c["drums"])) for c in val]

    def batch(ds: list, n: int) -> tuple:
        xs, a, b, d = [], [], [], []
        for i in rng.integers(len(ds), size=n):
            m, chord, lead, drums = ds[i]
            s = int(rng.integers(20, m.shape[1] - CROP - 40))  # skip the first attacks and the release tail
            xs.append(m[:, s:s + CROP])
            a.append(chord)
            b.append(lead)
            d.append(drums)
        return torch.tensor(np.stack(xs)), torch.tensor(a), torch.tensor(b), torch.tensor(d)

    net = instrument.build(GM_FAMILIES + PATCHES)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * STEPS)
    vx = batch(held, min(600, 4 * len(held)))
    history = []
    for epoch in range(epochs):
        net.train()
        t0, total = time.time(), 0.0
        for _ in range(STEPS):
            x, a, b, d = batch(data, 32)
            _, pc, pl, pd = net(x)
            frames = pc.shape[2]
            loss = (F.cross_entropy(pc, a[:, None].expand(-1, frames))
                    + F.cross_entropy(pl, b[:, None].expand(-1, frames))
                    + 0.3 * F.binary_cross_entropy_with_logits(pd, d[:, None].expand(-1, frames)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        net.eval()
        with torch.no_grad():
            _, pc, pl, _ = net(vx[0])
            chord = float((pc.mean(2).argmax(1) == vx[1]).float().mean())
            lead = float((pl.mean(2).argmax(1) == vx[2]).float().mean())
        history.append({"epoch": epoch, "loss": round(total / STEPS, 4), "val_chord": round(chord, 3),
                        "val_lead": round(lead, 3)})
        print(f"epoch {epoch}: loss {total / STEPS:.3f}, validation accuracy chords {chord:.3f} lead {lead:.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    net.eval()
    return net, {"history": history}


def main(argv: list[str] | None = None) -> int:
    """Render the training clips, fit the network, write its weights with the record of how."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "harmonyset_hf" / "sync" / instrument.WEIGHTS)
    ap.add_argument("--clips", type=int, default=2400, help="training clips, one instrumentation each")
    ap.add_argument("--val-clips", type=int, default=250, help="validation clips (another seed)")
    ap.add_argument("--synth-share", type=float, default=0.375, help="share of clips with synthesis patches")
    ap.add_argument("--seconds", type=float, default=22.0, help="length of a clip")
    ap.add_argument("--epochs", type=int, default=36)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--soundfont", action="append", help="General MIDI soundfont(s) other than the evaluation "
                    f"set's (repeatable; default {FLUID_R3} and {CSOUND_GM})")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    fonts = args.soundfont or [FLUID_R3, CSOUND_GM]
    for font in fonts:
        if not Path(font).is_file():
            print(f"error: no soundfont at {font} (apt-get install fluid-soundfont-gm csound-soundfont, or pass "
                  "--soundfont)",
                  file=sys.stderr)
            return 2
        if Path(font).resolve() == music.find_soundfont().resolve():
            print(f"error: {font} renders the evaluation set; train on another soundfont", file=sys.stderr)
            return 2
    torch.set_num_threads(max(1, args.workers))
    clips = render_set(args.clips, args.seed, fonts, args.synth_share, args.seconds, args.workers, "training clips")
    val = render_set(args.val_clips, args.seed + 1000, fonts, args.synth_share, args.seconds, args.workers,
                     "validation clips")
    net, record = train(clips, val, args.epochs, args.seed)
    digests = {}
    for font in fonts:
        with open(font, "rb") as fh:
            digests[Path(font).name] = hashlib.file_digest(fh, "sha256").hexdigest()
    meta = {"about": "sync.instrument network, fitted by scripts/fit_instrument_net.py",
            "families": GM_FAMILIES + PATCHES, "width": 64, "soundfonts": digests, "clips": args.clips,
            "val_clips": args.val_clips,
            "synth_share": args.synth_share, "seconds": args.seconds, "epochs": args.epochs, "seed": args.seed,
            **record}
    instrument.save(net, str(args.out), meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
