"""`harmonyset demo`: the main job end to end on HarmonySet-mini, offline (what `make demo` runs)."""

from __future__ import annotations

import argparse


def register(cli) -> None:
    """Add the `demo` verb."""
    p = cli.command("demo", run=_run,
                    help="HarmonySet-mini -> Hub folder -> load_dataset -> baselines -> eval MC/OE -> sync -> report")
    p.add_argument("--out", default="demo_out", help="output folder (recreated parts: data, predictions, report)")
    p.add_argument("--n", type=int, default=24, help="video-music pairs in HarmonySet-mini")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge", default="embedding", choices=["embedding", "openai"],
                   help="OE judge: the offline proxy (default) or the paper's judge on an OpenAI-compatible server")


def _run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.out, n=args.n, seed=args.seed, judge=args.judge)
    return 0
