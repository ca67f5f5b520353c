"""Annotation text <-> the four aspect sections, and sync strings <-> key points.

An annotation is written as four sections headed ``Rhythm and Synchronization:``, ``Theme and
Content:``, ``Emotion:`` and ``Cultural Relevance:`` (model outputs sometimes say ``Culture:``,
use markdown bold or numbering). :func:`split_sections` finds them, in any case and order, and
reports what is missing or repeated instead of guessing. A sync string lists up to three key
points ``mm:ss,CODE`` separated by ``;`` (``0`` = no key point).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .errors import HarmonySetError
from .schema import ASPECT_HEADERS, ASPECTS, CANONICAL_HEADERS, MAX_SYNC_POINTS, SYNC_CODES

# Quote and bracket characters of every kind that may wrap an option letter ('B', ‘A’, “C”, 「D」, 【A】, <B>).
LETTER_WRAPPERS = "'\"‘’‚“”„«»‹›「」『』【】〔〕《》〈〉<>{}[]()"
_WRAPPED_LETTER = re.compile(rf"[{re.escape(LETTER_WRAPPERS)}]\s*([A-Da-d])\s*[{re.escape(LETTER_WRAPPERS)}]")


def unwrap_letters(text: str) -> str:
    """Text in NFKC form (full-width ``Ｂ`` -> ``B``) with every wrapped option letter written ``(B)``."""
    return _WRAPPED_LETTER.sub(lambda m: f"({m.group(1).upper()})", unicodedata.normalize("NFKC", text))


class SectionError(HarmonySetError, ValueError):
    """An annotation whose four aspect sections cannot be read unambiguously."""


class SyncFormatError(HarmonySetError, ValueError):
    """A malformed sync string."""


def _header_pattern() -> re.Pattern[str]:
    names = sorted({n for names in ASPECT_HEADERS.values() for n in names}, key=len, reverse=True)
    def words(name: str) -> str:
        parts = [r"(?:&|and)" if w in {"&", "and"} else re.escape(w) for w in name.split()]
        return r"\s+".join(parts)

    alts = "|".join(words(n) for n in names)
    # A header starts a line (after optional markdown: #, *, -, numbering, bold) and ends with ':'
    # (the colon may sit inside or outside the bold markers).
    return re.compile(
        r"(?im)^[ \t]*(?:#{1,6}[ \t]*)?(?:[-*+][ \t]+)?(?:\d+[.)][ \t]*)?(?:\*\*|__)?[ \t]*"
        rf"(?P<name>{alts})[ \t]*(?:\*\*|__)?[ \t]*[:：][ \t]*(?:\*\*|__)?"
    )


_HEADER_RE = _header_pattern()
_NAME_TO_ASPECT = {re.sub(r"\W", "", n.lower()): a for a, names in ASPECT_HEADERS.items() for n in names}


def _aspect_of(name: str) -> str:
    folded = re.sub(r"\W", "", name.lower().replace("&", "and"))
    for key, aspect in _NAME_TO_ASPECT.items():
        if key.replace("&", "and") == folded or key == folded:
            return aspect
    raise SectionError(f"unknown section header {name!r}")  # pragma: no cover - regex guards this


@dataclass
class Sections:
    """The four aspect sections of an annotation, with what was wrong when reading it."""

    sections: dict[str, str]
    missing: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    preamble: str = ""

    @property
    def ok(self) -> bool:
        """True when every aspect appears exactly once."""
        return not self.missing and not self.repeated

    def problems(self) -> list[str]:
        """Human-readable problems, empty when the annotation is well formed."""
        out = []
        if self.missing:
            out.append("missing sections: " + ", ".join(CANONICAL_HEADERS[a] for a in self.missing))
        if self.repeated:
            out.append("repeated sections: " + ", ".join(CANONICAL_HEADERS[a] for a in self.repeated))
        return out


def find_sections(text: str) -> Sections:
    """Split ``text`` into aspect sections, recording missing and repeated ones (never raises)."""
    text = text or ""
    matches = list(_HEADER_RE.finditer(text))
    found: dict[str, str] = {}
    repeated: list[str] = []
    for i, m in enumerate(matches):
        aspect = _aspect_of(m.group("name"))
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end():end].strip()
        body = re.sub(r"^(?:\*\*|__)\s*", "", body).strip()
        if aspect in found:
            if aspect not in repeated:
                repeated.append(aspect)
            continue
        found[aspect] = body
    missing = [a for a in ASPECTS if a not in found]
    preamble = text[: matches[0].start()].strip() if matches else text.strip()
    return Sections({a: found[a] for a in ASPECTS if a in found}, missing, repeated, preamble)


def split_sections(text: str, strict: bool = True) -> dict[str, str]:
    """The 4 aspect sections of an annotation; raises :class:`SectionError` on missing/repeated ones."""
    result = find_sections(text)
    if strict and not result.ok:
        raise SectionError("; ".join(result.problems()))
    return {a: result.sections.get(a, "") for a in ASPECTS}


def join_sections(sections: dict[str, str]) -> str:
    """Join aspect sections back into one annotation with the canonical headers."""
    missing = [a for a in ASPECTS if a not in sections]
    if missing:
        raise SectionError("cannot join, missing sections: " + ", ".join(missing))
    return "\n".join(f"{CANONICAL_HEADERS[a]}: {sections[a].strip()}" for a in ASPECTS)


# --------------------------------------------------------------------------------------------
# Sync strings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncPoint:
    """A key timestamp where the visuals turn, and how the music follows it (A/B/C)."""

    time: float
    code: str

    def as_dict(self) -> dict[str, float | str]:
        """A plain dict, as stored in the datasets."""
        return {"time": float(self.time), "code": self.code}


_TIME_RE = re.compile(r"^(?:(?P<h>\d{1,2}):)?(?P<m>\d{1,3}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_timestamp(text: str) -> float:
    """Seconds from ``mm:ss``, ``m:ss``, ``hh:mm:ss`` (fractions of a second allowed)."""
    t = text.strip()
    m = _TIME_RE.match(t)
    if not m:
        raise SyncFormatError(f"bad timestamp {text!r}: expected mm:ss or hh:mm:ss")
    minutes, seconds = int(m.group("m")), float(m.group("s"))
    if seconds >= 60:
        raise SyncFormatError(f"bad timestamp {text!r}: seconds must be below 60")
    if m.group("h") is not None and minutes >= 60:
        raise SyncFormatError(f"bad timestamp {text!r}: minutes must be below 60 in hh:mm:ss")
    return int(m.group("h") or 0) * 3600 + minutes * 60 + seconds


def format_timestamp(seconds: float) -> str:
    """``mm:ss`` (``hh:mm:ss`` from an hour on), seconds rounded to whole numbers."""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def parse_sync(text: str | None, max_points: int = MAX_SYNC_POINTS) -> list[SyncPoint]:
    """Key points of a sync string (``00:10,A; 00:20,B``); ``0``, empty or None mean none."""
    if text is None:
        return []
    raw = str(text).strip()
    if raw in {"", "0", "0.0", "none", "None", "[]"}:
        return []
    points: list[SyncPoint] = []
    for chunk in [c for c in re.split(r"[;\n]", raw) if c.strip()]:
        parts = [p.strip() for p in re.split(r"[,，]", chunk)]
        if len(parts) != 2 or not all(parts):
            raise SyncFormatError(f"bad sync point {chunk.strip()!r} in {raw!r}: expected 'mm:ss,CODE'")
        time_text, code = parts
        code = code.upper()
        if code not in SYNC_CODES:
            raise SyncFormatError(f"bad sync code {parts[1]!r} in {raw!r}: expected one of {', '.join(SYNC_CODES)}")
        try:
            seconds = parse_timestamp(time_text)
        except SyncFormatError as err:
            raise SyncFormatError(f"{err} in sync string {raw!r}") from None
        points.append(SyncPoint(seconds, code))
    if len(points) > max_points:
        raise SyncFormatError(f"{len(points)} sync points in {raw!r}: at most {max_points} allowed")
    return points


def format_sync(points: list[SyncPoint] | list[dict]) -> str:
    """The canonical sync string of key points (``0`` when there are none)."""
    if not points:
        return "0"
    out = []
    for p in points:
        time, code = (p["time"], p["code"]) if isinstance(p, dict) else (p.time, p.code)
        out.append(f"{format_timestamp(time)},{code}")
    return "; ".join(out)
