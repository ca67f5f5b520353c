"""From YouTube ids to checked mp4 files: ``harmonyset videos download``.

The release ships annotations and YouTube ids, not videos. :func:`download_videos` fetches each
item's video with yt-dlp (:mod:`harmonyset_hf.data.video_fetch`: mp4 with h264 + AAC preferred, merged
by FFmpeg when the site serves them apart), writes it as ``VIDEOS/<id>.mp4`` (``VIDEOS/NNN/<id>.mp4``
when there are more than 10,000, as the Hub folder shards) only after the project's own probe
accepted it (video and audio streams, the duration the release gives), and records every id's
outcome in ``VIDEOS/download_report.json``. It resumes: a crash-safe journal remembers what earlier
runs did, files already in place are kept, and only failures worth retrying are tried again.
:mod:`harmonyset_hf.data.video_folder` is the other half: using such a folder later.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import schema
from ..errors import ConfigError
from ..io import append_jsonl, atomic_write_json, package_versions, read_jsonl
from .folder import VIDEO_SPLIT, HubError, config_table
from .hub import MAX_FILES_PER_FOLDER, safe_name
from .release import ReleaseReader, iter_release
from .release_fields import VIDEO_EXTENSIONS
from .video_fetch import (
    COOKIE_CAUSES,
    MAX_RETRY_AFTER,
    RATE_LIMIT_TRIES,
    check_video,
    classify,
    clean_message,
    fetch_one,
    redact_url,
    retry_after,
    ytdlp_options,
)

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = "https://www.youtube.com/shorts/{youtube_id}"
REPORT_NAME = "download_report.json"
JOURNAL_NAME = ".download_journal.jsonl"  # one line per finished id, appended as it happens (survives kill -9)
PARTIAL_DIR = ".incomplete"  # per-download scratch folders; a file leaves it only after passing the check
STATUSES = ("downloaded", "present", "unavailable", "failed_check", "timed_out", "failed")


@dataclass
class VideoItem:
    """One video to fetch: the item's id, its YouTube id, the release's file name, duration, split and category."""

    id: str
    youtube_id: str | None = None
    video: str | None = None
    duration: float | None = None
    split: str = "test"
    category: str | None = None
    index: int = 0  # position in the whole release: fixes the shard, whatever --ids selects


@dataclass
class Outcome:
    """What happened to one id in this run."""

    status: str
    cause: str | None = None
    reason: str | None = None
    file: str | None = None
    bytes: int | None = None
    attempts: int = 0


# --------------------------------------------------------------------------------------------
# Which videos
# --------------------------------------------------------------------------------------------
def items_from_release(release: str | os.PathLike, field_map: dict | str | None = None) -> list[VideoItem]:
    """The videos of a release folder (or file), read by the release reader: train items, then test items."""
    reader = ReleaseReader(None, field_map=field_map, check_videos=False)
    rows = []
    for config, rec in iter_release(release, reader):
        rows.append((config, rec, (rec.get("metadata") or {}).get("youtube_id")))
    if reader.release.problems:
        log.warning("%d release items or questions could not be read and are not downloaded "
                    "(`harmonyset build` lists them)", len(reader.release.problems))
    return _merge(rows)


def items_from_hub(hub: str | os.PathLike) -> list[VideoItem]:
    """The videos of a Hub folder made by `harmonyset build` (annotations-only or not)."""
    rows = []
    for config in schema.CONFIGS:
        try:
            table = config_table(hub, config)
        except HubError:  # a folder may hold some configs only; none at all is caught below
            continue
        for row in table.to_pylist():
            youtube_id = (row.get("metadata") or {}).get("youtube_id")
            rows.append((config, {**row, "video": row.get("video") or row.get("file_name")}, youtube_id))
    if not rows:
        raise ConfigError(f"{hub} holds no HarmonySet config to read ids from; give a Hub folder made by "
                          "`harmonyset build` (or the release with --release)")
    return _merge(rows)


def _merge(rows: Iterable[tuple[str, dict, str | None]]) -> list[VideoItem]:
    """One item per id (OE and MC share their test video), in first-seen order."""
    items: dict[str, VideoItem] = {}
    for config, rec, youtube_id in rows:
        item_id = str(rec["id"])
        item = items.get(item_id)
        if item is None:
            items[item_id] = VideoItem(id=item_id, youtube_id=youtube_id or None, video=rec.get("video"),
                                       duration=rec.get("duration"), split=VIDEO_SPLIT[config],
                                       category=rec.get("category"), index=len(items))
        else:
            item.youtube_id = item.youtube_id or youtube_id or None
            item.duration = item.duration if item.duration is not None else rec.get("duration")
            item.category = item.category or rec.get("category")
    return list(items.values())


def read_ids(path: str | os.PathLike) -> list[str]:
    """Ids from a file, one a line (blank lines and ``#`` comments ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--ids {path}: cannot read it ({err.strerror or err})") from None
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [i for i in ids if i]


def item_url(template: str, item: VideoItem) -> str:
    """The URL of an item: ``{id}`` and ``{youtube_id}`` (the id when the item has none) filled in."""
    return template.format(id=item.id, youtube_id=item.youtube_id or item.id)


def check_template(template: str) -> None:
    """Refuse a URL template with fields other than ``{id}`` and ``{youtube_id}`` before any download."""
    try:
        template.format(id="x", youtube_id="x")
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"--url-template {template!r}: only {{id}} and {{youtube_id}} can be filled in "
                          f"({type(err).__name__}: {err})") from None


