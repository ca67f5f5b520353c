"""`harmonyset sample`: make HarmonySet-mini, a small synthetic release with real media."""

from __future__ import annotations

import argparse

from . import positive_int


def register(cli) -> None:
    """Add the `sample` verb."""
    p = cli.command("sample", help="make HarmonySet-mini: synthetic videos with planted music/cut sync + release files",
                    run=_run)
    p.add_argument("--out", required=True, help="output folder (videos/, release/, truth.json)")
    p.add_argument("--n", type=int, default=24, help="number of items (a third go to the test split; default 24)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    p.add_argument("--workers", type=positive_int, default=None, help="render processes (default: up to 2)")


def _run(args: argparse.Namespace) -> int:
    from ..mini.sample import make_sample

    s = make_sample(args.out, n=args.n, seed=args.seed, workers=args.workers)
    print(f"HarmonySet-mini in {s['out_dir']}: {s['n_items']} videos ({s['n_train']} train, {s['n_test']} test; "
          f"{s['n_with_key_points']} with key points, {s['n_longer_than_30s']} longer than 30 s), "
          f"{s['total_duration_s']:.0f} s of video, {s['n_mc_questions']} MC questions, "
          f"{s['n_annotator_rows']} annotator rows; made in {s['seconds']:.1f} s")
    for name, path in s["paths"].items():
        print(f"  {name:<10} {path}")
    return 0
