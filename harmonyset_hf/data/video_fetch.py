"""One video through yt-dlp: the format to ask for, its options, the call, and what its errors mean.

yt-dlp's Python API does the fetching (YouTube, or any direct URL through its generic extractor);
this module keeps it quiet (its logger into ours), classifies its error texts into the causes of
the download report (private, removed, geo-blocked, age-gated, ...), reads Retry-After from an
HTTP 429, and checks a finished file with the project's own probe.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from ..media import MediaError, describe

log = logging.getLogger(__name__)

# Unavailable for good: a rerun does not ask again (unless told to). Sign-in walls may pass with --cookies.
PERMANENT_CAUSES = ("private", "removed", "geo-blocked", "age-gated", "sign-in-required", "not-a-video",
                    "no-suitable-format", "unavailable")
COOKIE_CAUSES = ("age-gated", "sign-in-required")
HTTP_RETRIES = 2  # yt-dlp's own retries of a cut or stalled transfer (each bounded by the socket timeout)
RATE_LIMIT_TRIES = 5  # answers of HTTP 429 before an id is given up for this run
MAX_RETRY_AFTER = 300.0
# (cause, pattern) on yt-dlp's lower-cased error text, first match wins. The YouTube wordings are
# those of yt_dlp/extractor/youtube (playability status reasons); the rest come from its networking.
_CAUSES: tuple[tuple[str, str], ...] = (
    ("private", r"private video|video is private"),
    ("rate-limited", r"http error 429|too many requests|rate-limited|try again later"),
    ("age-gated", r"confirm your age|age[- ]restricted|inappropriate for some users"),
    ("geo-blocked", r"in your country|geo[- ]?restrict|not available (?:in|from) your (?:location|region)"),
    ("sign-in-required", r"sign in to confirm|not a bot|members[- ]only|join this channel|login required|"
                         r"use --cookies"),
    ("removed", r"removed|terminated|no longer available|does not exist|http error 404|http error 410"),
    ("not-a-video", r"unsupported url|no video formats found"),
    ("no-suitable-format", r"requested format is not available"),
    ("unavailable", r"video unavailable|is unavailable|not available"),
    ("timed-out", r"timed out|timeout"),
    ("incomplete", r"bytes read, \d+ more expected|content too short|incomplete"),
    ("server-error", r"http error 5\d\d"),
    ("network", r"connection|network|name resolution|unreachable|reset by peer|ssl"),
)

_SETUP_HINTS = ("javascript runtime", "ffmpeg")  # yt-dlp warnings about the machine, not about one video
_hinted: set[str] = set()


class _QuietLogger:
    """yt-dlp's messages into our logger at DEBUG (we report every outcome ourselves, once); a warning about the
    setup (no JavaScript runtime for YouTube, no FFmpeg) is shown once a run."""

    def __init__(self, item_id: str):
        self.prefix = item_id

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp %s: %s", self.prefix, redact_url(msg))

    def warning(self, msg: str) -> None:
        hint = next((h for h in _SETUP_HINTS if h in msg.lower()), None)
        if hint is not None and hint not in _hinted:
            _hinted.add(hint)
            log.warning("yt-dlp: %s", clean_message(msg))
        else:
            self.debug(msg)

    info = error = debug


def classify(message: str) -> tuple[str, str]:
    """(status, cause) of a yt-dlp error message: unavailable (private, removed, ...), timed_out or failed."""
    text = message.lower()
    for cause, pattern in _CAUSES:
        if re.search(pattern, text):
            if cause in PERMANENT_CAUSES:
                return "unavailable", cause
            return ("timed_out" if cause == "timed-out" else "failed"), cause
    return "failed", "error"


def redact_url(text: str) -> str:
    """``text`` with the values of URL query parameters and any user:password in a URL masked.

    A mirror's --url-template may carry a token (``?token=...``); yt-dlp repeats URLs in its errors.
    """
    text = re.sub(r"(://)[^/\s@]+@", r"\1***@", text)
    return re.sub(r"([?&][^=&\s#]+=)[^&\s#]+", r"\1***", text)


def clean_message(message: str) -> str:
    """yt-dlp's error text on one line, without its ``ERROR:`` prefix, terminal codes or URL secrets."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(message)).replace("\r", " ")
    text = re.sub(r"^\s*ERROR:\s*", "", text)
    return redact_url(" ".join(text.split()))


