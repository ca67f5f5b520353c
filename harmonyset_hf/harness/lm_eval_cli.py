"""`harmonyset-lm-eval`: lm-eval's own CLI, unchanged, with HarmonySet's models registered first.

Every lm-eval flag and subcommand works (``run``, ``ls``, ``validate``, the legacy flat form), e.g.
``harmonyset-lm-eval --model harmonyset-baseline --include_path tasks/lm_eval --tasks harmonyset_mc
--metadata '{"data": "HarmonySet-mini"}' --log_samples --output_path out``.
"""

from __future__ import annotations


def main() -> None:
    """Register our models with lm-eval, then run lm-eval's CLI on ``sys.argv``."""
    from lm_eval.__main__ import cli_evaluate

    from .lm_eval_models import register

    register()
    cli_evaluate()


if __name__ == "__main__":
    main()
