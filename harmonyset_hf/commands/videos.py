"""`harmonyset videos download`: fetch the release's videos (yt-dlp), checked, resumable, with a report."""

from __future__ import annotations

import argparse

from . import positive_float, positive_int

EPILOG = """\
exit status: 0 every video is present, 1 some are missing (see VIDEOS/download_report.json),
2 a usage error. A rerun skips what is there and retries only what may work now (timeouts, cut
connections, rate limits, failed checks); --retry-unavailable also asks again for private/removed ones.

example:
  hf download Zzitang/HarmonySet --repo-type dataset --local-dir release/
  harmonyset videos download --release release/ --out videos/ --concurrency 4
  harmonyset build --release release/ --videos videos/ --out hub/HarmonySet
"""


def register(cli) -> None:
    """Add the `videos` group and its `download` verb."""
    p = cli.command("download", group="videos", run=_download,
                    help="download each item's video as VIDEOS/<id>.mp4, checked, resumable, with a report")
    p.epilog = EPILOG
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--release", help="the release folder (or one release JSON file)")
    source.add_argument("--data", help="a Hub folder made by `harmonyset build` (e.g. --annotations-only)")
    p.add_argument("--out", required=True, help="the videos folder (created; files already there are kept)")
    p.add_argument("--ids", default=None, help="a file of ids to fetch, one a line (default: every item)")
    p.add_argument("--concurrency", type=positive_int, default=4, help="downloads at once (default 4)")
    p.add_argument("--url-template", default=None,
                   help="where a video is, with {id} and {youtube_id} "
                        "(default https://www.youtube.com/shorts/{youtube_id}; {youtube_id} falls back to the id)")
    p.add_argument("--timeout", type=positive_float, default=30.0,
                   help="seconds a connection may stall before the download is given up (default 30)")
    p.add_argument("--max-height", type=positive_int, default=720,
                   help="highest resolution to fetch, on the short side (720 = 720p, portrait or landscape; "
                        "a video offered only larger comes at its smallest size)")
    p.add_argument("--cookies", default=None,
                   help="a cookies.txt (Netscape format) for age-gated or sign-in videos; read, never written")
    p.add_argument("--retry-unavailable", action="store_true",
                   help="also retry ids an earlier run found private, removed, geo-blocked or age-gated")
    p.add_argument("--field-map", default=None, help="as for `harmonyset build`: where the release keeps its fields")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _download(args: argparse.Namespace) -> int:
    from ..data.videos import DEFAULT_URL_TEMPLATE, DownloadSettings, download_videos, read_ids, summary_lines

    settings = DownloadSettings(url_template=args.url_template or DEFAULT_URL_TEMPLATE,
                                concurrency=args.concurrency, timeout=args.timeout, max_height=args.max_height,
                                cookies=args.cookies, retry_unavailable=args.retry_unavailable,
                                progress=not args.no_progress)
    ids = read_ids(args.ids) if args.ids else None
    report = download_videos(args.out, release=args.release, data=args.data, ids=ids, settings=settings,
                             field_map=args.field_map)
    shown = 0
    for item_id, rec in report["items"].items():
        if rec["status"] not in ("downloaded", "present") and shown < 20:
            print(f"missing {item_id}: {rec['status']} ({rec['cause']}): {rec['reason']}")
            shown += 1
    if report["missing_count"] > shown:
        print(f"... {report['missing_count'] - shown} more in {args.out}/download_report.json")
    for line in summary_lines(report):
        print(line)
    return 1 if report["missing_count"] else 0
