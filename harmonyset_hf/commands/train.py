"""`harmonyset train`: fine-tune Qwen2.5-Omni on HarmonySet's instruct data (one process; see harmonyset_hf.train)."""

from __future__ import annotations

import argparse

from . import add_media_budget_args

EPILOG = """\
This runs one process. For several GPUs or processes use accelerate (or torchrun) on the module:
  accelerate launch --config_file configs/accelerate/ddp.yaml -m harmonyset_hf.train --config RECIPE
  ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 -m harmonyset_hf.train --config RECIPE
"""


def register(cli) -> None:
    """Add the `train` verb."""
    p = cli.command("train", help="fine-tune Qwen2.5-Omni (LoRA or full) on the instruct config", run=_run,
                    description=__doc__.split("\n")[0].split(": ", 1)[1])
    p.epilog = EPILOG
    p.add_argument("--config", help="YAML recipe (configs/train/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable), e.g. --set lr=2e-4 --set resume=auto")
    add_media_budget_args(p)


def _run(args: argparse.Namespace) -> int:
    from ..train import train
    from ..train.config import load_config

    summary = train(load_config(args.config, args.overrides))
    return 0 if summary["finished"] or summary["step"] > 0 else 1
