"""`harmonyset sync VIDEO` and `harmonyset eval sync`: signal-level synchronization of cuts and music."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from . import add_media_budget_args


def register(cli) -> None:
    """Add the sync verbs to the CLI."""
    p = cli.command("sync", help="measure visual cuts, musical changes and their alignment in one video",
                    run=_sync, description=(
                        "Detect visual cuts, musical changes (level, rhythm, accent), onsets and beats, match them, "
                        "and give each key timestamp an A/B/C code as HarmonySet's annotators would "
                        "(A: a change within tol_a s, B: within tol_b s, C: none)."))
    p.add_argument("video", help="an mp4 (or any file FFmpeg reads)")
    p.add_argument("--key-times", default=None,
                   help="key timestamps to code: seconds or mm:ss, comma-separated, or a sync string "
                        "'00:10,A; 00:20,B' (default: every detected cut)")
    p.add_argument("--json", action="store_true", help="print the whole analysis as JSON")
    _add_params(p)

    p = cli.command("sync", help="agreement of signal-level sync codes/scores with the human labels",
                    run=_eval, group="eval")
    p.add_argument("--data", required=True, help="a Hub folder or repo id (load_dataset) with sync_points and labels")
    p.add_argument("--out", required=True, help="folder for results.json, items.jsonl and sync.png")
    p.add_argument("--config", default="oe", choices=("oe", "instruct", "all"),
                   help="which rows: oe (test split), instruct (train split) or all")
    p.add_argument("--limit", type=int, default=None, help="only the first N clips")
    p.add_argument("--workers", type=int, default=1, help="analyse clips in this many processes (default 1)")
    p.add_argument("--videos", default=None,
                   help="folder of downloaded videos for an annotations-only --data (default $HARMONYSET_VIDEO_DIR); "
                        "clips whose video is missing are skipped and counted")
    p.add_argument("--no-resume", action="store_true",
                   help="analyse every clip again (default: reuse the items of an earlier run in --out "
                        "made with the same parameters)")
    _add_params(p)


def _add_params(p: argparse.ArgumentParser) -> None:
    add_media_budget_args(p)
    p.add_argument("--tol-a", type=float, default=None, help="seconds: nearest change this close -> A (0.35)")
    p.add_argument("--tol-b", type=float, default=None, help="seconds: ... this close -> B, else C (1.8)")
    p.add_argument("--fps", type=float, default=None, help="frames per second analysed for cuts (15)")
    p.add_argument("--change-threshold", type=float, default=None,
                   help="minimum change strength of a musical change (1.0: each group's bar, see sync_novelty)")


def _params(args: argparse.Namespace):
    from dataclasses import replace

    from ..sync import SyncParams

    given = {k: getattr(args, k) for k in ("tol_a", "tol_b", "fps", "change_threshold") if getattr(args, k) is not None}
    params = replace(SyncParams(), **given)
    if not 0 < params.tol_a <= params.tol_b:
        raise ConfigError(f"need 0 < --tol-a <= --tol-b (got {params.tol_a}, {params.tol_b})")
    return params


def _key_times(text: str | None) -> tuple[list[float] | None, list[str] | None]:
    if not text:
        return None, None
    from ..text import SyncFormatError, parse_sync, parse_timestamp

    if any(c.isalpha() for c in text):
        points = parse_sync(text)
        return [p.time for p in points] or None, [p.code for p in points] or None
    times = []
    for part in text.split(","):
        part = part.strip()
        try:
            times.append(parse_timestamp(part) if ":" in part else float(part))
        except ValueError as err:
            raise SyncFormatError(f"bad key time {part!r}: give seconds or mm:ss") from err
    return times, None


def _sync(args: argparse.Namespace) -> int:
    from ..sync import analyze

    key_times, human = _key_times(args.key_times)
    a = analyze(args.video, key_times=key_times, params=_params(args), human_codes=human)
    outside = [t for t in key_times or [] if not 0 <= t <= a.duration + 0.05]
    if outside:  # a slip (seconds for mm:ss, a clip mixed up) would be coded C without a word
        raise ConfigError(f"--key-times {', '.join(f'{t:g}' for t in outside)} s: outside the clip "
                          f"({args.video}: 0-{a.duration:.1f} s)")
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
        return 0
    print(f"{args.video}: {a.duration:.1f} s, tempo {a.tempo_bpm:.0f} BPM, {len(a.onsets)} onsets, "
          f"{len(a.beats)} beats")
    cuts = ", ".join(f"{c.time:.2f}" + ("~" if c.kind != "cut" else "") for c in a.cuts)
    print("cuts:           " + (cuts or "none") + ("  (~ gradual transition)" if "~" in cuts else ""))
    print("music changes:  " + (", ".join(f"{c.time:.2f} ({c.kind})" for c in a.music_changes) or "none"))
    for m in a.matches:
        print(f"match: cut {m.cut:.2f} <-> change {m.change:.2f} (offset {m.offset:+.2f} s, {m.code})")
    for k in a.key_points:
        near = "no change" if k.nearest_change is None else f"nearest change {k.nearest_change:.2f} ({k.offset:+.2f} s)"
        print(f"key {k.time:.2f}: {k.code}" + (f" (human {k.human})" if k.human else "") + f", {near}")
    score = "n/a (no cut)" if a.score is None else f"{a.score:.3f}"
    beat = "" if a.beat_hit_rate is None else f"; cuts on a beat {a.beat_hit_rate:.2f} (chance {a.beat_hit_chance:.2f})"
    print(f"alignment score {score}" + ("" if a.key_score is None else f", key score {a.key_score:.3f}") + beat)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..sync.evaluate import evaluate_sync, summary_line

    configs = ("oe", "instruct") if args.config == "all" else (args.config,)
    results = evaluate_sync(args.data, args.out, configs=configs, params=_params(args), limit=args.limit,
                            resume=not args.no_resume, workers=args.workers, video_dir=args.videos)
    print(summary_line(results))
    print(f"wrote {args.out}/results.json, items.jsonl, sync.png")
    return 0