def target_path(root: Path, item: VideoItem, total: int, ext: str = ".mp4") -> Path:
    """Where an item's video goes: ``root/<id>.mp4``, or ``root/NNN/<id>.mp4`` past 10,000 files (as the Hub folder).

    ``ext`` is the container yt-dlp delivered: mp4 unless a site had no mp4 and FFmpeg could not remux.
    """
    name = f"{safe_name(item.id)}{ext}"
    if total <= MAX_FILES_PER_FOLDER:
        return root / name
    return root / f"{item.index // MAX_FILES_PER_FOLDER:03d}" / name


# --------------------------------------------------------------------------------------------
# One download
# --------------------------------------------------------------------------------------------
class _Throttle:
    """A pause shared by all workers: one HTTP 429 holds every new request until its Retry-After is over."""

    def __init__(self):
        self._lock = threading.Lock()
        self._not_before = 0.0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._not_before - time.monotonic()
            if delay <= 0:
                return
            time.sleep(min(delay, 1.0))


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------
@dataclass
class DownloadSettings:
    """The knobs of a download run (the CLI flags)."""

    url_template: str = DEFAULT_URL_TEMPLATE
    concurrency: int = 4
    timeout: float = 30.0
    max_height: int | None = 720
    cookies: str | None = None
    retry_unavailable: bool = False
    progress: bool = True
    merge: bool = True  # FFmpeg is there to merge separate video and audio streams


