"""`harmonyset predict`: run a model over HarmonySet-MC/OE and write resumable predictions."""

from __future__ import annotations

import argparse

from ..distributed import DEFAULT_TIMEOUT_S, current_rank
from . import add_media_budget_args, positive_int


def register(cli) -> None:
    """Add the `predict` verb."""
    p = cli.command("predict", help="run a model over HarmonySet-MC, -OE or swap pairs; resumable predictions",
                    run=_run)
    p.add_argument("--data", required=True, help="Hub folder or repo id (as for load_dataset)")
    p.add_argument("--config", required=True, choices=["mc", "oe", "pair"],
                   help="pair: the 1-10 music-fit rating of each version in a `harmonyset derive swap` folder")
    from ..models import available_models

    p.add_argument("--model", required=True, help=f"a registered model: {', '.join(available_models())}")
    p.add_argument("--model-args", default="", help="adapter options, k=v,k2=v2")
    add_media_budget_args(p)
    p.add_argument("--out", required=True, help="predictions .jsonl (appended; ids already there are skipped)")
    p.add_argument("--videos", default=None,
                   help="folder of downloaded videos for an annotations-only --data (default $HARMONYSET_VIDEO_DIR); "
                        "items whose video is missing are skipped and counted")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N rows of the split")
    p.add_argument("--frames", type=positive_int, default=16, help="frames per clip for models that look at the video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--circular", action="store_true",
                   help="MC: also ask each question with its options rotated 4 ways (position bias)")
    p.add_argument("--rank-timeout", type=positive_int, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="under torchrun / accelerate launch: how long ranks wait for each other at the end "
                        "(each answers its share of the items into OUT.parts/, rank 0 merges them into OUT)")
    p.epilog = ("data-parallel: torchrun --nproc_per_node N -m harmonyset_hf.cli predict ... (or accelerate "
                "launch --num_processes N -m harmonyset_hf.cli predict ...); each rank uses cuda:LOCAL_RANK, "
                "or the CPU (gloo) without GPUs, and the result is the file a 1-process run writes")


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluation.predict import PredictError, check_model_config, load_split, predict_data_parallel
    from ..models import get_model, parse_model_args

    rank = current_rank()  # a bad launcher environment fails before the model loads
    if Path(args.out).is_dir():  # before a model that may take minutes to load
        raise PredictError(f"--out {args.out} is a folder; give a .jsonl file (e.g. {Path(args.out) / 'preds.jsonl'})")
    # --model-args may set seed/frames too (the README's `frames=16`): they win over the flags.
    options = {"seed": args.seed, "frames": args.frames, **parse_model_args(args.model_args)}
    model = get_model(args.model, **options)
    check_model_config(model, args.config)
    rows = load_split(args.data, args.config, media=model.needs_media, limit=args.limit,
                      video_dir=args.videos)
    summary = predict_data_parallel(model, rows, args.config, args.out, rank=rank, timeout_s=args.rank_timeout,
                                    batch_size=args.batch_size, circular=args.circular,
                                    meta={"seed": options["seed"], "frames": options["frames"]})
    if rank.is_main:
        for ident, error in list(summary.failed.items())[:10]:
            print(f"  failed {ident}: {error}")
        print(summary.line())
    return 1 if summary.failed else 0
