"""Reading the published release files into canonical records (the only reader of raw release files).

The public HarmonySet release (``Zzitang/HarmonySet``: ``HarmonySet_Train.json``, ``HarmonySet_Test.json``)
has not been read here field by field, so the reader is tolerant: a JSON list, a JSON object
holding one, or JSON Lines; VideoLLaMA2 ``conversations`` or flat fields; the key aliases in
:data:`KEY_ALIASES`; a video given as a path, a file name or a bare id; and a ``field_map`` for a
layout not seen before. Every item that cannot be used is reported as a :class:`Problem` with its
id and the reason, and the rest goes on (``strict=True`` stops at the first one instead).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import schema
from .errors import HarmonySetError
from .text import SyncFormatError, find_sections, format_sync, parse_sync

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
ROLES = ("train", "test", "mc")  # release file roles -> configs instruct, oe, mc
ROLE_CONFIG = {"train": "instruct", "test": "oe", "mc": "mc"}


class ReleaseError(HarmonySetError, ValueError):
    """A release file or item that cannot be read (raised at once in strict mode)."""


@dataclass
class Problem:
    """One release item (or MC question) that was skipped, and why."""

    id: str | None
    config: str
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} id={self.id!r} ({self.config}): {self.reason}"


@dataclass
class Release:
    """Canonical records of each config, the problems met, and counts of defaulted fields."""

    records: dict[str, list[dict]] = field(default_factory=lambda: {c: [] for c in schema.CONFIGS})
    problems: list[Problem] = field(default_factory=list)
    missing_fields: Counter = field(default_factory=Counter)
    files: dict[str, list[str]] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary: counts per config, skips with their reasons, defaulted fields."""
        return {
            "counts": {c: len(r) for c, r in self.records.items()},
            "skipped_count": len(self.problems),
            "skipped_by_reason": dict(Counter(_reason_kind(p.reason) for p in self.problems)),
            "skipped": [asdict(p) for p in self.problems],
            "missing_fields": dict(self.missing_fields),
            "release_files": self.files,
        }


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def discover_files(release: str | os.PathLike) -> dict[str, list[Path]]:
    """Release files by role (train, test, mc) in a folder, judged by their names; a file is its own role."""
    path = Path(release)
    if not path.exists():
        raise ReleaseError(f"release path {path} does not exist")
    candidates = [path] if path.is_file() else sorted(p for p in path.iterdir()
                                                      if p.is_file() and p.suffix.lower() in (".json", ".jsonl"))
    out: dict[str, list[Path]] = {r: [] for r in ROLES}
    for p in candidates:
        name = p.stem.lower()
        if re.search(r"(^|[^a-z])(mc|mcq)([^a-z]|$)|multiple|choice", name):
            out["mc"].append(p)
        elif "train" in name or "sft" in name or "instruct" in name:
            out["train"].append(p)
        elif "test" in name or "eval" in name or re.search(r"(^|[^a-z])oe([^a-z]|$)", name):
            out["test"].append(p)
    if not any(out.values()):
        raise ReleaseError(f"no release files (*train*.json[l], *test*.json[l], *mc*.json[l]) in {path}")
    return out


def iter_json_items(path: str | os.PathLike, chunk_size: int = 1 << 20) -> Iterator[dict]:
    """Items of a JSON list (streamed), a JSON object holding a list or an id->item map, or JSON Lines."""
    path = Path(path)
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8-sig") as fh:
        buf = fh.read(chunk_size)
        start = len(buf) - len(buf.lstrip())
        if not buf.strip():
            return
        if buf[start] == "[":
            yield from _stream_list(fh, buf, start + 1, decoder, path, chunk_size)
            return
        first_line, _, rest = buf[start:].partition("\n")
        try:
            json.loads(first_line)
            is_jsonl = bool(rest.strip()) or len(buf) == chunk_size  # one object alone is not JSON Lines
        except json.JSONDecodeError:
            is_jsonl = False
        if not is_jsonl:
            obj = json.loads(buf + fh.read())
            yield from _items_of_object(obj, path)
            return
    with path.open("r", encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ReleaseError(f"{path}:{number}: not valid JSON ({err.msg})") from None


def _stream_list(fh, buf: str, pos: int, decoder: json.JSONDecoder, path: Path, chunk_size: int) -> Iterator[dict]:
    """Decode the items of a JSON list one by one, holding about one chunk of text at a time."""
    while True:
        while True:  # skip separators, reading on when the buffer runs out
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf):
                break
            buf, pos = fh.read(chunk_size), 0
            if not buf:
                raise ReleaseError(f"{path}: the JSON list is not closed (truncated file?)")
        if buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as err:
            more = fh.read(chunk_size)
            if not more:
                raise ReleaseError(f"{path}: a list item is not valid JSON ({err.msg})") from None
            buf, pos = buf[pos:] + more, 0
            continue
        yield obj
        pos = end
        if pos > chunk_size:
            buf, pos = buf[pos:], 0