class Downloader:
    """Fetches, checks and places the videos of a list of items under one folder, resumably."""

    def __init__(self, out: str | os.PathLike, items: list[VideoItem], settings: DownloadSettings,
                 total: int | None = None):
        self.out = Path(out)
        self.items, self.settings = items, settings
        self.total = total if total is not None else len(items)
        self.throttle = _Throttle()
        self.journal = self.out / JOURNAL_NAME
        self.partial = self.out / PARTIAL_DIR

    def previous(self) -> dict[str, dict]:
        """The last journal entry of each id from earlier runs."""
        if not self.journal.is_file():
            return {}
        return {str(rec["id"]): rec for rec in read_jsonl(self.journal) if "id" in rec}

    def _existing(self) -> dict[str, Path]:
        """Videos already under the folder, by file stem (a moved or hand-placed file counts too)."""
        found: dict[str, Path] = {}
        for dirpath, dirnames, files in os.walk(self.out):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in files:
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                    found.setdefault(stem, Path(dirpath, name))
        return found

    def _skip_earlier(self, before: dict | None) -> bool:
        """Whether an earlier run's failure is final: unavailable for good (unless retried or cookies may help)."""
        if not before or before.get("status") != "unavailable" or self.settings.retry_unavailable:
            return False
        return not (self.settings.cookies and before.get("cause") in COOKIE_CAUSES)

    def plan(self) -> tuple[dict[str, Outcome], list[VideoItem], list[str]]:
        """(outcomes known without downloading, items to download, ids of files checked now for the journal)."""
        before, existing = self.previous(), self._existing()
        known: dict[str, Outcome] = {}
        todo: list[VideoItem] = []
        checked: list[str] = []
        for item in self.items:
            old = before.get(item.id, {})
            path = existing.get(safe_name(item.id))
            if path is not None:
                known[item.id], checked_now = self._present(item, path, old)
                if checked_now:  # not in the journal as it is now (e.g. killed before the entry): note it
                    checked.append(item.id)
            elif self._skip_earlier(old):
                known[item.id] = Outcome("unavailable", old.get("cause"), old.get("reason"),
                                         attempts=int(old.get("attempts") or 0))
            else:
                todo.append(item)
        return known, todo, checked

    def _present(self, item: VideoItem, path: Path, old: dict) -> tuple[Outcome, bool]:
        """The outcome of a file already in the folder, and whether it was checked now (not known from the journal)."""
        rel = path.relative_to(self.out).as_posix()
        size = path.stat().st_size
        if old.get("status") in ("downloaded", "present") and old.get("file") == rel and old.get("bytes") == size:
            return Outcome("present", file=rel, bytes=size), False  # checked when it was placed
        problem = check_video(path, item.duration, timeout=max(60.0, self.settings.timeout))
        if problem:  # not ours to delete: say so and leave it
            return Outcome("failed_check", "existing-file", f"{rel} is already there but fails the check: {problem}; "
                           "move it away to download it again", file=rel, bytes=size), True
        return Outcome("present", file=rel, bytes=size), True

    def download(self, item: VideoItem) -> Outcome:
        """Fetch, check and place one item's video (never raises for a per-item failure)."""
        import yt_dlp

        s = self.settings
        url = item_url(s.url_template, item)
        self.partial.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{safe_name(item.id)}.", dir=self.partial))
        attempts = 0
        try:
            while True:
                attempts += 1
                self.throttle.wait()
                try:
                    got = fetch_one(url, folder, ytdlp_options(folder, s.timeout, s.max_height, s.cookies, item.id,
                                                                s.merge))
                    break
                except yt_dlp.utils.DownloadError as err:
                    wait = retry_after(err)
                    if wait is None or attempts >= RATE_LIMIT_TRIES:
                        status, cause = classify(str(err))
                        if type(err.exc_info[1] if err.exc_info else None).__name__ == "GeoRestrictedError":
                            status, cause = "unavailable", "geo-blocked"  # whatever the site's wording
                        return Outcome(status, cause, clean_message(str(err)), attempts=attempts)
                    # Back off on every worker: Retry-After when the server gives it, else doubling.
                    self.throttle.hold(wait or min(MAX_RETRY_AFTER, 2.0 ** attempts))
                    shutil.rmtree(folder, ignore_errors=True)
                    folder.mkdir(parents=True, exist_ok=True)
            problem = check_video(got, item.duration, timeout=max(60.0, s.timeout))
            if problem:
                return Outcome("failed_check", "check", problem, attempts=attempts)
            target = target_path(self.out, item, self.total, got.suffix.lower() or ".mp4")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(got, "rb") as fh:  # on disk before the rename makes it count as done
                os.fsync(fh.fileno())
            if target.exists():  # appeared meanwhile (another run): keep it, ours goes
                return Outcome("present", file=target.relative_to(self.out).as_posix(), bytes=target.stat().st_size)
            os.replace(got, target)
            return Outcome("downloaded", file=target.relative_to(self.out).as_posix(), bytes=target.stat().st_size,
                           attempts=attempts)
        except Exception as err:  # noqa: BLE001 - one broken item must not stop the others
            return Outcome("failed", "error", redact_url(f"{type(err).__name__}: {err}"), attempts=attempts)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def run(self) -> dict[str, Any]:
        """Download what is missing; write and return the report."""
        from tqdm.auto import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.partial, ignore_errors=True)  # scratch of a killed run: ours, never complete
        started = time.perf_counter()
        outcomes, todo, checked = self.plan()
        append_jsonl(self.journal, [{"id": i, **outcomes[i].__dict__} for i in checked])
        bar = tqdm(total=len(self.items), initial=len(outcomes), desc="videos", unit="video",
                   disable=not self.settings.progress)
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="harmonyset-video")
        try:
            futures = {pool.submit(self.download, item): item for item in todo}
            for future in as_completed(futures):
                item, outcome = futures[future], future.result()
                outcomes[item.id] = outcome
                append_jsonl(self.journal, [{"id": item.id, **outcome.__dict__}])
                bar.update(1)
                bar.set_postfix(_counts(outcomes), refresh=False)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            report = self.report(outcomes, time.perf_counter() - started)
            atomic_write_json(self.out / REPORT_NAME, report)
            shutil.rmtree(self.partial, ignore_errors=True)
        return report

    def report(self, outcomes: dict[str, Outcome], seconds: float) -> dict[str, Any]:
        """Every id's status and reason, counts by status, cause, split and category, the ids missing."""
        s = self.settings
        by_split: dict[str, Counter] = {}
        by_category: dict[str, Counter] = {}
        items = {}
        for item in self.items:
            outcome = outcomes.get(item.id) or Outcome("failed", "interrupted", "the run stopped before this id")
            have = outcome.status in ("downloaded", "present")
            by_split.setdefault(item.split, Counter())["present" if have else "missing"] += 1
            by_category.setdefault(item.category or "unknown", Counter())["present" if have else "missing"] += 1
            items[item.id] = {"status": outcome.status, "cause": outcome.cause, "reason": outcome.reason,
                              "file": outcome.file, "bytes": outcome.bytes, "attempts": outcome.attempts,
                              "split": item.split, "category": item.category, "youtube_id": item.youtube_id,
                              "url": redact_url(item_url(s.url_template, item))}
        missing = [i for i, rec in items.items() if rec["status"] not in ("downloaded", "present")]
        return {
            "out": str(self.out), "url_template": redact_url(s.url_template), "max_height": s.max_height,
            "timeout": s.timeout, "concurrency": s.concurrency, "cookies": bool(s.cookies), "merge": s.merge,
            "total": len(self.items),
            "counts": {status: sum(1 for r in items.values() if r["status"] == status) for status in STATUSES},
            "causes": dict(Counter(r["cause"] for r in items.values() if r["cause"])),
            "by_split": {k: dict(v) for k, v in sorted(by_split.items())},
            "by_category": {k: dict(v) for k, v in sorted(by_category.items())},
            "missing_count": len(missing), "missing": missing,
            "seconds": round(seconds, 2), "versions": {**package_versions(), "yt-dlp": _ytdlp_version()},
            "items": items,
        }