def retry_after(error: BaseException) -> float | None:
    """Seconds to wait after an HTTP 429 (its Retry-After, in seconds or as a date); None when not a 429."""
    cause = getattr(error, "exc_info", None)
    cause = cause[1] if cause else None
    while cause is not None and getattr(cause, "status", None) is None:
        cause = getattr(cause, "cause", None) or cause.__cause__
    if getattr(cause, "status", None) != 429:  # YouTube's own wording of a rate limit backs off too
        return 0.0 if classify(str(error))[1] == "rate-limited" else None
    header = None
    response = getattr(cause, "response", None)
    if response is not None:
        header = response.headers.get("Retry-After")
    if not header:
        return 0.0
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(header)))
    except ValueError:
        when = email.utils.parsedate_to_datetime(header) if header else None
        return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - time.time())) if when else 0.0


def format_selector(merge: bool = True) -> str:
    """yt-dlp's format string: h264 mp4 + AAC m4a merged, else one mp4 with both, else the best there is.

    Without FFmpeg nothing can be merged, so only files that already hold video and audio are asked for.
    """
    if not merge:
        return "b[ext=mp4]/b"
    return "bv*[ext=mp4][vcodec^=avc1]+ba[ext=m4a]/b[ext=mp4]/bv*+ba/b"


def format_sort(max_height: int | None) -> list[str]:
    """yt-dlp's sort order: within each choice, the largest video whose short side is at most ``max_height``.

    ``res`` is the smaller dimension, so 720 means 720p for a portrait Short (720x1280) as for a
    landscape clip; a filter on ``height`` would keep a portrait Short to 405x720. A video offered
    only above the limit comes at its smallest size rather than not at all.
    """
    return [f"res:{max_height}"] if max_height else []


def ytdlp_options(folder: Path, timeout: float, max_height: int | None, cookies: str | None,
                  item_id: str, merge: bool = True) -> dict[str, Any]:
    """yt-dlp parameters: a video+audio format (mp4/h264+AAC first) up to ``max_height``, into ``folder``, quiet."""
    options: dict[str, Any] = {
        "format": format_selector(merge),
        "format_sort": format_sort(max_height),
        "merge_output_format": "mp4",
        "outtmpl": {"default": str(folder / "video.%(ext)s")},
        "socket_timeout": timeout,
        "retries": HTTP_RETRIES,
        "fragment_retries": HTTP_RETRIES,
        "extractor_retries": 0,  # HTTP 429 is ours to back off from (shared by all workers)
        "noplaylist": True,
        "logger": _QuietLogger(item_id),
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "cachedir": False,
        "updatetime": False,
    }
    if cookies:
        options["cookiefile"] = cookies
    return options


def fetch_one(url: str, folder: Path, options: dict[str, Any]) -> Path:
    """Download ``url`` into ``folder`` with yt-dlp; returns the finished file (raises yt-dlp's DownloadError)."""
    import yt_dlp

    ydl = yt_dlp.YoutubeDL(options)
    ydl.save_cookies = lambda: None  # the user's cookie file is read, never written back
    try:
        info = ydl.extract_info(url, download=True)
    finally:
        ydl.close()
    paths = [d.get("filepath") for d in (info or {}).get("requested_downloads") or []]
    done = [Path(p) for p in paths if p and Path(p).is_file()]
    if not done:  # older yt-dlp versions leave only the file behind
        done = sorted(p for p in folder.glob("video.*") if p.suffix not in (".part", ".ytdl", ".temp"))
    if not done:
        raise RuntimeError("yt-dlp reported success but wrote no file")
    return done[0]


def check_video(path: str | os.PathLike, duration: float | None, timeout: float = 60.0) -> str | None:
    """Why a downloaded file is not usable (no video or audio, wrong duration, undecodable), or None when it is."""
    try:
        report = describe(path, num_frames=4, timeout=timeout)  # the probe plus what the loaders read
    except MediaError as err:  # the probe itself refused the file (not media, empty, ...)
        return err.reason
    if "error" in report:
        return report["error"]["reason"]
    if not report["has_video"]:
        return "no video stream"
    if not report["has_audio"]:
        return "no audio stream (HarmonySet is about the music)"
    got = report.get("duration")
    if duration and got is not None and abs(got - duration) > max(1.5, 0.05 * duration):
        return f"duration {got:.1f} s, but the release says {duration:.1f} s"
    return None
