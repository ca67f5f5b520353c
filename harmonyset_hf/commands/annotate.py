"""`harmonyset annotate <step>`: the paper's human-machine annotation framework (harmonyset_hf.annotation)."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from . import add_media_budget_args, add_timeout_arg


def _llm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name (default: $HARMONYSET_ANNOTATOR_MODEL)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $HARMONYSET_ANNOTATOR_BASE_URL, "
                                      "then $OPENAI_BASE_URL); the key only from $HARMONYSET_ANNOTATOR_API_KEY "
                                      "or $OPENAI_API_KEY")
    p.add_argument("--concurrency", type=int, default=None, help="parallel calls (default 8)")
    p.add_argument("--max-attempts", type=int, default=3, help="asks per item when replies are invalid (default 3)")
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--cache-dir", help="LLM reply cache (default: $HARMONYSET_CACHE_DIR/llm)")
    add_timeout_arg(p)


def register(cli) -> None:
    """Add `annotate consensus|review|describe|instruct|mc|filter`."""
    p = cli.command("consensus", group="annotate", run=_consensus,
                    help="annotators.csv -> majority labels, merged sync points, agreement (Fleiss' kappa), "
                         "review queue")
    p.add_argument("--input", required=True, help="annotators.csv (id, annotator, sync, 9 sub-aspects)")
    p.add_argument("--out", required=True, help="folder for consensus.jsonl, review.csv, agreement.json")
    p.add_argument("--raters", type=int, default=3, help="ratings per item (default 3; majority = more than half)")
    p.add_argument("--tolerance", type=float, default=2.0,
                   help="seconds within which raters' sync points are one point (default 2)")

    p = cli.command("review", group="annotate", run=_review,
                    help="export a reviewer sheet, or apply a filled one (fixes + Low/Medium/High rating, Table 3)")
    p.add_argument("--consensus", required=True, help="consensus.jsonl from `annotate consensus`")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--export", metavar="SHEET", help="write the reviewer sheet (CSV) here")
    mode.add_argument("--apply", metavar="SHEET", help="read this filled sheet back")
    p.add_argument("--queue-only", action="store_true", help="export only the items in the review queue")
    p.add_argument("--out", help="with --apply: folder for reviewed.jsonl and review_summary.json")

    p = cli.command("describe", group="annotate", run=_describe,
                    help="the paper's annotation-generation prompt + human tags + metadata + clip -> an MLLM")
    p.add_argument("--consensus", required=True, help="consensus.jsonl or reviewed.jsonl")
    p.add_argument("--metadata", action="append", required=True,
                   help="metadata file(s): release JSON, or JSON Lines (e.g. the filter's output); repeatable")
    p.add_argument("--videos", required=True, help="folder of the videos")
    p.add_argument("--out", required=True, help="annotations.jsonl (appended; a rerun resumes)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--no-audio", action="store_true", help="send the frames only (endpoints without audio input)")
    p.add_argument("--batch-size", type=int, default=32, help="clips loaded and written per batch (default 32)")
    p.add_argument("--media-workers", type=int, default=4, help="threads decoding clips (default 4)")
    p.add_argument("--dry-run", action="store_true", help="print the requests (media abbreviated); send nothing")
    p.add_argument("--limit", type=int, default=None, help="only the first N items (with --dry-run default 2)")
    add_media_budget_args(p)
    _llm_args(p)

    p = cli.command("instruct", group="annotate", run=_instruct,
                    help="annotations + one of the paper's instruction templates (seeded) -> release JSON")
    p.add_argument("--annotations", required=True, help="annotations.jsonl from `annotate describe`")
    p.add_argument("--consensus", required=True, help="consensus.jsonl or reviewed.jsonl (labels, sync)")
    p.add_argument("--metadata", action="append", required=True, help="metadata file(s), as for describe")
    p.add_argument("--out", required=True, help="release folder for HarmonySet_Train.json / HarmonySet_Test.json")
    p.add_argument("--seed", type=int, default=0, help="template choice seed (default 0)")
    p.add_argument("--test-ids", help="file of ids (JSON list or one per line) that go to HarmonySet_Test.json")

    p = cli.command("mc", group="annotate", run=_mc,
                    help="the paper's MC curation prompt -> validated, re-balanced HarmonySet_MC.json")
    p.add_argument("--annotations", required=True, help="annotations.jsonl, or a release JSON (e.g. the test file)")
    p.add_argument("--metadata", action="append", default=[], help="metadata file(s) for the video references")
    p.add_argument("--ids", help="only these ids (JSON list or one per line), e.g. the test split")
    p.add_argument("--out", required=True, help="release folder for HarmonySet_MC.json (+ manifests/mc.json)")
    p.add_argument("--seed", type=int, default=0, help="answer re-balancing seed (default 0)")
    p.add_argument("--length-tolerance", type=float, default=0.5,
                   help="each option's length within this fraction of the correct option's (default 0.5)")
    p.add_argument("--min-similarity", type=float, default=0.6,
                   help="min MiniLM cosine of the correct option to its annotation section (default 0.6)")
    p.add_argument("--no-faithfulness", action="store_true", help="skip the embedding check")
    _llm_args(p)

    p = cli.command("filter", group="annotate", run=_filter,
                    help="music-presence screen: AudioSet tags, kept when Music is in the top 2, top-10 audio_labels")
    p.add_argument("--videos", required=True, help="folder of videos to screen")
    p.add_argument("--out", required=True, help="JSON Lines output (appended; a rerun resumes)")
    p.add_argument("--model", default=None, help="transformers audio classifier with AudioSet labels "
                                                 "(default MIT/ast-finetuned-audioset-10-10-0.4593)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--top-k", type=int, default=10, help="labels stored as audio_labels (default 10)")
    p.add_argument("--keep-rank", type=int, default=2, help="keep when Music ranks at most this (default 2)")
    add_media_budget_args(p)


def _print(summary: dict) -> None:
    print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))


def _consensus(args: argparse.Namespace) -> int:
    from ..annotation.consensus import run_consensus

    s = run_consensus(args.input, args.out, raters=args.raters, tolerance=args.tolerance)
    subs = s["agreement"]["sub_aspects"]
    for name, a in subs.items():
        kappa = "n/a" if a["fleiss_kappa"] is None else f"{a['fleiss_kappa']:.3f}"
        print(f"  {name:<22} kappa {kappa:>6}  unanimous {a['unanimous']:.0%}  majority {a['majority']:.0%}  "
              f"review {a['review']:.0%}")
    print(f"consensus of {s['items']} item(s) from {s['rows']} row(s): {s['to_review']} to review; "
          f"written to {s['out_dir']}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from ..annotation import review

    if args.export:
        n = review.export_sheet(args.consensus, args.export, queue_only=args.queue_only)
        print(f"reviewer sheet with {n} row(s) written to {args.export}: fill 'rating' (Low/Medium/High), fix any "
              "cell, fill the empty (no-majority) ones; then `harmonyset annotate review --apply`")
        return 0
    if not args.out:
        raise ConfigError("--apply needs --out (the folder for reviewed.jsonl and review_summary.json)")
    s = review.apply_sheet(args.consensus, args.apply, args.out)
    t = s["table3"]
    shares = ", ".join(f"{r} {t['shares'][r]:.0%}" if t["shares"][r] is not None else f"{r} n/a"
                       for r in review.RATINGS)
    print(f"reviewed {s['reviewed']} item(s), {s['items_fixed']} fixed; consensus rating over {t['rated']} rated: "
          f"{shares} (paper: Low 3%, Medium 5%, High 92%); written to {args.out}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from ..annotation import describe as d
    from ..llm import LLMClient

    records = d.read_consensus(args.consensus)
    metas = d.read_metadata_files(args.metadata)
    if args.dry_run:  # no endpoint needed: a placeholder key, nothing is sent
        client = LLMClient(model=args.model, default_model="unset-model",  # else $HARMONYSET_ANNOTATOR_MODEL
                           base_url=args.base_url or "http://127.0.0.1:9/v1",
                           api_key="dry-run", env_prefix=d.ENV_PREFIX, cache_dir=args.cache_dir)
    else:
        d.check_endpoint_config(args.model)
        client = LLMClient(model=args.model, base_url=args.base_url, env_prefix=d.ENV_PREFIX, cache_dir=args.cache_dir,
                           concurrency=args.concurrency, deadline=args.timeout)
    describer = d.Describer(client, frames=args.frames, audio=not args.no_audio, temperature=args.temperature,
                            max_tokens=args.max_tokens, max_attempts=args.max_attempts, concurrency=args.concurrency,
                            batch_size=args.batch_size, media_workers=args.media_workers)
    todo, skipped = describer.plan(records, metas, args.videos)
    for s in skipped:  # on stderr: stdout of --dry-run stays one JSON document
        print(f"skipped {s['id']}: {s['error']}", file=sys.stderr)
    if args.limit is not None or args.dry_run:
        todo = todo[: args.limit if args.limit is not None else 2]
    try:
        if args.dry_run:
            print(d.dumps_dry_run(describer.dry_run(todo, limit=len(todo))))
            return 0
        s = describer.run(todo, args.out)
    finally:
        client.close()
    print(f"described {s['written']} item(s) ({s['already_done']} already done, {s['reasked']} after a re-ask, "
          f"{s['failed']} failed, {len(skipped)} skipped); {s['usage']['calls']} call(s), "
          f"{s['usage']['cache_hits']} from cache; written to {args.out}")
    return 1 if s["failed"] else 0


def _instruct(args: argparse.Namespace) -> int:
    from ..annotation.instruct import read_ids, run_instruct

    test_ids = read_ids(args.test_ids) if args.test_ids else None
    m = run_instruct(args.annotations, args.consensus, args.metadata, args.out, seed=args.seed, test_ids=test_ids)
    print(f"instruction data: {m['counts']['train']} train, {m['counts']['test']} test item(s) "
          f"({len(m['skipped'])} skipped), templates drawn with seed {m['seed']}; written to {args.out}")
    return 0


def _mc(args: argparse.Namespace) -> int:
    from ..annotation import mc
    from ..annotation.describe import check_endpoint_config
    from ..annotation.instruct import read_ids
    from ..llm import LLMClient

    check_endpoint_config(args.model)
    items = mc.load_items(args.annotations, args.metadata, read_ids(args.ids) if args.ids else None)
    client = LLMClient(model=args.model, base_url=args.base_url, env_prefix=mc.ENV_PREFIX, cache_dir=args.cache_dir,
                       concurrency=args.concurrency, deadline=args.timeout)
    curator = mc.MCCurator(client,
                           temperature=args.temperature, max_tokens=args.max_tokens, max_attempts=args.max_attempts,
                           concurrency=args.concurrency, length_tolerance=args.length_tolerance,
                           min_similarity=args.min_similarity, check_faithfulness=not args.no_faithfulness)
    try:
        m = mc.run_mc(items, curator, args.out, seed=args.seed)
    finally:
        curator.client.close()
    print(f"MC: {m['questions']} question(s) for {m['items_with_questions']}/{m['items']} item(s), "
          f"{len(m['failures'])} failed; answer letters {m['answer_letters_before']} -> {m['answer_letters_after']} "
          f"(seed {m['seed']}); written to {m['file']}")
    return 1 if m["failures"] else 0


def _filter(args: argparse.Namespace) -> int:
    from ..annotation.music_filter import DEFAULT_MODEL, MusicFilter, list_videos

    videos = list_videos(args.videos)
    if not videos:
        raise ConfigError(f"no videos under {args.videos}")
    screen = MusicFilter(args.model or DEFAULT_MODEL, device=args.device, top_k=args.top_k, keep_rank=args.keep_rank)
    s = screen.screen(videos, args.out)
    print(f"music filter: {s['kept']} kept, {s['dropped']} dropped, {s['failed']} failed of {s['videos']} video(s) "
          f"({s['already_done']} already done; Music in the top {s['keep_rank']}); written to {args.out}")
    return 1 if s["failed"] else 0
