"""`harmonyset demo`: the whole main job on HarmonySet-mini, offline, in a few minutes on a CPU.

HarmonySet-mini (real mp4 files with music) -> Hub folder -> ``load_dataset`` -> predictions of
the GPU-free baselines (MC with the 4 option rotations, OE) -> MC accuracy and OE scores from the
offline proxy judge -> signal-level synchronization checked against the human sync codes (beyond
the paper) -> the paper's tables side by side with the paper's own numbers, and charts.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .data.hub import build_hub
from .errors import HarmonySetError
from .evaluation import evaluate_mc, evaluate_oe, read_predictions, summary_line, write_results
from .evaluation.predict import load_split, run_predictions
from .evaluation.report import write_report
from .judge import make_judge
from .mini.sample import make_sample
from .models import get_model
from .sync.evaluate import evaluate_sync
from .sync.evaluate import summary_line as sync_summary

MC_BASELINES = ("baseline-random", "baseline-longest")
DEMO_MARKER = ".harmonyset-demo"  # written into every demo folder: the only ones whose parts a rerun removes
DEMO_PARTS = ("HarmonySet-mini", "hub", "predictions", "results", "sync", "report")
OE_BASELINES = ("baseline-generic",)


def _step(log: Callable[[str], None], number: int, total: int, text: str) -> float:
    log(f"[{number}/{total}] {text}")
    return time.perf_counter()


def run_demo(out_dir: str | os.PathLike, n: int = 24, seed: int = 0, judge: str = "embedding",
             log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Run sample -> build -> load -> predict -> eval -> report into ``out_dir``; returns a summary."""
    started = time.perf_counter()
    out = Path(out_dir)
    mini, hub = out / "HarmonySet-mini", out / "hub" / "HarmonySet-mini"
    # A demo run starts clean (stale predictions of an older sample would be skipped as "done"), but only in a
    # folder the demo made: never remove a `results/` or `report/` of the user's.
    if out.is_dir() and not (out / DEMO_MARKER).is_file() and any((out / sub).exists() for sub in DEMO_PARTS):
        raise HarmonySetError(f"{out} is not a demo folder (no {DEMO_MARKER}) but holds "
                              f"{', '.join(s for s in DEMO_PARTS if (out / s).exists())}: give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("harmonyset demo\n", encoding="utf-8")
    for sub in DEMO_PARTS:
        shutil.rmtree(out / sub, ignore_errors=True)
    total = 7
    times: dict[str, float] = {}

    t = _step(log, 1, total, f"HarmonySet-mini: {n} synthetic video-music pairs with real media -> {mini}")
    make_sample(mini, n=n, seed=seed, progress=progress)
    times["sample"] = time.perf_counter() - t

    t = _step(log, 2, total, f"build the Hub folder -> {hub}")
    build = build_hub(release_dir=mini / "release", videos_dir=mini / "videos", out_dir=hub)
    log(f"    configs: {', '.join(f'{c} {k}' for c, k in build['counts'].items())}")
    times["build"] = time.perf_counter() - t

    t = _step(log, 3, total, "load_dataset(hub, 'mc' | 'oe')")
    rows = {cfg: load_split(hub, cfg) for cfg in ("mc", "oe")}
    log(f"    mc: {len(rows['mc'])} questions, oe: {len(rows['oe'])} items")
    times["load"] = time.perf_counter() - t

    t = _step(log, 4, total, "predict with the GPU-free baselines")
    predictions: dict[str, tuple[str, Path]] = {}
    for name, cfg in [*((m, "mc") for m in MC_BASELINES), *((m, "oe") for m in OE_BASELINES)]:
        path = out / "predictions" / f"{cfg}_{name}.jsonl"
        model = get_model(name, seed=seed)
        summary = run_predictions(model, rows[cfg], cfg, path, circular=cfg == "mc", meta={"seed": seed},
                                  progress=progress)
        log(f"    {summary.line()}")
        predictions[name] = (cfg, path)
    times["predict"] = time.perf_counter() - t

    t = _step(log, 5, total, f"evaluate (MC accuracy with 4-way circular check; OE with the '{judge}' judge)")

    result_dirs = []
    scorer = make_judge(judge)
    try:
        for name, (cfg, path) in predictions.items():
            responses, facts = read_predictions(path, cfg)
            if cfg == "mc":
                results, items = evaluate_mc(rows["mc"], responses, circular=True, model=name)
            else:
                results, items = evaluate_oe(rows["oe"], responses, scorer, model=name)
            results.update(predictions=facts, data=str(hub))
            result_dirs.append(write_results(out / "results" / f"{cfg}_{name}", results, items).parent)
            log(f"    {summary_line(results)}")
    finally:
        scorer.close()
    times["evaluate"] = time.perf_counter() - t

    t = _step(log, 6, total, "signal-level sync: visual cuts vs musical changes, against the human sync codes")

    sync = evaluate_sync(hub, out / "sync", configs=("oe",), progress=progress, resume=False)
    log(f"    {sync_summary(sync)}")
    times["sync"] = time.perf_counter() - t

    t = _step(log, 7, total, f"report (with the paper's numbers) -> {out / 'report'}")
    report = write_report(result_dirs, out / "report", paper=True)
    log("")
    log(report["summary"])
    times["report"] = time.perf_counter() - t

    elapsed = time.perf_counter() - started
    log(f"demo done in {elapsed:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in times.items())}): "
        f"{n} pairs, {len(rows['mc'])} MC questions, {len(rows['oe'])} OE items, {len(predictions)} models; "
        f"report in {out / 'report' / 'report.md'}")
    return {"out": out, "hub": hub, "results": result_dirs, "sync": sync, "report": report["files"],
            "seconds": elapsed, "times": times}
