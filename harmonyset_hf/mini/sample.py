"""HarmonySet-mini: a small synthetic HarmonySet release with real media and a known ground truth.

``make_sample(out_dir, n, seed)`` plans ``n`` items (shots, cuts, music sections, sync codes),
renders each to an h264+AAC mp4 (:mod:`harmonyset_hf.mini.render`), writes the release files in
the published format (:mod:`harmonyset_hf.mini.annotations` writes the words) and the planted truth::

    out_dir/videos/<id>.mp4
    out_dir/release/HarmonySet_Train.json, HarmonySet_Test.json, HarmonySet_MC.json, annotators.csv
    out_dir/truth.json

Sync codes are planted in the signal: at an ``A`` cut a music section change (tempo, key, timbre
and loudness at once) falls exactly on the cut, at a ``B`` cut 0.7-1.5 s before or after it, and
around a ``C`` cut the music keeps going unchanged for at least 2.5 s on each side. The same
seed gives byte-identical files.
"""

from __future__ import annotations

import math
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..errors import HarmonySetError
from ..io import atomic_write_json
from ..schema import CATEGORIES, SUBCATEGORIES
from . import annotations as sample_text
from .render import FPS, HEIGHT, PATTERNS, SAMPLE_RATE, TIMBRES, WIDTH, render_item

KEY_FRACTION = 0.58  # share of items with key timestamps (paper)
TEST_FRACTION = 1 / 3
MIN_CUT_GAP = 6.0  # seconds between cuts: a C cut keeps > 4 s of steady music even next to a B change
EDGE = 3.0  # no cut closer than this to either end
B_OFFSET = (0.75, 1.45)  # inside the paper-style 0.7-1.5 s band, with room for rounding
STEADY = 2.5  # no music change within this many seconds of a C cut (free changes keep FREE_GAP)
FREE_GAP = 4.0
MAX_CHANGES = 3
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


