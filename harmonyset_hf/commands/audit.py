"""`harmonyset audit mc|judge|agreement`: how far HarmonySet's numbers can be trusted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import check_folder_path
from . import add_timeout_arg


def register(cli) -> None:
    """Add `audit mc`, `audit judge` and `audit agreement`."""
    mc = cli.command("mc", group="audit", run=_run_mc,
                     help="blind MC baselines (random, longest, shortest, centroid, text-only LLM) vs chance, "
                          "answer-letter balance and option lengths")
    mc.add_argument("--data", required=True, help="Hub folder or repo id (as for load_dataset)")
    mc.add_argument("--out", required=True, help="output folder for results.json, items.jsonl, summary.md")
    mc.add_argument("--limit", type=int, default=None, help="only the first N questions")
    mc.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    mc.add_argument("--no-centroid", action="store_true", help="skip the embedding-centroid baseline")
    mc.add_argument("--llm", action="store_true", help="also ask a text-only LLM (question + options only)")
    mc.add_argument("--llm-model", default=None, help="its model (or $HARMONYSET_AUDIT_LLM_MODEL)")
    mc.add_argument("--llm-base-url", default=None,
                    help="its OpenAI-compatible base URL (or $HARMONYSET_AUDIT_LLM_BASE_URL)")
    mc.add_argument("--concurrency", type=int, default=None, help="parallel LLM calls")
    mc.add_argument("--cache", default=None, help="LLM reply cache folder (default: the user cache)")
    add_timeout_arg(mc)

    judge = cli.command("judge", group="audit", run=_run_judge,
                        help="adversarial OE responses (injections, empty, copied/other references, padding) "
                             "vs an honest baseline: how far each moves the judge's scores")
    judge.add_argument("--data", required=True, help="Hub folder or repo id (as for load_dataset)")
    judge.add_argument("--out", required=True, help="output folder for results.json, items.jsonl, summary.md")
    judge.add_argument("--judge", default="openai", choices=["openai", "embedding"], help="the judge to audit")
    judge.add_argument("--judge-mode", default="paper", choices=["paper", "hardened"],
                       help="prompt of the openai judge: paper (Fig. 13 verbatim) or hardened (response fenced)")
    judge.add_argument("--judge-model", default=None, help="judge model (default: the judge's own default)")
    judge.add_argument("--judge-base-url", default=None, help="OpenAI-compatible base URL of the judge")
    judge.add_argument("--limit", type=int, default=100,
                       help="items to attack (default 100: 9 judge calls each; 0 = the whole split)")
    judge.add_argument("--moved-threshold", type=float, default=1.0,
                       help="a score change of at least this many points counts as moved (default 1)")
    judge.add_argument("--concurrency", type=int, default=None, help="parallel judge calls")
    judge.add_argument("--cache", default=None, help="judge reply cache folder (default: the user cache)")
    add_timeout_arg(judge)

    agree = cli.command("agreement", group="audit", run=_run_agreement,
                        help="agreement per aspect of two eval-oe runs (Krippendorff's alpha, Pearson, Spearman, "
                             "mean absolute difference)")
    agree.add_argument("--items", nargs=2, required=True, metavar=("A", "B"),
                       help="two items.jsonl files (or their eval-oe output folders)")
    agree.add_argument("--out", default=None, help="output folder for results.json and summary.md")


def _write(out: str, results: dict, items: list[dict] | None, markdown: str) -> Path:
    from ..io import atomic_write_json, atomic_write_text, write_jsonl

    out_dir = Path(out)
    if items is not None:
        write_jsonl(out_dir / "items.jsonl", items)
    atomic_write_text(out_dir / "summary.md", markdown)
    return atomic_write_json(out_dir / "results.json", results)


def _run_mc(args: argparse.Namespace) -> int:
    from ..audit.mc_bias import AUDIT_LLM_ENV, BLIND_BASELINES, audit_mc, mc_audit_markdown
    from ..errors import ConfigError
    from ..evaluation.predict import load_split

    check_folder_path(args.out)  # before any call is paid for: a --out that names a file is a one-line error

    client = None
    if args.llm:  # built before the data is loaded, so that a missing model or key fails at once
        from ..llm import LLMClient

        client = LLMClient(model=args.llm_model, base_url=args.llm_base_url, env_prefix=AUDIT_LLM_ENV,
                           cache_dir=args.cache, concurrency=args.concurrency, deadline=args.timeout)
    try:
        if args.limit is not None and args.limit < 0:
            raise ConfigError(f"--limit must be >= 0, got {args.limit}")
        rows = load_split(args.data, "mc", limit=args.limit)
        baselines = [b for b in BLIND_BASELINES if not (args.no_centroid and b == "centroid")]
        results, items = audit_mc(rows, baselines=baselines, seed=args.seed, llm_client=client,
                                  concurrency=args.concurrency)
    finally:
        if client is not None:
            client.close()
    results["data"] = str(args.data)
    path = _write(args.out, results, items, mc_audit_markdown(results))
    flags = ", ".join(f"{f['baseline']}/{f['aspect']}" for f in results["flags"]) or "none"
    p = results["letters"]["overall"]["p_value"]
    p_text = "n/a" if p is None else f"{p:.3g}"
    print(f"audit mc: {results['questions']} questions, {len(results['baselines'])} blind baselines; "
          f"above chance: {flags}; answer letters chi-square p={p_text}; "
          f"correct option longest {100 * results['lengths']['overall'].get('correct_is_longest', 0):.1f}%")
    print(f"wrote {path}, {path.parent / 'items.jsonl'} and {path.parent / 'summary.md'}")
    failed = {name: b["failed"] for name, b in results["baselines"].items() if b.get("failed")}
    if failed:  # an unreachable LLM would otherwise read as a blind baseline with no cue to find
        print("audit mc: " + "; ".join(f"{name} failed on {n} of {results['questions']} question(s)"
                                       for name, n in failed.items())
              + " (endpoint unreachable or replies unusable?): its accuracy covers the answered ones only",
              file=sys.stderr)
        return 1
    return 0


def _run_judge(args: argparse.Namespace) -> int:
    from ..audit.judge_robustness import audit_judge, judge_audit_markdown
    from ..errors import ConfigError
    from ..evaluation.predict import load_split
    from ..judge import JudgeConfig

    check_folder_path(args.out)

    judge = JudgeConfig.from_args(args).build()
    try:
        if args.limit < 0:
            raise ConfigError(f"--limit must be >= 0 (0: every item), got {args.limit}")
        rows = load_split(args.data, "oe", limit=args.limit or None)
        results, items = audit_judge(rows, judge, moved_threshold=args.moved_threshold,
                                     concurrency=args.concurrency)
    finally:
        judge.close()
    results["data"] = str(args.data)
    path = _write(args.out, results, items, judge_audit_markdown(results))
    weak = ", ".join(f"{w['attack']} ({w['verdict']})" for w in results["weaknesses"]) or "none"
    print(f"audit judge: {results['items']} items x {len(results['attacks'])} responses, "
          f"{results['failed']} failed; weaknesses: {weak}; {results['flagged_by_detector']} responses flagged")
    print(f"wrote {path}, {path.parent / 'items.jsonl'} and {path.parent / 'summary.md'}")
    return 0


def _run_agreement(args: argparse.Namespace) -> int:
    from ..audit.agreement import agreement_markdown, judge_agreement
    from ..io import package_versions

    results = judge_agreement(*args.items)
    markdown = agreement_markdown(results)
    print(markdown)
    if args.out:
        results["package_versions"] = package_versions()
        path = _write(args.out, results, None, markdown)
        print(f"wrote {path} and {path.parent / 'summary.md'}")
    alphas = "/".join("n/a" if results["aspects"][a]["krippendorff_alpha"] is None
                      else f"{results['aspects'][a]['krippendorff_alpha']:.2f}"
                      for a in ("rhythm", "theme", "emotion", "culture"))
    print(f"audit agreement: {results['joined']} items joined; alpha R&S/T/E/C {alphas}")
    return 0