def _items_of_object(obj: Any, path: Path) -> Iterator[dict]:
    if isinstance(obj, list):
        yield from obj
        return
    if isinstance(obj, dict):
        for key in ("data", "items", "annotations", "records", "questions"):
            if isinstance(obj.get(key), list):
                yield from obj[key]
                return
        if obj and all(isinstance(v, dict) for v in obj.values()):  # {id: item}
            for key, value in obj.items():
                yield {"id": key, **value} if not _get(value, "id") else value
            return
        yield obj
        return
    raise ReleaseError(f"{path}: expected a JSON list or object, got {type(obj).__name__}")


# --------------------------------------------------------------------------------------------
# Field access
# --------------------------------------------------------------------------------------------
def _dig(item: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    return item


def _get(item: dict, name: str, field_map: dict[str, str] | None = None) -> Any:
    """A canonical field of a raw item: the field map first, then the aliases (case-insensitive)."""
    if field_map and name in field_map:
        return _dig(item, field_map[name])
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
    except json.JSONDecodeError:
        mapping = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    unknown = sorted(set(mapping) - set(KEY_ALIASES) - set(schema.LABELS) - set(METADATA_ALIASES))
    if unknown:
        raise ReleaseError(f"field map names unknown fields {unknown}; valid: {', '.join(KEY_ALIASES)}")
    return {str(k): str(v) for k, v in mapping.items()}


class _Skip(Exception):
    pass


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
            raise _Skip(f"video path escapes the video root: {ref!r} (absolute paths and '..' are not allowed)")
        return str(pure)

    def resolve(self, ref: str) -> Path | None:
        """The file for a checked reference, or None when it is not under the root."""
        if self.root is None:
            return None
        direct = self.root / ref
        if direct.is_file():
            return direct
        if PurePosixPath(ref).suffix.lower() not in VIDEO_EXTENSIONS:
            for ext in VIDEO_EXTENSIONS:
                if (self.root / (ref + ext)).is_file():
                    return self.root / (ref + ext)
        if self._by_name is None:
            self._index()
        name = PurePosixPath(ref).name
        return self._by_name.get(name) or self._by_stem.get(os.path.splitext(name)[0]) or self._by_stem.get(name)


# --------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else str(value)


def _conversation(item: dict, field_map: dict | None) -> tuple[str | None, str | None]:
    """(instruction, annotation) from VideoLLaMA2 conversations, or from flat fields."""
    conv = _get(item, "conversations", field_map)
    instruction = _text(_get(item, "instruction", field_map))
    annotation = _get(item, "annotation", field_map)
    if isinstance(conv, list):
        for turn in conv:
            if not isinstance(turn, dict):
                continue
            who = str(turn.get("from") or turn.get("role") or "").lower()
            value = turn.get("value", turn.get("content"))
            if who in ("human", "user") and instruction is None:
                instruction = _text(value)
            elif who in ("gpt", "assistant", "model") and annotation is None:
                annotation = value
    if instruction:
        instruction = re.sub(r"^\s*<video>\s*", "", instruction)
    return instruction, _text(annotation) if isinstance(annotation, str) else annotation


def _sync(value: Any) -> tuple[str, list[dict]]:
    if value is None or value == 0 or value == []:
        return "0", []
    if isinstance(value, list):  # [{"time", "code"}] or ["00:10,A", ...]
        parts = [f"{p.get('time')},{p.get('code')}" if isinstance(p, dict) else str(p) for p in value]
        if all(isinstance(p, dict) and isinstance(p.get("time"), (int, float)) for p in value):
            points = [{"time": float(p["time"]), "code": schema.normalize_sync_code(p.get("code"))} for p in value]
            if len(points) > schema.MAX_SYNC_POINTS:
                raise _Skip(f"malformed sync: {len(points)} points, at most {schema.MAX_SYNC_POINTS} allowed")
            return format_sync(points), points
        value = "; ".join(parts)
    try:
        points = [p.as_dict() for p in parse_sync(str(value))]
    except (SyncFormatError, schema.SchemaError) as err:
        raise _Skip(f"malformed sync: {err}") from None
    return format_sync(points), points


def _labels(item: dict, field_map: dict | None, missing: Counter) -> dict[str, Any]:
    raw = _get(item, "labels", field_map)
    raw = raw if isinstance(raw, dict) else {}
    folded = {re.sub(r"[^a-z0-9]+", "_", str(k).lower()).strip("_"): v for k, v in raw.items()}
    out: dict[str, Any] = {}
    for key in schema.LABELS:
        value = _dig(item, field_map[key]) if field_map and key in field_map else folded.get(key, item.get(key))
        if value in (None, "", []):
            missing[f"labels.{key}"] += 1
            out[key] = [] if key in schema.MULTI_LABELS else None
            continue
        try:
            out[key] = schema.normalize_label(key, value)
        except schema.SchemaError as err:
            raise _Skip(f"bad label: {err}") from None
    return out


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _metadata(item: dict, field_map: dict | None, missing: Counter) -> dict[str, Any]:
    raw = _get(item, "metadata", field_map)
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key, aliases in METADATA_ALIASES.items():
        value = _dig(item, field_map[key]) if field_map and key in field_map else None
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
        out[key] = _text(out[key])
    return out


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        raise _Skip(f"bad duration {value!r}: not a number") from None


def _taxonomy(item: dict, field_map: dict | None, missing: Counter) -> tuple[str | None, str | None]:
    cat, sub = _get(item, "category", field_map), _get(item, "subcategory", field_map)
    try:
        cat = schema.normalize_category(cat) if cat is not None else None
    except schema.SchemaError as err:
        raise _Skip(f"unknown category: {err}") from None
    try:
        sub = schema.normalize_subcategory(sub, cat) if sub is not None else None
    except schema.SchemaError as err:
        raise _Skip(f"unknown subcategory: {err}") from None
    if cat is None and sub is not None:
        cat = schema.SUBCATEGORY_TO_CATEGORY[sub]
    if cat is None:
        missing["category"] += 1
    if sub is None:
        missing["subcategory"] += 1
    return cat, sub


def _duration(item: dict, field_map: dict | None, missing: Counter) -> float | None:
    value = _get(item, "duration", field_map)
    if value is None and isinstance(_get(item, "metadata", field_map), dict):
        value = _get(item, "metadata", field_map).get("duration")
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
            raise _Skip(f"bad options: expected keys A-D, got {sorted(raw)}")
        texts = [by_letter[x] for x in schema.OPTION_LETTERS]
    elif isinstance(raw, str):
        found = _OPTION_LINE.findall(raw)
        letters = [m[0].upper() for m in found]
        if letters != list(schema.OPTION_LETTERS):
            raise _Skip(f"bad options: expected lines 'A. ...' to 'D. ...', got letters {letters}")
        texts = [m[1] for m in found]
    elif isinstance(raw, list):
        if len(raw) != 4:
            raise _Skip(f"bad options: expected 4, got {len(raw)}")
        texts = [re.sub(r"^\s*\(?[A-Da-d]\s*[.):]\s+", "", str(t)) if isinstance(t, str) else t for t in raw]
    else:
        raise _Skip(f"bad options: expected a list, a dict or 'A. ...' lines, got {type(raw).__name__}")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise _Skip("bad options: an option is empty")
    return [t.strip() for t in texts]


def parse_answer(raw: Any, options: list[str]) -> str:
    """The answer letter from 'B', '(b)', 'B. text', the option text or a 0-based index."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 4:
        return schema.OPTION_LETTERS[raw]
    text = str(raw or "").strip()
    m = re.match(r"^\(?([A-Da-d])\)?(?:\s*[.):]|\s*$)", text)
    if m:
        return m.group(1).upper()
    for letter, option in zip(schema.OPTION_LETTERS, options):
        if text and text.lower() == option.lower():
            return letter
    raise _Skip(f"bad answer {raw!r}: expected a letter A-D or an option's text")


def _question(q: dict, item_id: str, field_map: dict | None) -> dict:
    aspect = _get(q, "aspect", field_map)
    qid = _get(q, "question_id", field_map)
    if aspect is None and isinstance(qid, str) and ":" in qid:
        aspect = qid.rsplit(":", 1)[1]
    try:
        aspect = schema.normalize_aspect(aspect)
    except schema.SchemaError as err:
        raise _Skip(f"bad aspect: {err}") from None
    question = _text(_get(q, "question", field_map))
    if not question:
        raise _Skip(f"missing question for aspect {aspect!r}")
    raw_options = _get(q, "options", field_map)
    if raw_options is None and all(x in q for x in schema.OPTION_LETTERS):
        raw_options = {x: q[x] for x in schema.OPTION_LETTERS}
    if raw_options is None:  # options written inside the question text
        parts = re.split(r"(?m)^(?=\s*\(?A\s*[.):])", question, maxsplit=1)
        if len(parts) != 2:
            raise _Skip(f"missing options for aspect {aspect!r}")
        question, raw_options = parts[0].strip(), parts[1]
    options = parse_options(raw_options)
    answer = parse_answer(_get(q, "answer", field_map), options)
    return {"question_id": f"{item_id}:{aspect}", "aspect": aspect, "question": question,
            "options": options, "answer": answer}


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------
class ReleaseReader:
    """Reads release files into canonical records, one item at a time, collecting problems."""

    def __init__(self, videos_dir: str | os.PathLike | None = None, field_map: dict | str | None = None,
                 strict: bool = False, check_videos: bool = True):
        self.videos = VideoResolver(videos_dir if check_videos else None)
        self.field_map = load_field_map(field_map)
        self.strict = strict
        self.release = Release()
        self._ids: dict[str, str] = {}  # id -> config of instruct/oe items seen
        self._qids: set[str] = set()
        self._test_items: dict[str, dict] = {}  # id -> what MC rows borrow from the OE record

    def _problem(self, item_id: Any, config: str, source: str, reason: str) -> None:
        problem = Problem(None if item_id is None else str(item_id), config, source, reason)
        if self.strict:
            raise ReleaseError(str(problem))
        self.release.problems.append(problem)

    def _video(self, item: dict, item_id: str) -> str:
        ref = _get(item, "video", self.field_map)
        ref = VideoResolver.check_ref(ref if isinstance(ref, str) and ref.strip() else item_id)
        if self.videos.root is None:
            return ref
        found = self.videos.resolve(ref)
        if found is None:
            raise _Skip(f"missing video: {ref!r} not found under {self.videos.root}")
        return str(found)

    def _id(self, item: Any) -> str:
        if not isinstance(item, dict):
            raise _Skip(f"not a JSON object but {type(item).__name__}")
        item_id = _get(item, "id", self.field_map)
        if item_id is None and isinstance(_get(item, "question_id", self.field_map), str):
            item_id = _get(item, "question_id", self.field_map).rsplit(":", 1)[0]
        if item_id is None:
            ref = _get(item, "video", self.field_map)
            item_id = os.path.splitext(PurePosixPath(str(ref)).name)[0] if ref else None
        if item_id in (None, ""):
            raise _Skip("missing id (no id/video_id/vid/youtube_id/video field)")
        return str(item_id).strip()

    def record(self, item: dict, config: str) -> dict:
        """The canonical instruct/oe record of one raw item (raises _Skip with the reason)."""
        fm, missing = self.field_map, self.release.missing_fields
        item_id = self._id(item)
        instruction, annotation = _conversation(item, fm)
        flat = {a: _text(_get(item, a, fm)) for a in schema.ASPECTS}
        if not isinstance(annotation, str) or not annotation.strip():
            if all(flat.values()):
                annotation = "\n".join(f"{schema.CANONICAL_HEADERS[a]}: {flat[a]}" for a in schema.ASPECTS)
            else:
                raise _Skip("missing annotation (no gpt turn and no annotation field)")
        sections = find_sections(annotation)
        if not sections.ok:
            raise _Skip("; ".join(sections.problems()))
        category, subcategory = _taxonomy(item, fm, missing)
        sync, points = _sync(_get(item, "sync", fm))
        if _get(item, "sync", fm) is None:
            missing["sync"] += 1
        if instruction is None:
            missing["instruction"] += 1
        rec = {"video": None, "id": item_id, "category": category, "subcategory": subcategory,
               "duration": _duration(item, fm, missing), "instruction": instruction, "annotation": annotation,
               **sections.sections, "sync": sync, "sync_points": points,
               "labels": _labels(item, fm, missing), "metadata": _metadata(item, fm, missing)}
        if item_id in self._ids:
            raise _Skip(f"duplicate id: already read in {self._ids[item_id]}")
        rec["video"] = self._video(item, item_id)
        return rec

    def mc_rows(self, item: dict, source: str) -> Iterator[dict]:
        """Canonical MC rows of one raw item: a `questions` list or one flat per-question row."""
        fm = self.field_map
        item_id = self._id(item)
        base = self._test_items.get(item_id, {})
        if not base:
            cat, sub = _taxonomy(item, fm, self.release.missing_fields)
            base = {"video": self._video(item, item_id), "category": cat, "subcategory": sub,
                    "duration": _duration(item, fm, self.release.missing_fields)}
        questions = _get(item, "questions", fm)
        questions = questions if isinstance(questions, list) else [item]
        for number, q in enumerate(questions):
            try:
                if not isinstance(q, dict):
                    raise _Skip(f"question {number} is not a JSON object")
                row = _question(fold_keys(q), item_id, fm)
                if row["question_id"] in self._qids:
                    raise _Skip(f"duplicate question_id {row['question_id']!r}")
            except _Skip as skip:
                self._problem(item_id, "mc", f"{source} question {number}", str(skip))
                continue
            self._qids.add(row["question_id"])
            yield {"video": base["video"], "id": item_id, "category": base["category"],
                   "subcategory": base["subcategory"], "duration": base["duration"], **row}

    def read_file(self, path: Path, role: str) -> Iterator[tuple[str, dict]]:
        """(config, canonical record) pairs of one release file; problems are collected, not raised."""
        config = ROLE_CONFIG[role]
        self.release.files.setdefault(role, []).append(str(path))
        for index, item in enumerate(iter_json_items(path)):
            source = f"{path.name}[{index}]"
            item = fold_keys(item)
            try:
                if role == "mc" or (isinstance(item, dict) and _get(item, "question", self.field_map)
                                    and _get(item, "conversations", self.field_map) is None):
                    for row in self.mc_rows(item, source):
                        yield "mc", row
                    continue
                rec = self.record(item, config)
            except _Skip as skip:
                self._problem(_get(item, "id", self.field_map) if isinstance(item, dict) else None,
                              "mc" if role == "mc" else config, source, str(skip))
                continue
            except schema.SchemaError as err:
                self._problem(_get(item, "id", self.field_map), config, source, str(err))
                continue
            self._ids[rec["id"]] = config
            if config == "oe":
                self._test_items[rec["id"]] = {k: rec[k] for k in ("video", "category", "subcategory", "duration")}
            yield config, rec
            embedded = _get(item, "questions", self.field_map)
            if config == "oe" and isinstance(embedded, list):
                for row in self.mc_rows(item, source):
                    yield "mc", row


def iter_release(release: str | os.PathLike, reader: ReleaseReader) -> Iterator[tuple[str, dict]]:
    """(config, record) pairs of every release file, train first, then test, then MC."""
    files = discover_files(release)
    for role in ROLES:
        for path in files[role]:
            yield from reader.read_file(path, role)


def read_release(release: str | os.PathLike, videos_dir: str | os.PathLike | None = None,
                 field_map: dict | str | None = None, strict: bool = False, check_videos: bool = True) -> Release:
    """Read a release folder (or one file) into canonical records per config, with the problems met."""
    reader = ReleaseReader(videos_dir, field_map=field_map, strict=strict, check_videos=check_videos)
    for config, rec in iter_release(release, reader):
        reader.release.records[config].append(rec)
    return reader.release
