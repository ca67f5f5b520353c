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

from .. import schema
from ..text import find_sections
from .release_fields import (  # noqa: F401 - re-exported: the public names of the reader
    KEY_ALIASES,
    METADATA_ALIASES,
    VIDEO_EXTENSIONS,
    ReleaseError,
    Skip,
    VideoResolver,
    clean_text,
    fold_keys,
    get_field,
    load_field_map,
    parse_answer,
    parse_options,
    read_conversation,
    read_duration,
    read_labels,
    read_metadata,
    read_question,
    read_sync,
    read_taxonomy,
)

ROLES = ("train", "test", "mc")  # release file roles -> configs instruct, oe, mc
ROLE_CONFIG = {"train": "instruct", "test": "oe", "mc": "mc"}


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


MAX_ITEM_CHARS = 64 << 20  # one release item is a few KB; a "list item" of 64 MB is a broken file, not an item
_ID_RE = re.compile(r'"(?:id|video_id|vid|youtube_id|question_id)"\s*:\s*"([^"\\]{1,200})"')


def iter_json_items(path: str | os.PathLike, chunk_size: int = 1 << 20) -> Iterator[dict]:
    """Items of a JSON list (streamed), a JSON object holding a list or an id->item map, or JSON Lines.

    A file that is not UTF-8, JSON nested too deeply to decode, or an item that is not valid JSON
    raise one :class:`ReleaseError` line naming the file and the item (position, line and id).
    """
    path = Path(path)
    try:
        yield from _iter_json_items(path, chunk_size)
    except UnicodeDecodeError as err:
        raise ReleaseError(f"{path}: not UTF-8 text ({err.reason}: byte {err.object[err.start:err.start + 1]!r}); "
                           "save the release as UTF-8") from None
    except RecursionError:
        raise ReleaseError(f"{path}: JSON nested too deeply to read (thousands of levels): "
                           "not a release file") from None


