"""`harmonyset-lm-eval`: lm-eval's own CLI, unchanged, with HarmonySet's models registered first.

Every lm-eval flag and subcommand works (``run``, ``ls``, ``validate``, the legacy flat form), e.g.
``harmonyset-lm-eval --model harmonyset-baseline --include_path tasks/lm_eval --tasks harmonyset_mc
--metadata '{"data": "HarmonySet-mini"}' --log_samples --output_path out``.
"""

from __future__ import annotations

import os
import sys

from ..errors import HarmonySetError
from .lm_eval_models import register


def main() -> None:
    """Register our models with lm-eval, then run lm-eval's CLI on ``sys.argv``.

    Our own errors (no data, a wrong data path, an unknown model or option) print as one line, as
    `harmonyset` prints them; ``HARMONYSET_DEBUG=1`` shows the traceback.
    """
    from lm_eval.__main__ import cli_evaluate

    register()
    try:
        cli_evaluate()
    except HarmonySetError as err:
        if os.environ.get("HARMONYSET_DEBUG"):
            raise
        print(f"harmonyset-lm-eval: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
