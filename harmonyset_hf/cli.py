"""`harmonyset`: the command line. Thin: it finds the verbs in ``harmonyset_hf.commands`` and runs one."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Callable

from . import __version__, commands
from .errors import HarmonySetError
from .io import install_log_masking, mask_secrets

# Verbs that take a second word (`harmonyset eval mc`, `harmonyset annotate consensus`, ...).
GROUPS = {
    "eval": "score predictions (mc, oe, sync, pair)",
    "export": "write HarmonySet in other formats",
    "annotate": "the human-machine annotation framework",
    "audit": "check how far the numbers can be trusted",
    "derive": "make derived datasets",
    "videos": "get the videos the release names (YouTube ids)",
}


class CLI:
    """The registry that command modules add their verbs to."""

    def __init__(self, parser: argparse.ArgumentParser):
        self._sub = parser.add_subparsers(dest="command", metavar="<command>")
        self._groups: dict[str, argparse._SubParsersAction] = {}
        for name, help_text in GROUPS.items():
            group = self._sub.add_parser(name, help=help_text, description=help_text)
            self._groups[name] = group.add_subparsers(dest="subcommand", metavar="<subcommand>")
            group.set_defaults(func=lambda args, _g=group: _g.print_help() or 2)

    def command(self, name: str, help: str, run: Callable[[argparse.Namespace], int | None],
                group: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
        """Add a verb (or ``group name``) whose ``run(args)`` is called; returns its parser for arguments."""
        target = self._groups[group] if group else self._sub
        parser = target.add_parser(name, help=help, description=description or help,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(func=run)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every verb the command modules register."""
    parser = argparse.ArgumentParser(
        prog="harmonyset",
        description="HarmonySet (video-music alignment): data, training and evaluation for the HF stack.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "typical use:\n"
            "  harmonyset demo --out demo_out                  # everything, offline, on HarmonySet-mini\n"
            "  harmonyset build --release REL --out HUB --annotations-only\n"
            "  harmonyset videos download --release REL --out VIDEOS      # then build --videos VIDEOS\n"
            "  harmonyset predict --data HUB --config mc --model NAME --out preds.jsonl\n"
            "  harmonyset eval mc --data HUB --predictions preds.jsonl --out results/\n"
            "  harmonyset report results/ --out report/ --compare-paper\n"
            "`harmonyset <command> --help` explains each command; errors name the item and the reason."
        ),
    )
    parser.add_argument("--version", action="version", version=f"harmonyset-hf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    cli = CLI(parser)

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(cli)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `harmonyset` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own progress notes at INFO; other libraries only when they warn (unless --debug).
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("harmonyset_hf").setLevel(logging.DEBUG if args.debug else logging.INFO)
    install_log_masking()  # no secret of the process reaches stderr through a log line
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        commands.apply_media_budget(args)  # --max-pixels / --max-duration of the verbs that read media
        code = args.func(args)
    except HarmonySetError as err:
        if args.debug or os.environ.get("HARMONYSET_DEBUG"):
            raise
        print(mask_secrets(f"harmonyset: error: {err}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harmonyset: interrupted; work done so far is saved and a rerun resumes", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
