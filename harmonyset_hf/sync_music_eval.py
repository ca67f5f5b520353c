"""How well :func:`harmonyset_hf.sync.analyze` finds the changes of the General MIDI set (:mod:`.sync_music`).

Per clip, the rendered mp4 is analysed with the planned cut times as key timestamps. A planted change is
found when a detected change lies within ``tol`` (0.35 s) of it, each detection matched once; recall is
per change kind, precision over all detections of a half (controls included: whatever is found there is
a false change). The A/B/C code of each planted cut is compared with its truth (A on a change, B
0.75-1.45 s from one, C more than 2.5 s from every change or on a control moment).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .sync import SyncParams, analyze, match_events
from .sync_music import CHANGE_KINDS, CONTROL_KINDS, plan_set, render_clip


def score_clip(plan: dict[str, Any], video: str | os.PathLike, params: SyncParams | None = None,
               tol: float = 0.35) -> dict[str, Any]:
    """One clip's detected changes matched to its planted ones, and the codes of its planted cuts."""
    key_times = [c["time"] for c in plan["cuts"]]
    a = analyze(video, key_times=key_times, params=params)
    found = [c.time for c in a.music_changes]
    planted = [c["time"] for c in plan["changes"]]
    pairs = match_events(planted, found, tol)
    hit = {p for p, _ in pairs}
    return {"id": plan["id"], "kind": plan["kind"], "detected": [round(t, 3) for t in found],
            "changes": [{"time": c["time"], "kind": c["kind"], "found": c["time"] in hit} for c in plan["changes"]],
            "false": len(found) - len(pairs),
            "cuts": [{"time": c["time"], "truth": c["code"], "code": code} for c, code in zip(plan["cuts"], a.codes)]}


def summarize_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall per change kind, precision, code accuracy (all cuts, per truth code) and controls coded C."""
    per_kind: dict[str, list[bool]] = defaultdict(list)
    n_found = n_false = 0
    codes: dict[str, list[bool]] = defaultdict(list)
    controls: dict[str, list[bool]] = defaultdict(list)
    false_by_clip_kind: dict[str, int] = defaultdict(int)
    for it in items:
        for c in it["changes"]:
            per_kind[c["kind"]].append(c["found"])
        n_found += len(it["detected"])
        n_false += it["false"]
        clip_kind = it["kind"] if it["kind"] in CONTROL_KINDS else "change"
        false_by_clip_kind[clip_kind] += it["false"]
        for c in it["cuts"]:
            codes[c["truth"]].append(c["code"] == c["truth"])
            if it["kind"] in CONTROL_KINDS:
                controls[it["kind"]].append(c["code"] == "C")
    all_codes = [ok for v in codes.values() for ok in v]
    return {
        "clips": len(items),
        "recall": {k: float(np.mean(per_kind[k])) for k in CHANGE_KINDS if per_kind[k]},
        "n_changes": {k: len(per_kind[k]) for k in CHANGE_KINDS if per_kind[k]},
        "precision": (n_found - n_false) / n_found if n_found else None,
        "detections": n_found, "false_detections": n_false, "false_by_clip_kind": dict(false_by_clip_kind),
        "code_accuracy": float(np.mean(all_codes)) if all_codes else None,
        "code_accuracy_by_truth": {k: float(np.mean(v)) for k, v in sorted(codes.items())},
        "controls_coded_c": {k: float(np.mean(v)) for k, v in controls.items()},
    }


def evaluate_half(half: str, cache_dir: str | os.PathLike, params: SyncParams | None = None,
                  limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Render (or reuse from ``cache_dir``) every clip of ``half``, analyse it, and summarise."""
    from tqdm.auto import tqdm

    plans = plan_set(half)[:limit]
    items = []
    for plan in tqdm(plans, desc=f"sync-music {half}", unit="clip", disable=not progress):
        clip = render_clip(plan, Path(cache_dir) / half)
        items.append(score_clip(plan, clip["video"], params))
    return {"half": half, **summarize_clips(items), "items": items}


def table(results: list[dict[str, Any]]) -> str:
    """A markdown table: recall per kind, precision, code accuracy and controls coded C, one column per half."""
    head = "| | " + " | ".join(r["half"] for r in results) + " |\n|---|" + "---|" * len(results) + "\n"
    rows = []
    for k in CHANGE_KINDS:
        rows.append(f"| recall {k} | " + " | ".join(
            f"{r['recall'].get(k, float('nan')):.2f} ({r['n_changes'].get(k, 0)})" for r in results) + " |")

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    found = (f"{fmt(r['precision'])} ({r['detections']} found)" for r in results)
    rows.append("| precision | " + " | ".join(found) + " |")
    rows.append("| code accuracy A/B/C | " + " | ".join(fmt(r["code_accuracy"]) for r in results) + " |")
    for code in "ABC":
        rows.append(f"| accuracy, truth {code} | " + " | ".join(fmt(r["code_accuracy_by_truth"].get(code))
                                                               for r in results) + " |")
    for k in CONTROL_KINDS:
        rows.append(f"| control {k} coded C | " + " | ".join(fmt(r["controls_coded_c"].get(k)) for r in results) + " |")
    return head + "\n".join(rows) + "\n"
