"""`harmonyset build | card | push` and `harmonyset export videollama2`: the Hub folder verbs."""

from __future__ import annotations

import argparse
import json


def register(cli) -> None:
    """Add the data verbs to the CLI."""
    p = cli.command("build", help="build a Hub-ready folder (parquet + videos/ + README) from release files",
                    run=_build)
    p.add_argument("--release", required=True, help="folder with the release JSON/JSONL files (or one file)")
    p.add_argument("--videos", default=None, help="folder with the videos (not needed with --annotations-only)")
    p.add_argument("--out", required=True, help="the Hub folder to write (replaced atomically)")
    p.add_argument("--annotations-only", action="store_true",
                   help="the three configs without media (`video` is the file name the release gives)")
    p.add_argument("--strict", action="store_true", help="fail on the first unusable item instead of skipping it")
    p.add_argument("--link-mode", choices=("hardlink", "symlink", "copy"), default="hardlink",
                   help="how videos get into the folder (hardlink falls back to copy across devices)")
    p.add_argument("--field-map", default=None,
                   help="JSON (or a JSON file, or a=b,c=d) mapping canonical fields to item keys/dotted paths")

    p = cli.command("card", help="compute statistics and figures and render the Hub folder's README.md", run=_card)
    p.add_argument("--hub", required=True, help="a folder made by `harmonyset build`")
    p.add_argument("--template", default=None, help="card template (string.Template; default: the one in the package)")

    p = cli.command("push", help="upload a Hub folder to a Hugging Face dataset repo", run=_push)
    p.add_argument("--hub", required=True, help="a folder made by `harmonyset build`")
    p.add_argument("--repo-id", required=True, help="ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")

    p = cli.command("videollama2", help="the VideoLLaMA2 training JSON of a config", run=_export, group="export")
    p.add_argument("--hub", required=True, help="a folder made by `harmonyset build`")
    p.add_argument("--config", default="instruct", choices=("instruct", "oe"))
    p.add_argument("--out", required=True, help="the JSON file to write")


def _build(args: argparse.Namespace) -> int:
    from ..data.hub import build_hub

    report = build_hub(args.release, args.videos, args.out, annotations_only=args.annotations_only,
                       strict=args.strict, link_mode=args.link_mode, field_map=args.field_map)
    for problem in report["skipped"][:20]:
        print(f"skipped {problem['source']} id={problem['id']!r} ({problem['config']}): {problem['reason']}")
    if report["skipped_count"] > 20:
        print(f"... {report['skipped_count'] - 20} more in {args.out}/build_report.json")
    if report.get("missing_videos", {}).get("count"):
        print(f"{report['missing_videos']['count']} items have no video in {args.videos} and are left out "
              f"(listed under missing_videos in {args.out}/build_report.json)")
    drawn = {c: n for c, n in report.get("instructions_drawn", {}).items() if n}
    if drawn:
        print("items without an instruction (their prompts use a paper template drawn by id): "
              + ", ".join(f"{c} {n}" for c, n in drawn.items()))
    counts = ", ".join(f"{c} {n}" for c, n in report["counts"].items())
    print(f"built {args.out}: {counts} rows; {report['skipped_count']} skipped; {report['seconds']} s")
    return 0


def _card(args: argparse.Namespace) -> int:
    from ..data.card import render_card

    path = render_card(args.hub, template=args.template)
    print(f"wrote {path} and {args.hub}/figures/")
    return 0


def _push(args: argparse.Namespace) -> int:
    from ..data.hub import push_hub

    plan = push_hub(args.hub, args.repo_id, private=args.private, dry_run=args.dry_run)
    if args.dry_run:
        for name, size in plan["listing"]:
            print(f"{size:>12}  {name}")
    summary = {k: v for k, v in plan.items() if k != "listing"}
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {plan['files']} files ({plan['bytes']} bytes) to {args.repo_id}: {json.dumps(summary)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..data.hub import export_videollama2

    n = export_videollama2(args.hub, args.config, args.out)
    print(f"wrote {n} {args.config} items to {args.out} (video paths relative to {args.hub})")
    return 0
