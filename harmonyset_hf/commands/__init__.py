"""One module per `harmonyset` verb (or verb group); each defines ``register(cli)``.

The modules here only declare arguments and call into the package: all logic lives in the
modules one level up. Every import of the package (and of torch, transformers, datasets) stays
inside the run functions so that ``harmonyset --help`` stays fast: 1.4 s as it is, against
49 s with the modules the verbs use imported up front (3.8 s without ``train``, which brings
transformers), measured on the 2-core dev machine with ``time python -m harmonyset_hf.cli --help``
and ``time python -c "import <those modules>"``. This is the one place such imports are the rule.
"""

from ..llm import DEFAULT_DEADLINE


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a --limit or batch size of 0 or less is a mistake, not a no-op)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0 (seconds, rates)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def add_timeout_arg(p) -> None:
    """``--timeout``: the total deadline of one LLM call (all attempts, slow replies and waits included)."""
    p.add_argument("--timeout", type=positive_float, default=DEFAULT_DEADLINE,
                   help=f"seconds one LLM call may take in all, retries and slow replies included "
                        f"(default {DEFAULT_DEADLINE:g})")


def add_media_budget_args(p) -> None:
    """``--max-pixels`` and ``--max-duration``: raise the media budget (applied by the CLI before the verb runs)."""
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="refuse videos whose frames have more pixels than this (default 4096x4096, or "
                        "$HARMONYSET_MAX_PIXELS), before decoding")
    p.add_argument("--max-duration", type=positive_float, default=None,
                   help="refuse media longer than this many seconds (default 600, or $HARMONYSET_MAX_DURATION), "
                        "before decoding")


def apply_media_budget(args) -> None:
    """Raise the process's media budget to what --max-pixels / --max-duration give (nothing when not given)."""
    if getattr(args, "max_pixels", None) or getattr(args, "max_duration", None):
        from ..media import set_media_budget  # numpy and PyAV: loaded only for the verbs that read media

        set_media_budget(max_pixels=args.max_pixels, max_duration=args.max_duration)