class SampleError(HarmonySetError):
    """HarmonySet-mini could not be made (bad arguments, a failed render)."""


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def _split_plan(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(split, category, profile) per item: categories cycle within each split, profiles in proportion."""
    n_test = max(1, round(n * TEST_FRACTION)) if n > 1 else 0
    out: list[tuple[str, str, str]] = []
    for split, m in (("train", n - n_test), ("test", n_test)):
        order = list(CATEGORIES)
        rng.shuffle(order)
        cats = [order[i % len(order)] for i in range(m)]
        keyed = round(m * KEY_FRACTION)
        n_sync = n_nosync = math.ceil(keyed * 0.36)
        n_sync, n_nosync = min(n_sync, keyed), min(n_nosync, max(0, keyed - n_sync))
        profiles = ["sync"] * n_sync + ["nosync"] * n_nosync + ["mixed"] * (keyed - n_sync - n_nosync)
        profiles += ["none"] * (m - keyed)
        rng.shuffle(profiles)
        out += [(split, c, p) for c, p in zip(cats, profiles)]
    return out


def _codes(profile: str, k: int, rng: random.Random) -> list[str]:
    if profile == "sync":
        codes = ["A"] * k
    elif profile == "nosync":
        codes = ["C"] * k
    else:
        codes = {0: [], 1: ["B"], 2: rng.choice([["A", "C"], ["B", "C"], ["A", "B"]]), 3: ["A", "B", "C"]}[k]
    if profile in ("sync", "nosync") and k == 3 and rng.random() < 0.4:
        codes[rng.randrange(k)] = "B"  # a mostly-A (or mostly-C) item with one loose point
    rng.shuffle(codes)
    return codes


def _spaced_times(count: int, low: float, high: float, avoid: list[float], gap: float, avoid_gap: float,
                  rng: random.Random, whole: bool) -> list[float] | None:
    """``count`` sorted times in [low, high], ``gap`` apart and ``avoid_gap`` from ``avoid``; None if none fit."""
    for _ in range(2000):
        times = sorted(rng.uniform(low, high) for _ in range(count))
        times = [float(round(t)) if whole else round(t, 2) for t in times]
        if any(t < low or t > high for t in times):
            continue
        if any(b - a < gap for a, b in zip(times, times[1:])):
            continue
        if any(abs(t - a) < avoid_gap for t in times for a in avoid):
            continue
        return times
    return None


def _duration(k: int, long: bool, rng: random.Random) -> float:
    need = 2 * EDGE + MIN_CUT_GAP * (k - 1) + 1.0 if k else 3.0
    if long:
        d = rng.uniform(31.0, 40.0)
    else:
        d = rng.choice([rng.uniform(3.0, 9.0), rng.uniform(9.0, 20.0), rng.uniform(9.0, 20.0), rng.uniform(20.0, 29.0)])
    return round(max(d, need + rng.uniform(0.0, 4.0)), 1)


def _sections(changes: list[float], duration: float, rng: random.Random) -> list[dict[str, Any]]:
    """Music sections between changes: each differs from the last in tempo, key, timbre, and is ~10 dB louder."""
    bounds = [0.0, *changes, duration]
    levels = [0.0]
    for _ in changes:
        levels.insert(0, round(levels[0] - rng.uniform(9.5, 11.0), 1))
    out: list[dict[str, Any]] = []
    for i, (start, end) in enumerate(zip(bounds, bounds[1:])):
        prev = out[-1] if out else None
        tempo = rng.choice([t for t in range(72, 152, 4) if prev is None or abs(t - prev["tempo_bpm"]) >= 28])
        key_pc = rng.randrange(12) if prev is None else (prev["key_pc"] + rng.choice([3, 4, 5, 7, 8, 9])) % 12
        mode = rng.choice(["major", "minor"])
        timbre = rng.choice([t for t in TIMBRES if prev is None or t != prev["timbre"]])
        out.append({"start": start, "end": end, "tempo_bpm": tempo, "key_pc": key_pc,
                    "key": f"{KEY_NAMES[key_pc]} {mode}", "mode": mode, "timbre": timbre, "level_db": levels[i]})
    return out


def _shots(cuts: list[float], duration: float, rng: random.Random) -> list[dict[str, Any]]:
    """One look per shot; consecutive shots >= 100 degrees apart in hue, bright/dark in turn, another pattern."""
    bounds = [0.0, *cuts, duration]
    hue, out, bright = rng.uniform(0, 360), [], rng.random() < 0.5
    for start, end in zip(bounds, bounds[1:]):
        prev = out[-1] if out else None
        if prev:
            hue = (prev["hue"] + rng.uniform(100, 260)) % 360
        bright = not bright  # grey-level detectors see the cut too, not only colour ones
        out.append({"start": start, "end": end, "hue": round(hue, 1),
                    "value": round(rng.uniform(0.85, 0.95) if bright else rng.uniform(0.4, 0.5), 2),
                    "pattern": rng.choice([p for p in PATTERNS if not prev or p != prev["pattern"]]),
                    "shape": "diamond" if prev and prev["shape"] == "circle" else rng.choice(["circle", "diamond"]),
                    "period": round(rng.uniform(24, 48), 1), "radius": round(rng.uniform(16, 28), 1),
                    "scroll": round(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0), 2),
                    "speed": round(rng.uniform(0.04, 0.09), 3), "phase": round(rng.uniform(0, 6.28), 2)})
    return out


def plan_item(item_id: str, split: str, category: str, profile: str, long: bool, seed: int) -> dict[str, Any]:
    """The planted truth of one item: cuts, sync codes, music sections, shots (a pure function of its args)."""
    rng = random.Random(f"harmonyset-mini:{seed}:{item_id}")
    k = 0 if profile == "none" else rng.choice([1, 2, 2, 3, 3] if long else [1, 1, 2, 2, 3])
    duration = _duration(k, long, rng)
    codes = _codes(profile, k, rng)
    cuts = _spaced_times(k, EDGE, duration - EDGE, [], MIN_CUT_GAP, 0, rng, whole=True) if k else []
    if cuts is None:  # pragma: no cover - _duration leaves room for k cuts
        raise SampleError(f"{item_id}: no room for {k} cuts in {duration} s")
    cut_codes = list(codes)
    changes = []
    for t, code in zip(cuts, codes):
        if code == "A":
            changes.append(t)
        elif code == "B":
            changes.append(round(t + rng.choice([-1, 1]) * rng.uniform(*B_OFFSET), 2))
    if profile == "none" and duration >= 2 * EDGE + 4 and rng.random() < 0.5:
        extra = _spaced_times(1, EDGE, duration - EDGE, [], 0, 0, rng, whole=True) or []
        cuts, cut_codes = extra, ["C"] * len(extra)  # a visual turn nobody marked: the music ignores it
    if profile in ("none", "nosync") and len(changes) < MAX_CHANGES and rng.random() < 0.6:
        free = _spaced_times(1, EDGE, duration - EDGE, cuts + changes, 0, FREE_GAP, rng, whole=False)
        changes += free or []  # the music moves on its own, away from every cut
    changes.sort()
    return {
        "id": item_id, "split": split, "category": category, "profile": profile,
        "subcategory": rng.choice(SUBCATEGORIES[category]),
        "planned_duration": duration, "fps": FPS, "width": WIDTH, "height": HEIGHT, "sample_rate": SAMPLE_RATE,
        "cuts": cuts, "cut_codes": cut_codes,
        "sync_points": [{"time": t, "code": c} for t, c in zip(cuts, codes)] if profile != "none" else [],
        "music_changes": changes,
        "sections": _sections(changes, duration, rng),
        "shots": _shots(cuts, duration, rng),
        "audio_seed": rng.randrange(2**31),
        "text_seed": rng.randrange(2**31),
    }


def plan_items(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Plans of ``n`` items (ids ``hs000001``...), train first then test; at least 2 longer than 30 s."""
    if n < 2:
        raise SampleError(f"HarmonySet-mini needs at least 2 items (one train, one test), got n={n}")
    rng = random.Random(f"harmonyset-mini:{seed}")
    layout = _split_plan(n, rng)
    keyed = [i for i, (_, _, p) in enumerate(layout) if p != "none"]
    long = set(rng.sample(keyed, min(len(keyed), max(2, round(n * 0.12)))))
    return [plan_item(f"hs{i + 1:06d}", split, cat, prof, i in long, seed)
            for i, (split, cat, prof) in enumerate(layout)]


# --------------------------------------------------------------------------------------------
# Making the release
# --------------------------------------------------------------------------------------------
def _render(args: tuple[dict[str, Any], str]) -> tuple[str, float]:
    plan, path = args
    try:
        return plan["id"], render_item(plan, path)
    except Exception as err:  # name the item: a worker's bare traceback would not
        raise SampleError(f"{plan['id']}: rendering {path} failed: {type(err).__name__}: {err}") from err


def _truth(plan: dict[str, Any], duration: float) -> dict[str, Any]:
    keep = ("split", "category", "subcategory", "profile", "fps", "width", "height", "sample_rate", "cuts",
            "cut_codes", "sync_points", "music_changes", "sections", "shots")
    out = {k: plan[k] for k in keep}
    out["duration"] = duration
    out["tempo_bpm"] = [s["tempo_bpm"] for s in plan["sections"]]
    out["keys"] = [s["key"] for s in plan["sections"]]
    return out


def make_sample(out_dir: str | os.PathLike, n: int = 24, seed: int = 0, workers: int | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Write HarmonySet-mini (videos/, release/, truth.json) to ``out_dir``; returns a summary of what was made."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SampleError(f"--out {out} is a file; HarmonySet-mini is written to a folder")
    videos, release = out / "videos", out / "release"
    videos.mkdir(parents=True, exist_ok=True)
    release.mkdir(parents=True, exist_ok=True)
    plans = plan_items(n, seed)
    jobs = [(p, str(videos / f"{p['id']}.mp4")) for p in plans]
    planned = {Path(path).name for _, path in jobs}
    for stale in videos.glob("hs[0-9][0-9][0-9][0-9][0-9][0-9].mp4"):  # from an earlier, larger run
        if stale.name not in planned:
            stale.unlink()
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="rendering HarmonySet-mini", unit="video", disable=not progress)
    durations: dict[str, float] = {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext()
    with pool:
        for item_id, seconds in (pool.map if workers > 1 else map)(_render, jobs):
            durations[item_id] = seconds
            bar.update()
    bar.close()

    truth = {"seed": seed, "n": n, "items": {}}
    for p in plans:
        truth["items"][p["id"]] = _truth(p, round(durations[p["id"]], 3))
    records = {p["id"]: sample_text.release_record(p, truth["items"][p["id"]]) for p in plans}
    train = [records[p["id"]] for p in plans if p["split"] == "train"]
    test = [records[p["id"]] for p in plans if p["split"] == "test"]
    mc = sample_text.mc_questions(test, truth["items"], seed)
    paths = {
        "train": atomic_write_json(release / "HarmonySet_Train.json", train),
        "test": atomic_write_json(release / "HarmonySet_Test.json", test),
        "mc": atomic_write_json(release / "HarmonySet_MC.json", mc),
        "annotators": sample_text.write_annotators(release / "annotators.csv", records.values(), seed),
        "truth": atomic_write_json(out / "truth.json", truth),
        "videos": videos,
    }
    total = sum(durations.values())
    return {
        "out_dir": str(out), "seed": seed, "n_items": n, "n_train": len(train), "n_test": len(test),
        "n_mc_questions": sum(len(q["questions"]) for q in mc), "n_annotator_rows": 3 * n,
        "n_with_key_points": sum(1 for p in plans if p["sync_points"]),
        "n_longer_than_30s": sum(1 for d in durations.values() if d > 30),
        "total_duration_s": round(total, 1), "seconds": round(time.perf_counter() - started, 2),
        "paths": {k: str(v) for k, v in paths.items()},
    }
