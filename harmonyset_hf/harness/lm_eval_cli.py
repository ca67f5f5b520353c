"""`harmonyset-lm-eval`: lm-eval's own CLI, unchanged, with HarmonySet's models registered first.

Every lm-eval flag and subcommand works (``run``, ``ls``, ``validate``, the legacy flat form), e.g.
``harmonyset-lm-eval --model harmonyset-baseline --tasks harmonyset_mc --metadata '{"data":
"HarmonySet-mini"}' --log_samples --output_path out``. Without ``--include_path`` the installed task
folder (``harmonyset tasks-path lm-eval``) is added, so the tasks work without a checkout.
"""

from __future__ import annotations

import os
import sys

from ..errors import HarmonySetError
from .lm_eval_models import register
from .task_folders import task_folder


def with_task_folder(argv: list[str]) -> list[str]:
    """``argv`` (without the program name) plus ``--include_path <installed folder>`` unless one is given.

    Help and version requests are left alone; any spelling argparse accepts for the flag counts
    (``--include_path``, ``--include-path``, an unambiguous prefix such as ``--include``).
    """
    if not argv or any(a in ("-h", "--help", "--version") for a in argv):
        return argv
    if any(a.split("=", 1)[0].startswith("--include") for a in argv):
        return argv
    return [*argv, "--include_path", str(task_folder("lm-eval"))]


def main() -> None:
    """Register our models with lm-eval, then run lm-eval's CLI on ``sys.argv``.

    Our own errors (no data, a wrong data path, an unknown model or option) print as one line, as
    `harmonyset` prints them; ``HARMONYSET_DEBUG=1`` shows the traceback.
    """
    from lm_eval.__main__ import cli_evaluate

    register()
    sys.argv[1:] = with_task_folder(sys.argv[1:])
    try:
        cli_evaluate()
    except HarmonySetError as err:
        if os.environ.get("HARMONYSET_DEBUG"):
            raise
        print(f"harmonyset-lm-eval: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