def _counts(outcomes: dict[str, Outcome]) -> dict[str, int]:
    counts = Counter(o.status for o in outcomes.values())
    return {k: counts[k] for k in STATUSES if counts[k]}


def _ytdlp_version() -> str | None:
    try:
        from yt_dlp.version import __version__
    except ImportError:
        return None
    return __version__


def download_videos(out: str | os.PathLike, release: str | os.PathLike | None = None,
                    data: str | os.PathLike | None = None, ids: Iterable[str] | None = None,
                    settings: DownloadSettings | None = None, field_map: dict | str | None = None) -> dict[str, Any]:
    """Download the videos of a release (or Hub folder) into ``out``; returns the report written there."""
    settings = settings or DownloadSettings()
    if (release is None) == (data is None):
        raise ConfigError("give the ids' source: --release DIR or --data HUB (one of them)")
    if _ytdlp_version() is None:
        raise ConfigError("yt-dlp is not installed: pip install 'harmonyset-hf[videos]'")
    check_template(settings.url_template)
    if settings.cookies and not Path(settings.cookies).is_file():
        raise ConfigError(f"--cookies {settings.cookies}: no such file (a Netscape cookies.txt export)")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; give the folder to download into")
    if shutil.which("ffmpeg") is None and settings.merge:
        log.warning("FFmpeg not found: only formats that hold video and audio in one file are fetched (often "
                    "lower quality); install it (scripts/ensure_ffmpeg.sh) to merge the best streams")
        settings = dataclasses.replace(settings, merge=False)
    items = items_from_release(release, field_map) if release is not None else items_from_hub(data)
    total = len(items)
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        known = {item.id for item in items}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            log.warning("%d ids of --ids are not in the release and are ignored: %s%s", len(unknown),
                        ", ".join(unknown[:10]), " ..." if len(unknown) > 10 else "")
        chosen = set(wanted)
        items = [item for item in items if item.id in chosen]
        if not items:
            raise ConfigError("none of the ids given with --ids is in the release")
    return Downloader(out, items, settings, total=total).run()


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The closing summary: one line overall, then counts per split, per category and per cause."""
    counts = ", ".join(f"{n} {k}" for k, n in report["counts"].items() if n)
    lines = [f"videos in {report['out']}: {report['total'] - report['missing_count']} of {report['total']} present "
             f"({counts}); {report['missing_count']} missing; report in {report['out']}/{REPORT_NAME}"]
    for title, key in (("split", "by_split"), ("category", "by_category")):
        parts = [f"{name} {c.get('present', 0)}/{c.get('present', 0) + c.get('missing', 0)}"
                 for name, c in report[key].items()]
        lines.append(f"  by {title}: " + ", ".join(parts))
    if report["causes"]:
        lines.append("  missing by cause: " + ", ".join(f"{k} {n}" for k, n in sorted(report["causes"].items())))
    return lines
