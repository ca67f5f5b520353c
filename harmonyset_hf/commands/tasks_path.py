"""`harmonyset tasks-path lm-eval|lmms-eval`: the installed task folder, for the harnesses' --include_path."""

from __future__ import annotations

import argparse

from ..harness.task_folders import HARNESSES


def register(cli) -> None:
    """Add `tasks-path` to the CLI."""
    p = cli.command(
        "tasks-path", run=_run,
        help="print the installed lm-eval or lmms-eval task folder (for --include_path)",
        description=(
            "Print the folder that holds HarmonySet's task YAMLs for one harness, as installed with\n"
            "the package (no checkout needed). For example:\n"
            '  lmms-eval --include_path "$(harmonyset tasks-path lmms-eval)" --tasks harmonyset_mc ...\n'
            "harmonyset-lm-eval adds its folder by itself when --include_path is not given."),
    )
    p.add_argument("harness", choices=sorted({k for k in HARNESSES if "-" in k}),
                   help="which harness the folder is for")


def _run(args: argparse.Namespace) -> int:
    from ..harness.task_folders import task_folder

    print(task_folder(args.harness))
    return 0