def _iter_json_items(path: Path, chunk_size: int) -> Iterator[dict]:
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
            try:
                obj = json.loads(buf + fh.read())
            except json.JSONDecodeError as err:
                raise ReleaseError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno} "
                                   f"({err.msg})") from None
            yield from _items_of_object(obj, path)
            return
    with path.open("r", encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ReleaseError(f"{path}:{number}: the item on line {number}{_id_hint(line)} is not valid "
                                       f"JSON ({err.msg} at column {err.colno})") from None


def _id_hint(text: str) -> str:
    """``, id 'x'`` when the start of a broken item's text shows its id, else nothing."""
    m = _ID_RE.search(text[:4096])
    return f", id {m.group(1)!r}" if m else ""


def _incomplete(err: json.JSONDecodeError, buf: str) -> bool:
    """True when decoding failed only because the buffer ends inside the item (read more), not on bad JSON."""
    return err.msg.startswith("Unterminated string") or err.pos >= len(buf) - 8


def _stream_list(fh, buf: str, pos: int, decoder: json.JSONDecoder, path: Path, chunk_size: int) -> Iterator[dict]:
    """Decode the items of a JSON list one by one, holding about one item (or chunk) of text at a time.

    Each item is decoded once more per doubling of the text read for it, so a large item costs
    linear time, and a bad item is reported at once (by position, line and id) instead of after
    re-reading the rest of the file.
    """
    index = 0
    first_line = 1  # line number of buf[0]

    def drop(upto: int) -> None:  # forget buf[:upto], keeping count of its lines
        nonlocal buf, pos, first_line
        first_line += buf.count("\n", 0, upto)
        buf, pos = buf[upto:], pos - upto

    while True:
        while True:  # skip separators, reading on when the buffer runs out
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf):
                break
            drop(len(buf))
            buf = fh.read(chunk_size)
            if not buf:
                raise ReleaseError(f"{path}: the JSON list is not closed after item {index - 1} (truncated file?)")
        if buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as err:
            where = (f"{path}: list item {index} (from line {first_line + buf.count(chr(10), 0, pos)}"
                     f"{_id_hint(buf[pos:pos + 4096])})")
            if not _incomplete(err, buf):
                raise ReleaseError(f"{where} is not valid JSON: {err.msg} at line {first_line + err.lineno - 1}, "
                                   f"column {err.colno}") from None
            if len(buf) - pos > MAX_ITEM_CHARS:
                raise ReleaseError(f"{where} runs past {MAX_ITEM_CHARS >> 20} MB: not one release item "
                                   "(a broken file?)") from None
            more = fh.read(max(chunk_size, len(buf) - pos))  # double what is held: linear time for a big item
            if not more:
                raise ReleaseError(f"{where} is not valid JSON ({err.msg}; truncated file?)") from None
            drop(pos)
            buf += more
            continue
        yield obj
        index += 1
        pos = end
        if pos > chunk_size:
            drop(pos)


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
                yield {"id": key, **value} if not get_field(value, "id") else value
            return
        yield obj
        return
    raise ReleaseError(f"{path}: expected a JSON list or object, got {type(obj).__name__}")


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
        ref = get_field(item, "video", self.field_map)
        ref = VideoResolver.check_ref(ref if isinstance(ref, str) and ref.strip() else item_id)
        if self.videos.root is None:
            return ref
        found = self.videos.resolve(ref)
        if found is None and ref != item_id:  # `harmonyset videos download` names each file by the item's id
            try:
                found = self.videos.resolve(VideoResolver.check_ref(item_id))
            except Skip:  # an id that is no safe file name cannot be one
                found = None
        if found is None:
            raise Skip(f"missing video: {ref!r} not found under {self.videos.root}")
        return str(found)

    def _id(self, item: Any) -> str:
        if not isinstance(item, dict):
            raise Skip(f"not a JSON object but {type(item).__name__}")
        item_id = get_field(item, "id", self.field_map)
        if item_id is None and isinstance(get_field(item, "question_id", self.field_map), str):
            item_id = get_field(item, "question_id", self.field_map).rsplit(":", 1)[0]
        if item_id is None:
            ref = get_field(item, "video", self.field_map)
            item_id = os.path.splitext(PurePosixPath(str(ref)).name)[0] if ref else None
        if item_id in (None, ""):
            raise Skip("missing id (no id/video_id/vid/youtube_id/video field)")
        return str(item_id).strip()

    def record(self, item: dict, config: str) -> dict:
        """The canonical instruct/oe record of one raw item (raises Skip with the reason)."""
        fm, missing = self.field_map, self.release.missing_fields
        item_id = self._id(item)
        instruction, annotation = read_conversation(item, fm)
        flat = {a: clean_text(get_field(item, a, fm)) for a in schema.ASPECTS}
        if not isinstance(annotation, str) or not annotation.strip():
            if all(flat.values()):
                annotation = "\n".join(f"{schema.CANONICAL_HEADERS[a]}: {flat[a]}" for a in schema.ASPECTS)
            else:
                raise Skip("missing annotation (no gpt turn and no annotation field)")
        sections = find_sections(annotation)
        if not sections.ok:
            raise Skip("; ".join(sections.problems()))
        category, subcategory = read_taxonomy(item, fm, missing)
        sync, points = read_sync(get_field(item, "sync", fm))
        if get_field(item, "sync", fm) is None:
            missing["sync"] += 1
        if instruction is None:
            missing["instruction"] += 1
        rec = {"video": None, "id": item_id, "category": category, "subcategory": subcategory,
               "duration": read_duration(item, fm, missing), "instruction": instruction, "annotation": annotation,
               **sections.sections, "sync": sync, "sync_points": points,
               "labels": read_labels(item, fm, missing), "metadata": read_metadata(item, fm, missing)}
        if item_id in self._ids:
            raise Skip(f"duplicate id: already read in {self._ids[item_id]}")
        rec["video"] = self._video(item, item_id)
        return rec

    def mc_rows(self, item: dict, source: str) -> Iterator[dict]:
        """Canonical MC rows of one raw item: a `questions` list or one flat per-question row."""
        fm = self.field_map
        item_id = self._id(item)
        base = self._test_items.get(item_id, {})
        if not base:
            cat, sub = read_taxonomy(item, fm, self.release.missing_fields)
            base = {"video": self._video(item, item_id), "category": cat, "subcategory": sub,
                    "duration": read_duration(item, fm, self.release.missing_fields)}
        questions = get_field(item, "questions", fm)
        questions = questions if isinstance(questions, list) else [item]
        for number, q in enumerate(questions):
            try:
                if not isinstance(q, dict):
                    raise Skip(f"question {number} is not a JSON object")
                row = read_question(fold_keys(q), item_id, fm)
                if row["question_id"] in self._qids:
                    raise Skip(f"duplicate question_id {row['question_id']!r}")
            except Skip as skip:
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
                if role == "mc" or (isinstance(item, dict) and get_field(item, "question", self.field_map)
                                    and get_field(item, "conversations", self.field_map) is None):
                    for row in self.mc_rows(item, source):
                        yield "mc", row
                    continue
                rec = self.record(item, config)
            except Skip as skip:
                self._problem(get_field(item, "id", self.field_map) if isinstance(item, dict) else None,
                              "mc" if role == "mc" else config, source, str(skip))
                continue
            except schema.SchemaError as err:
                self._problem(get_field(item, "id", self.field_map), config, source, str(err))
                continue
            self._ids[rec["id"]] = config
            if config == "oe":
                self._test_items[rec["id"]] = {k: rec[k] for k in ("video", "category", "subcategory", "duration")}
            yield config, rec
            embedded = get_field(item, "questions", self.field_map)
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
