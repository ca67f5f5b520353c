"""`harmonyset eval mc` and `harmonyset eval oe`: score predictions, write results.json + items.jsonl."""

from __future__ import annotations

import argparse
import sys

from ..io import check_folder_path
from . import add_timeout_arg, positive_int


def register(cli) -> None:
    """Add `eval mc` and `eval oe`."""
    mc = cli.command("mc", group="eval", run=_run_mc,
                     help="accuracy per aspect of HarmonySet-MC predictions (CI, invalid rate, chance)")
    _common(mc)
    mc.add_argument("--circular", action="store_true",
                    help="also score the 4 option rotations (#r0-#r3): correct only if right every time")
    mc.add_argument("--extractor", default="rules", choices=["rules", "llm"],
                    help="rules: read letters by rule only (default); llm: an LLM (--extractor-model, through the "
                         "judge's endpoint settings, cached) also reads the replies the rules call invalid, "
                         "counted apart in the results")
    mc.add_argument("--extractor-model", default=None, help="model of the LLM extractor (default: the judge's model)")
    mc.add_argument("--extractor-base-url", default=None, help="OpenAI-compatible base URL of the LLM extractor")
    mc.add_argument("--cache", default=None, help="LLM extractor reply cache folder (default: the user cache)")
    oe = cli.command("oe", group="eval", run=_run_oe,
                     help="judge HarmonySet-OE predictions (1-10 per aspect), per category and Overall")
    _common(oe)
    oe.add_argument("--judge", default="openai", choices=["openai", "embedding"],
                    help="openai: the paper's GPT-4o judge prompt on any OpenAI-compatible server; "
                         "embedding: an offline proxy (not comparable with the paper)")
    oe.add_argument("--judge-mode", default="paper", choices=["paper", "hardened"],
                    help="paper: Fig. 13 verbatim (default, comparable with the paper); hardened: the same "
                         "instructions with the response fenced as data, so instructions inside it are not obeyed")
    oe.add_argument("--judge-model", default=None, help="judge model (default: the judge's own default)")
    oe.add_argument("--judge-base-url", default=None, help="OpenAI-compatible base URL of the judge")
    oe.add_argument("--concurrency", type=positive_int, default=None, help="parallel judge calls")
    oe.add_argument("--cache", default=None, help="judge reply cache folder (default: the user cache)")
    add_timeout_arg(oe)


def finish(args: argparse.Namespace, results: dict, items: list, facts: dict) -> int:
    """Record where predictions and data came from, write results.json + items.jsonl, print the summary."""
    from ..evaluation import summary_line, write_results

    results["predictions"] = facts
    results["data"] = str(args.data)
    path = write_results(args.out, results, items)
    print(summary_line(results))
    print(f"wrote {path} and {path.parent / 'items.jsonl'}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="Hub folder or repo id (as for load_dataset)")
    p.add_argument("--predictions", required=True, help="predictions .jsonl")
    p.add_argument("--out", required=True, help="output folder for results.json and items.jsonl")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N rows of the split")


def _run_mc(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_mc, read_predictions
    from ..evaluation.predict import load_split

    check_folder_path(args.out)  # before any work: a --out that names a file is a one-line error

    predictions, facts = read_predictions(args.predictions, "mc")
    every = load_split(args.data, "mc")
    rows = every[:args.limit] if args.limit is not None else every
    extractor = None
    if args.extractor == "llm":
        from ..judge import DEFAULT_JUDGE_MODEL
        from ..llm import LLMClient

        extractor = LLMClient(model=args.extractor_model, base_url=args.extractor_base_url, cache_dir=args.cache,
                              default_model=DEFAULT_JUDGE_MODEL)
    try:
        results, items = evaluate_mc(rows, predictions, circular=args.circular, model=facts["model"],
                                     known_ids=[r["question_id"] for r in every], extractor=extractor)
    finally:
        if extractor is not None:
            extractor.close()
    return finish(args, results, items, facts)


def _run_oe(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_oe, read_predictions
    from ..evaluation.predict import load_split
    from ..judge import JudgeConfig

    check_folder_path(args.out)  # before a judge call is paid for: a --out that names a file is a one-line error

    predictions, facts = read_predictions(args.predictions, "oe")
    # Built before the data is loaded, so that a missing key or model fails at once.
    judge = JudgeConfig.from_args(args).build()
    try:
        every = load_split(args.data, "oe")
        rows = every[:args.limit] if args.limit is not None else every
        results, items = evaluate_oe(rows, predictions, judge, model=facts["model"],
                                     known_ids=[r["id"] for r in every])
    finally:
        judge.close()
    finish(args, results, items, facts)
    counts = results["counts"]
    if counts["failed"] and not counts["scored"]:  # e.g. the judge server was down: not a result to report
        print(f"harmonyset: error: the judge scored none of the {counts['failed']} item(s) (see the warnings "
              "above); fix the judge and rerun: replies already received are reused", file=sys.stderr)
        return 1
    return 0
