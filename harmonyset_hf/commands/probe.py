"""`harmonyset probe VIDEO`: a JSON summary of one media file, for debugging what the loaders see."""

from __future__ import annotations

import argparse
import json

from . import add_media_budget_args, positive_float, positive_int


def register(cli) -> None:
    """Add `probe` to the CLI."""
    from ..media import BACKENDS, DEFAULT_TIMEOUT, SEEK_MODES

    p = cli.command("probe", run=_run,
                    help="JSON summary of a video: streams, duration, fps, rotation, sampled frame times, audio")
    p.add_argument("video", help="path of the video file")
    p.add_argument("--frames", type=positive_int, default=16, help="frames to sample (segment midpoints; default 16)")
    p.add_argument("--backend", choices=BACKENDS, default="pyav")
    p.add_argument("--seek", choices=SEEK_MODES, default="exact")
    p.add_argument("--sample-rate", type=positive_int, default=16000, help="audio rate to resample to (default 16000)")
    p.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT, help="seconds before decoding gives up")
    add_media_budget_args(p)


def _run(args: argparse.Namespace) -> int:
    from ..media import describe

    report = describe(args.video, num_frames=args.frames, backend=args.backend, seek=args.seek,
                      sample_rate=args.sample_rate, timeout=args.timeout)
    print(json.dumps(report, indent=2))
    return 1 if "error" in report else 0
