"""`harmonyset derive swap` and `harmonyset eval pair`: the swap variant and its scoring."""

from __future__ import annotations

import argparse

from . import positive_int


def register(cli) -> None:
    """Add `derive swap` and `eval pair`."""
    p = cli.command("swap", group="derive", run=_run_swap,
                    help="each test video twice: with its own music and with another item's (the pair task)")
    p.add_argument("--data", required=True, help="Hub folder or repo id with the oe config (as for load_dataset)")
    p.add_argument("--out", required=True, help="the derived Hub folder to write (replaced atomically)")
    p.add_argument("--seed", type=int, default=0, help="seed of who gets whose music")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N test items")

    p = cli.command("pair", group="eval", run=_run_pair,
                    help="swap pairs: share of items whose original music is rated higher (ties half; chance 50%%)")
    p.add_argument("--data", required=True, help="a folder made by `harmonyset derive swap`")
    p.add_argument("--predictions", required=True, help="predictions .jsonl of `harmonyset predict --config pair`")
    p.add_argument("--out", required=True, help="output folder for results.json and items.jsonl")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N items")


def _run_swap(args: argparse.Namespace) -> int:
    from ..sync.swap import derive_swap

    report = derive_swap(args.data, args.out, seed=args.seed, limit=args.limit)
    fits = ", ".join(f"{k} {v}" for k, v in sorted(report["music_fit"].items()))
    for problem in report["skipped"][:20]:
        print(f"  skipped {problem['id']}: {problem['reason']}")
    print(f"derived {args.out}: {report['items']} items x 2 versions ({report['rows']} rows; music {fits}); "
          f"{report['same_category_pairs']} same-category pairs; {len(report['skipped'])} items skipped; "
          f"{report['seconds']} s")
    return 0


def _run_pair(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_pair, read_predictions
    from ..evaluation.predict import load_split
    from .evaluate import finish

    predictions, facts = read_predictions(args.predictions, "pair")
    every = load_split(args.data, "pair")
    rows = load_split(args.data, "pair", limit=args.limit) if args.limit is not None else every
    results, items = evaluate_pair(rows, predictions, model=facts["model"], known_ids=[r["id"] for r in every])
    return finish(args, results, items, facts)
