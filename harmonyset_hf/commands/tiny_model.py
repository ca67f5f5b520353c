"""`harmonyset tiny-model`: write a tiny random-weight Qwen2.5-Omni thinker for offline tests and dry runs."""

from __future__ import annotations

import argparse


def register(cli) -> None:
    """Add the `tiny-model` verb."""
    p = cli.command("tiny-model", run=_run,
                    help="write a tiny random-weight Qwen2.5-Omni thinker (+ tokenizer, processor) to a folder")
    p.add_argument("--out", required=True, help="output folder (loads with from_pretrained / load_processor)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def _run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ..errors import HarmonySetError
    from ..models.tiny import build_tiny_model, describe, is_tiny_dir

    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not is_tiny_dir(out):
        raise HarmonySetError(f"{out} is not empty and holds no tiny model: choose a new folder")
    start = time.perf_counter()
    out = build_tiny_model(args.out, seed=args.seed)
    info = describe(out)
    print(f"tiny Qwen2.5-Omni thinker ({info['parameters']:,} parameters, vocab {info['vocab_size']}) "
          f"written to {out} in {time.perf_counter() - start:.1f} s; use --model tiny --model-args path={out}")
    return 0
