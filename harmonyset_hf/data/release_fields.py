"""Raw release item -> canonical field values: key aliases, field map, videos, sections, labels, MC options.

The pieces :mod:`harmonyset_hf.data.release` puts together. Each reader raises :class:`Skip` with the
reason when a value cannot be used; the release reader turns that into a reported problem.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from .. import schema
from ..errors import HarmonySetError
from ..text import SyncFormatError, format_sync, parse_sync, unwrap_letters

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".mpeg")
# Canonical field -> keys it may be stored under in a release item (first hit wins).
KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "video_id", "vid", "youtube_id", "yt_id", "uid", "sample_id", "clip_id"),
    "video": ("video", "video_path", "path", "file_name", "filename", "video_file", "file", "clip"),
    "conversations": ("conversations", "conversation", "messages", "dialog"),
    "instruction": ("instruction", "prompt", "query", "input"),
    "annotation": ("annotation", "response", "output", "caption", "description", "gpt", "answer"),
    "category": ("category", "main_category", "cat", "class", "video_category", "category_name"),
    "subcategory": ("subcategory", "sub_category", "subcat", "sub_class", "subcategory_name"),
    "duration": ("duration", "length", "video_duration", "seconds"),
    "sync": ("sync", "key_points", "keypoints", "key_timestamps", "timestamps", "sync_annotation"),
    "labels": ("labels", "label", "human_labels"),
    "metadata": ("metadata", "meta", "info", "video_info"),
    "questions": ("questions", "mc", "mcq", "multiple_choice"),
    "question_id": ("question_id", "qid"),
    "aspect": ("aspect", "dimension", "question_type", "type"),
    "question": ("question", "q"),
    "options": ("options", "choices", "candidates"),
    "answer": ("answer", "correct", "correct_answer", "gt", "label_answer"),
}
METADATA_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "video_title"),
    "author": ("author", "channel", "uploader"),
    "video_width": ("video_width", "width"),
    "video_height": ("video_height", "height"),
    "audio_labels": ("audio_labels", "audioset_labels", "panns_labels"),
    "youtube_id": ("youtube_id", "yt_id", "youtube"),
}


class ReleaseError(HarmonySetError, ValueError):
    """A release file or item that cannot be read (raised at once in strict mode)."""


# --------------------------------------------------------------------------------------------
# Field access
# --------------------------------------------------------------------------------------------
def dig(item: Any, dotted: str) -> Any:
    """The value at a dotted path (``clip.uid``) of nested dicts, or None."""
    for part in dotted.split("."):
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    return item


def get_field(item: dict, name: str, field_map: dict[str, str] | None = None) -> Any:
    """A canonical field of a raw item: the field map first, then the aliases (case-insensitive)."""
    if field_map and name in field_map:
        return dig(item, field_map[name])
    for key in KEY_ALIASES.get(name, (name,)):
        value = item.get(key)
        if value is not None and value != "":
            return value
    return None


def fold_keys(item: Any) -> Any:
    """The item with ``Video ID``/``Sub-Category`` style keys also reachable as ``video_id``/``sub_category``."""
    if not isinstance(item, dict):
        return item
    extra = {k.lower().replace(" ", "_").replace("-", "_"): v for k, v in item.items()
             if isinstance(k, str) and (not k.islower() or " " in k or "-" in k)}
    return {**extra, **item} if extra else item


def load_field_map(spec: str | dict | None) -> dict[str, str] | None:
    """A field map from a dict, a JSON string, a JSON file or ``a=b,c=d`` (canonical name = item key path)."""
    if spec is None or isinstance(spec, dict):
        return spec
    text = Path(spec).read_text(encoding="utf-8") if os.path.isfile(spec) else spec
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        # Neither silently ignored: broken JSON, nor a mistyped file name read as an empty a=b list.
        if text.lstrip().startswith(("{", "[")):
            raise ReleaseError(f"field map is not valid JSON ({err.msg} at character {err.pos})") from None
        parts = [part for part in text.split(",") if part.strip()]
        if not parts or any("=" not in part for part in parts):
            raise ReleaseError(f"field map {spec!r} is neither a JSON object, a JSON file nor name=path pairs "
                               "(e.g. id=clip.uid,annotation=caption)") from None
        mapping = {k.strip(): v.strip() for k, v in (part.split("=", 1) for part in parts)}
    if not isinstance(mapping, dict):
        raise ReleaseError(f"field map must be a JSON object (name -> path), got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(KEY_ALIASES) - set(schema.LABELS) - set(METADATA_ALIASES))
    if unknown:
        raise ReleaseError(f"field map names unknown fields {unknown}; valid: {', '.join(KEY_ALIASES)}")
    return {str(k): str(v) for k, v in mapping.items()}


class Skip(Exception):
    """An item (or MC question) that cannot be used; the message is the reason reported."""


# --------------------------------------------------------------------------------------------
# Videos
# --------------------------------------------------------------------------------------------
class VideoResolver:
    """Finds an item's video under a root: as a relative path, a file name or a bare id (never outside it)."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root).resolve() if root is not None else None
        self._by_name: dict[str, Path] | None = None
        self._by_stem: dict[str, Path] = {}

    def _index(self) -> None:
        self._by_name = {}
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.lower().endswith(VIDEO_EXTENSIONS):
                    self._by_name.setdefault(name, Path(dirpath, name))
                    self._by_stem.setdefault(os.path.splitext(name)[0], Path(dirpath, name))

    @staticmethod
    def check_ref(ref: str) -> str:
        """The reference as a safe relative POSIX path; raises on absolute paths, URLs and '..'."""
        text = str(ref).strip().replace("\\", "/")
        pure = PurePosixPath(text)
        if pure.is_absolute() or re.match(r"^[A-Za-z]:/", text) or "://" in text or ".." in pure.parts:
            raise Skip(f"video path escapes the video root: {ref!r} (absolute paths and '..' are not allowed)")
        return str(pure)

    def resolve(self, ref: str) -> Path | None:
        """The file for a checked reference, or None when it is not under the root.

        The root is compared by real path: a symlink (to a file or a folder) that leads outside
        it, and anything that is not a regular file (a FIFO, a device), raise :class:`Skip` with
        the reason instead of entering a build.
        """
        if self.root is None:
            return None
        candidates = [self.root / ref]
        if PurePosixPath(ref).suffix.lower() not in VIDEO_EXTENSIONS:
            candidates += [self.root / (ref + ext) for ext in VIDEO_EXTENSIONS]
        for path in candidates:
            if os.path.lexists(path) and not os.path.isdir(path):
                return self.checked(path)
        if self._by_name is None:
            self._index()
        name = PurePosixPath(ref).name
        found = self._by_name.get(name) or self._by_stem.get(os.path.splitext(name)[0]) or self._by_stem.get(name)
        return self.checked(found) if found is not None else None

    def checked(self, path: Path) -> Path:
        """The real path of a video found under the root; :class:`Skip` when it leads outside or is no regular file."""
        real = Path(os.path.realpath(path))
        shown = path.relative_to(self.root) if path.is_relative_to(self.root) else path
        if real != self.root and self.root not in real.parents:
            raise Skip(f"video {str(shown)!r} is a symlink to {real}, outside the video root {self.root}")
        try:
            mode = os.stat(real).st_mode
        except OSError as err:
            raise Skip(f"video {str(shown)!r} cannot be read ({err.strerror})") from None
        if not stat.S_ISREG(mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "a device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "a folder")
            raise Skip(f"video {str(shown)!r} is not a regular file but {kind}")
        return real


# --------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------
def clean_text(value: Any) -> str | None:
    """A stripped string (other values as their str), None kept."""
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else str(value)


def read_conversation(item: dict, field_map: dict | None) -> tuple[str | None, str | None]:
    """(instruction, annotation) from VideoLLaMA2 conversations, or from flat fields."""
    conv = get_field(item, "conversations", field_map)
    instruction = clean_text(get_field(item, "instruction", field_map))
    annotation = get_field(item, "annotation", field_map)
    if isinstance(conv, list):
        for turn in conv:
            if not isinstance(turn, dict):
                continue
            who = str(turn.get("from") or turn.get("role") or "").lower()
            value = turn.get("value", turn.get("content"))
            if who in ("human", "user") and instruction is None:
                instruction = clean_text(value)
            elif who in ("gpt", "assistant", "model") and annotation is None:
                annotation = value
    if instruction:
        instruction = re.sub(r"^\s*<video>\s*", "", instruction)
    return instruction, clean_text(annotation) if isinstance(annotation, str) else annotation


def read_sync(value: Any) -> tuple[str, list[dict]]:
    """(canonical sync string, points) from a sync string, 0, or a list of points; Skip when malformed."""
    if value is None or value == 0 or value == []:
        return "0", []
    if isinstance(value, list):  # [{"time", "code"}] or ["00:10,A", ...]
        parts = [f"{p.get('time')},{p.get('code')}" if isinstance(p, dict) else str(p) for p in value]
        if all(isinstance(p, dict) and isinstance(p.get("time"), (int, float)) for p in value):
            points = [{"time": float(p["time"]), "code": schema.normalize_sync_code(p.get("code"))} for p in value]
            if len(points) > schema.MAX_SYNC_POINTS:
                raise Skip(f"malformed sync: {len(points)} points, at most {schema.MAX_SYNC_POINTS} allowed")
            return format_sync(points), points
        value = "; ".join(parts)
    try:
        points = [p.as_dict() for p in parse_sync(str(value))]
    except (SyncFormatError, schema.SchemaError) as err:
        raise Skip(f"malformed sync: {err}") from None
    return format_sync(points), points


def read_labels(item: dict, field_map: dict | None, missing: Counter) -> dict[str, Any]:
    """The 9 sub-aspect labels, normalised (a labels dict or flat keys); missing ones counted, bad ones Skip."""
    raw = get_field(item, "labels", field_map)
    raw = raw if isinstance(raw, dict) else {}
    folded = {}
    for k, v in raw.items():  # any spelling of a sub-aspect's name ("Narrative enhancement") finds its key
        try:
            folded[schema.normalize_sub_aspect(str(k))] = v
        except schema.SchemaError:
            folded[re.sub(r"[^a-z0-9]+", "_", str(k).lower()).strip("_")] = v
    out: dict[str, Any] = {}
    for key in schema.LABELS:
        value = dig(item, field_map[key]) if field_map and key in field_map else folded.get(key, item.get(key))
        if value in (None, "", []):
            missing[f"labels.{key}"] += 1
            out[key] = [] if key in schema.MULTI_LABELS else None
            continue
        try:
            out[key] = schema.normalize_label(key, value)
        except schema.SchemaError as err:
            raise Skip(f"bad label: {err}") from None
    return out


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def read_metadata(item: dict, field_map: dict | None, missing: Counter) -> dict[str, Any]:
    """Title, author, size, AudioSet labels and YouTube id from ``metadata`` or flat keys."""
    raw = get_field(item, "metadata", field_map)
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key, aliases in METADATA_ALIASES.items():
        value = dig(item, field_map[key]) if field_map and key in field_map else None
        for alias in aliases:
            if value is None:
                value = raw.get(alias, item.get(alias))
        if value in (None, "", []):
            missing[f"metadata.{key}"] += 1
        out[key] = value
    labels = out["audio_labels"]
    out["audio_labels"] = ([str(x) for x in labels] if isinstance(labels, list)
                           else [s.strip() for s in str(labels).split("|") if s.strip()] if labels else [])
    out["video_width"], out["video_height"] = _int(out["video_width"]), _int(out["video_height"])
    for key in ("title", "author", "youtube_id"):
        out[key] = clean_text(out[key])
    return out


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        raise Skip(f"bad duration {value!r}: not a number") from None


def read_taxonomy(item: dict, field_map: dict | None, missing: Counter) -> tuple[str | None, str | None]:
    """(category key, subcategory) normalised; the category is inferred from the subcategory when absent."""
    cat, sub = get_field(item, "category", field_map), get_field(item, "subcategory", field_map)
    try:
        cat = schema.normalize_category(cat) if cat is not None else None
    except schema.SchemaError as err:
        raise Skip(f"unknown category: {err}") from None
    try:
        sub = schema.normalize_subcategory(sub, cat) if sub is not None else None
    except schema.SchemaError as err:
        raise Skip(f"unknown subcategory: {err}") from None
    if cat is None and sub is not None:
        cat = schema.SUBCATEGORY_TO_CATEGORY[sub]
    if cat is None:
        missing["category"] += 1
    if sub is None:
        missing["subcategory"] += 1
    return cat, sub


def read_duration(item: dict, field_map: dict | None, missing: Counter) -> float | None:
    """Seconds, from ``duration`` or ``metadata.duration`` (None when absent)."""
    value = get_field(item, "duration", field_map)
    if value is None and isinstance(get_field(item, "metadata", field_map), dict):
        value = get_field(item, "metadata", field_map).get("duration")
    if value is None:
        missing["duration"] += 1
    return _float(value)


# --------------------------------------------------------------------------------------------
# MC questions
# --------------------------------------------------------------------------------------------
_OPTION_LINE = re.compile(r"(?m)^\s*\(?([A-Da-d])\s*[.):：]\s*(.*\S)?\s*$")


def parse_options(raw: Any) -> list[str]:
    """Four option texts, A-D in order, from a list, a dict keyed by letter, or 'A. ...' lines."""
    if isinstance(raw, dict):
        by_letter = {str(k).strip().strip(".)(").upper(): v for k, v in raw.items()}
        missing = [x for x in schema.OPTION_LETTERS if x not in by_letter]
        if missing or len(by_letter) != 4:
            raise Skip(f"bad options: expected keys A-D, got {sorted(raw)}")
        texts = [by_letter[x] for x in schema.OPTION_LETTERS]
    elif isinstance(raw, str):
        found = _OPTION_LINE.findall(raw)
        letters = [m[0].upper() for m in found]
        if letters != list(schema.OPTION_LETTERS):
            raise Skip(f"bad options: expected lines 'A. ...' to 'D. ...', got letters {letters}")
        texts = [m[1] for m in found]
    elif isinstance(raw, list):
        if len(raw) != 4:
            raise Skip(f"bad options: expected 4, got {len(raw)}")
        texts = [re.sub(r"^\s*\(?[A-Da-d]\s*[.):]\s+", "", str(t)) if isinstance(t, str) else t for t in raw]
    else:
        raise Skip(f"bad options: expected a list, a dict or 'A. ...' lines, got {type(raw).__name__}")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise Skip("bad options: an option is empty")
    return [t.strip() for t in texts]


def parse_answer(raw: Any, options: list[str]) -> str:
    """The answer letter from 'B', '(b)', "'B'", '“C”', 'Ｂ', 'B. text', the option text or a 0-based index."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 4:
        return schema.OPTION_LETTERS[raw]
    text = str(raw or "").strip()
    m = re.match(r"^\(?([A-Da-d])\)?(?:\s*[.):]|\s*$)", unwrap_letters(text))  # quotes of any kind: (B)
    if m:
        return m.group(1).upper()
    for letter, option in zip(schema.OPTION_LETTERS, options):
        if text and text.lower() == option.lower():
            return letter
    raise Skip(f"bad answer {raw!r}: expected a letter A-D or an option's text")


def read_question(q: dict, item_id: str, field_map: dict | None) -> dict:
    """One canonical MC question (question_id, aspect, question, 4 options, answer letter); Skip when unusable."""
    aspect = get_field(q, "aspect", field_map)
    qid = get_field(q, "question_id", field_map)
    if aspect is None and isinstance(qid, str) and ":" in qid:
        aspect = qid.rsplit(":", 1)[1]
    try:
        aspect = schema.normalize_aspect(aspect)
    except schema.SchemaError as err:
        raise Skip(f"bad aspect: {err}") from None
    question = clean_text(get_field(q, "question", field_map))
    if not question:
        raise Skip(f"missing question for aspect {aspect!r}")
    raw_options = get_field(q, "options", field_map)
    if raw_options is None and all(x in q for x in schema.OPTION_LETTERS):
        raw_options = {x: q[x] for x in schema.OPTION_LETTERS}
    if raw_options is None:  # options written inside the question text
        parts = re.split(r"(?m)^(?=\s*\(?A\s*[.):])", question, maxsplit=1)
        if len(parts) != 2:
            raise Skip(f"missing options for aspect {aspect!r}")
        question, raw_options = parts[0].strip(), parts[1]
    options = parse_options(raw_options)
    answer = parse_answer(get_field(q, "answer", field_map), options)
    return {"question_id": f"{item_id}:{aspect}", "aspect": aspect, "question": question,
            "options": options, "answer": answer}

