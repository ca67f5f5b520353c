"""The MLLM that writes the final annotation from the human tags, the metadata and the clip (paper Fig. 10).

Each request is the clip (frames with their times, and the soundtrack, as
:func:`harmonyset_hf.models.openai_api.clip_messages` sends them) followed by the paper's
annotation-generation prompt verbatim and, after it, the human tags (the consensus sync string as
``sync_answer.value`` and the 9 sub-aspect labels) and the metadata (title and the 10 music tags)
that the prompt refers to. Replies are validated (:func:`validate_annotation`): the four sections
present and not empty, no label wording copied (tag names, raw ``mm:ss,CODE`` points, quoted
label values, talk of "the labels"), and every key timestamp discussed in Rhythm and
Synchronization. An invalid reply is asked again, with the reasons, as a follow-up turn (up to
``max_attempts`` asks). Calls go through :class:`harmonyset_hf.llm.LLMClient` (env prefix
``HARMONYSET_ANNOTATOR``): concurrent, cached, and the output JSON Lines file is appended batch by
batch, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .. import schema
from ..data.release import ReleaseError, iter_json_items
from ..data.release_fields import (
    Skip,
    VideoResolver,
    fold_keys,
    get_field,
    read_duration,
    read_metadata,
    read_taxonomy,
)
from ..errors import ConfigError, HarmonySetError
from ..io import append_jsonl, read_jsonl
from ..llm import ChatRequest, LLMClient
from ..media import load_clip
from ..models.openai_api import clip_messages
from ..text import find_sections, format_timestamp, parse_sync

log = logging.getLogger(__name__)

ENV_PREFIX = "HARMONYSET_ANNOTATOR"
PROMPT_FILE = "prompts/annotation_generation.txt"
_TAG_NAMES = ("sync_answer", *schema.LABELS)


class DescribeError(HarmonySetError):
    """Inputs the describe step cannot use (unknown ids, missing videos, unresolved labels)."""


@functools.cache
def generation_prompt() -> str:
    """The paper's annotation-generation prompt (Fig. 10), verbatim."""
    return resources.files("harmonyset_hf").joinpath(PROMPT_FILE).read_text(encoding="utf-8").rstrip("\n")


def prompt_sha256() -> str:
    """sha256 of the generation prompt, recorded in the run summary."""
    return hashlib.sha256(generation_prompt().encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; a missing one is a DescribeError naming it and what it should hold."""
    if not Path(path).is_file():
        raise DescribeError(f"{path}: no such file ({what})")
    return Path(path)


def read_metadata_files(paths: Sequence[str | os.PathLike]) -> dict[str, dict[str, Any]]:
    """Metadata by id from release JSON / JSON Lines files (later files fill what earlier ones lack)."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        require_file(path, "metadata: a release JSON or JSON Lines file")
        try:
            _read_metadata_file(path, out)
        except (json.JSONDecodeError, UnicodeDecodeError, ReleaseError) as err:  # the reader's own errors name the spot
            raise DescribeError(f"{path}: not a JSON / JSON Lines metadata file ({err})") from None
    return out


def _read_metadata_file(path: str | os.PathLike, out: dict[str, dict[str, Any]]) -> None:
    """Add one metadata file's items to ``out`` (filling what earlier files lack)."""
    from collections import Counter

    items: Iterator[dict] = (read_jsonl(path) if str(path).endswith((".jsonl", ".ndjson"))
                             else iter_json_items(path))
    for index, raw in enumerate(items):
        item = fold_keys(raw)
        item_id = get_field(item, "id")
        if item_id in (None, ""):
            raise DescribeError(f"{path}[{index}]: no id field")
        missing: Counter = Counter()
        try:
            category, subcategory = read_taxonomy(item, None, missing)
            duration = read_duration(item, None, missing)
        except Skip as skip:
            raise DescribeError(f"{path}[{index}] id={item_id}: {skip}") from None
        meta = {"metadata": read_metadata(item, None, missing), "category": category,
                "subcategory": subcategory, "duration": duration, "video": get_field(item, "video")}
        prev = out.setdefault(str(item_id), meta)
        if prev is not meta:  # a later file fills what the earlier ones lack
            for key, value in meta["metadata"].items():
                if prev["metadata"].get(key) in (None, "", []) and value not in (None, "", []):
                    prev["metadata"][key] = value
            for key in ("category", "subcategory", "duration", "video"):
                if prev.get(key) in (None, "") and meta[key] not in (None, ""):
                    prev[key] = meta[key]


def read_consensus(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Consensus or reviewed records (JSON Lines), in file order."""
    return list(read_jsonl(path))


def unresolved(record: dict[str, Any]) -> list[str]:
    """Why a consensus record cannot be described yet (labels without a majority, open review), or []."""
    if record.get("review"):
        return ["in the review queue: " + "; ".join(record["review"])]
    return [f"{k}: no consensus" for k, v in record.get("labels", {}).items() if v in (None, [])]


# --------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------
def tags_text(record: dict[str, Any], metadata: dict[str, Any]) -> str:
    """The human tags and the metadata, as the block that follows the paper's prompt."""
    lines = ["Manually labeled tags:", f"sync_answer.value: {record.get('sync') or '0'}"]
    for key in schema.LABELS:
        value = record["labels"].get(key)
        lines.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    tags = list(metadata.get("audio_labels") or [])[:10]
    lines += ["", "Metadata:", f"title: {metadata.get('title') or ''}", f"music tags: {', '.join(tags)}"]
    return "\n".join(lines)


def build_prompt(record: dict[str, Any], metadata: dict[str, Any]) -> str:
    """The full text prompt of one item: the paper's prompt verbatim, then the tags and metadata."""
    return generation_prompt() + "\n\n" + tags_text(record, metadata)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
_COPY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("names a tag field", re.compile(r"\b(?:" + "|".join(_TAG_NAMES) + r")\b|sync[ _]answer", re.I)),
    ("copies a raw sync point 'mm:ss,CODE'", re.compile(r"\b\d{1,2}:\d{2}\s*,\s*[ABC]\b")),
    ("refers to the labels/tags themselves", re.compile(
        r"\b(?:labels?|tags?)\s+(?:says?|indicates?|suggests?|states?|shows?|specif(?:y|ies)|denotes?)\b"
        r"|\b(?:according to|based on|as (?:indicated|noted|stated|given) (?:by|in)) the (?:manual |human )?"
        r"(?:labels?|tags?|annotations?)\b|\bground[- ]truth\b|\bmanually labell?ed\b", re.I)),
    ("names a sync code", re.compile(r"\b(?:sync(?:hroni[sz]ation)?\s+)?(?:code|grade|rating)\s+['\"]?[ABC]\b")),
)


def _time_forms(seconds: float) -> re.Pattern[str]:
    """A pattern matching a timestamp within 1 s, written mm:ss, m:ss or as seconds."""
    alts = []
    for t in {max(0, int(round(seconds)) + d) for d in (-1, 0, 1)}:
        m, s = divmod(t, 60)
        alts += [rf"\b0?{m}:{s:02d}\b", rf"\b{t}(?:\.\d+)?\s*(?:-\s*)?(?:s|sec|secs|seconds?|second mark)\b"]
    return re.compile("|".join(alts), re.I)


def validate_annotation(text: str | None, record: dict[str, Any]) -> list[str]:
    """Why a generated annotation cannot be used ([] when it can)."""
    if not text or not text.strip():
        return ["the reply is empty"]
    found = find_sections(text)
    problems = list(found.problems())
    problems += [f"the {schema.CANONICAL_HEADERS[a]} section is empty" for a, body in found.sections.items()
                 if len(body.split()) < 3]
    for why, pattern in _COPY_PATTERNS:
        m = pattern.search(text)
        if m:
            problems.append(f"it {why} ({m.group(0)!r}); write the interpretation in your own words")
    for key, value in record.get("labels", {}).items():
        for v in value if isinstance(value, list) else [value]:
            if v and re.search(rf"[\"“']{re.escape(str(v))}[\"”']", text, re.I):
                problems.append(f"it quotes the label {v!r} of {key}; write it in your own words")
    rhythm = found.sections.get("rhythm", "")
    points = record.get("sync_points")
    if points is None:
        points = [p.as_dict() for p in parse_sync(record.get("sync"))]
    for point in points:
        if not _time_forms(point["time"]).search(rhythm):
            problems.append(f"the key timestamp {format_timestamp(point['time'])} is not discussed in "
                            "Rhythm and Synchronization")
    return problems


def reask_text(problems: Sequence[str]) -> str:
    """The follow-up turn after an invalid reply."""
    return ("Your answer cannot be used yet: " + "; ".join(problems) + ". Write the whole interpretation again, "
            "in the output format given above (the four sections Rhythm and Synchronization, Theme and Content, "
            "Emotion, Cultural Relevance), in your own words, without mentioning the labels or tags themselves.")


def abbreviate(messages: list[dict]) -> list[dict]:
    """Messages with image and audio payloads replaced by a short description (for --dry-run)."""
    def part(p: Any) -> Any:
        if isinstance(p, dict) and p.get("type") == "image_url":
            url = str(p["image_url"]["url"])
            return {"type": "image_url", "image_url": {"url": f"<{url.split(';')[0][5:]}, {len(url)} chars>"}}
        if isinstance(p, dict) and p.get("type") == "input_audio":
            data = p["input_audio"]["data"]
            return {"type": "input_audio", "input_audio": {"data": f"<{len(data)} base64 chars>",
                                                           "format": p["input_audio"].get("format")}}
        return p
    return [{**m, "content": [part(p) for p in m["content"]]} if isinstance(m.get("content"), list) else m
            for m in messages]


def read_annotations(path: str | os.PathLike, missing_ok: bool = False) -> dict[str, dict[str, Any]]:
    """The latest usable annotation per id of a describe output file (empty if missing and ``missing_ok``)."""
    out: dict[str, dict[str, Any]] = {}
    if missing_ok and not Path(path).exists():
        return out
    require_file(path, "annotations: the JSON Lines output of `harmonyset annotate describe`")
    for rec in read_jsonl(path):
        if rec.get("annotation"):
            out[str(rec["id"])] = rec
    return out


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
class Describer:
    """Writes annotations with an OpenAI-compatible multimodal model: validated, re-asked, cached, resumable."""

    def __init__(self, client: LLMClient | None = None, *, model: str | None = None, base_url: str | None = None,
                 cache_dir: str | None = None, frames: int = 16, audio: bool = True, max_side: int = 512,
                 temperature: float = 0.0, max_tokens: int = 2048, max_attempts: int = 3,
                 concurrency: int | None = None, batch_size: int = 32, media_backend: str = "pyav",
                 media_workers: int = 4) -> None:
        self.client = client or LLMClient(model=model, base_url=base_url, env_prefix=ENV_PREFIX, cache_dir=cache_dir,
                                          concurrency=concurrency)
        self.frames, self.audio, self.max_side = int(frames), bool(audio), int(max_side)
        self.params = {"temperature": float(temperature), "max_tokens": int(max_tokens)}
        self.max_attempts, self.batch_size = max(1, int(max_attempts)), max(1, int(batch_size))
        self.concurrency, self.media_backend, self.media_workers = concurrency, media_backend, int(media_workers)

    def base_messages(self, record: dict, meta: dict, video: str) -> list[dict]:
        """The first request's messages for one item (clip frames + audio, then prompt + tags)."""
        clip = load_clip(video, num_frames=self.frames, sample_rate=16000, backend=self.media_backend,
                         max_side=self.max_side)
        return clip_messages(clip, build_prompt(record, meta.get("metadata") or {}), audio=self.audio,
                             max_side=self.max_side)

    def request(self, base: list[dict], attempt: int, previous: str | None, problems: Sequence[str]) -> ChatRequest:
        """The request of ``attempt`` (0 = first ask; later ones add the last reply and the reasons)."""
        messages = list(base)
        if attempt:
            messages += [{"role": "assistant", "content": previous or ""},
                         {"role": "user", "content": reask_text(problems)}]
        return ChatRequest(messages, dict(self.params), {"task": "harmonyset_describe", "attempt": attempt})

    def plan(self, records: Sequence[dict], metas: dict[str, dict], videos_dir: str | os.PathLike | None
             ) -> tuple[list[tuple[dict, dict, str]], list[dict]]:
        """(items to describe as (record, meta, video path), skipped as {"id", "error"})."""
        if videos_dir is not None and not Path(videos_dir).is_dir():
            raise DescribeError(f"{videos_dir}: no such folder (--videos: the folder of the videos)")
        resolver = VideoResolver(videos_dir)
        todo, skipped = [], []
        for rec in records:
            why = unresolved(rec)
            meta = metas.get(rec["id"])
            if meta is None:
                why.append("no metadata for this id")
            ref = str((meta or {}).get("video") or rec["id"])
            try:
                video = resolver.resolve(VideoResolver.check_ref(ref)) if videos_dir else (
                    ref if os.path.isfile(ref) else None)
            except Skip as bad:  # an absolute path or '..' in the metadata
                video = None
                why.append(str(bad))
            else:
                if video is None:
                    why.append(f"video {ref!r} not found under {videos_dir}")
            if why:
                skipped.append({"id": rec["id"], "error": "; ".join(why)})
            else:
                todo.append((rec, meta, str(video)))
        return todo, skipped

    def dry_run(self, todo: Sequence[tuple[dict, dict, str]], limit: int = 2) -> list[dict]:
        """The requests that would be sent for the first ``limit`` items, media abbreviated."""
        return [{"id": rec["id"], "model": self.client.model, "params": self.params,
                 "messages": abbreviate(self.base_messages(rec, meta, video))} for rec, meta, video in todo[:limit]]

    def _load_batch(self, batch: Sequence[tuple[dict, dict, str]]) -> list[list[dict] | Exception]:
        """Base messages of a batch, decoded by ``media_workers`` threads; an exception in place of a failure."""
        from concurrent.futures import ThreadPoolExecutor

        def one(job: tuple[dict, dict, str]) -> list[dict] | Exception:
            try:
                return self.base_messages(*job)
            except Exception as err:
                return err

        if self.media_workers <= 1 or len(batch) <= 1:
            return [one(job) for job in batch]
        with ThreadPoolExecutor(max_workers=self.media_workers, thread_name_prefix="describe-media") as pool:
            return list(pool.map(one, batch))

    def run(self, todo: Sequence[tuple[dict, dict, str]], out_path: str | os.PathLike,
            progress: bool = True) -> dict[str, Any]:
        """Describe every item not yet done in ``out_path`` (JSON Lines, appended per batch); returns counts."""
        from tqdm.auto import tqdm

        done = read_annotations(out_path, missing_ok=True)
        pending = [t for t in todo if t[0]["id"] not in done]
        counts = {"items": len(todo), "already_done": len(todo) - len(pending), "written": 0, "failed": 0,
                  "reasked": 0}
        bar = tqdm(total=len(pending), desc="describe", unit="item", disable=not progress)
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start:start + self.batch_size]
            results: dict[str, dict] = {}
            live: list[tuple[dict, list[dict]]] = []
            for (rec, _, _), made in zip(batch, self._load_batch(batch)):
                if isinstance(made, Exception):  # a broken video fails its item, the batch goes on
                    results[rec["id"]] = {"id": rec["id"], "annotation": None, "error": f"media: {made}"}
                else:
                    live.append((rec, made))
            state = {rec["id"]: {"reply": None, "problems": []} for rec, _ in live}
            for attempt in range(self.max_attempts):
                if not live:
                    break
                reqs = [self.request(base, attempt, state[rec["id"]]["reply"], state[rec["id"]]["problems"])
                        for rec, base in live]
                replies = self.client.complete_many(reqs, concurrency=self.concurrency, progress=False,
                                                    desc=f"describe ask {attempt + 1}")
                still = []
                for (rec, base), reply in zip(live, replies):
                    if not reply.ok:
                        results[rec["id"]] = {"id": rec["id"], "annotation": None, "attempts": attempt + 1,
                                              "error": f"call failed: {reply.error}"}
                        continue
                    problems = validate_annotation(reply.text, rec)
                    if not problems:
                        results[rec["id"]] = {"id": rec["id"], "annotation": reply.text.strip(),
                                              "attempts": attempt + 1, "model": self.client.model}
                        counts["reasked"] += attempt > 0
                        continue
                    state[rec["id"]] = {"reply": reply.text, "problems": problems}
                    results[rec["id"]] = {"id": rec["id"], "annotation": None, "attempts": attempt + 1,
                                          "error": "invalid reply: " + "; ".join(problems), "last_reply": reply.text}
                    still.append((rec, base))
                live = still
            rows = [results[rec["id"]] for rec, _, _ in batch]
            append_jsonl(out_path, rows)
            counts["written"] += sum(1 for r in rows if r["annotation"])
            counts["failed"] += sum(1 for r in rows if not r["annotation"])
            for r in rows:
                if not r["annotation"]:
                    log.warning("%s not described: %s", r["id"], r["error"])
            bar.update(len(batch))
        bar.close()
        counts["usage"] = self.client.usage.as_dict()
        return counts

    def describe(self) -> dict[str, Any]:
        """The endpoint, parameters and prompt hash (no secret)."""
        return {**self.client.endpoint.describe(), "params": self.params, "frames": self.frames, "audio": self.audio,
                "max_attempts": self.max_attempts, "prompt_sha256": prompt_sha256()}


def dumps_dry_run(requests: list[dict]) -> str:
    """Pretty JSON of dry-run requests."""
    return json.dumps(requests, indent=2, ensure_ascii=False)


def check_endpoint_config(model: str | None) -> None:
    """Fail early, naming the variables, when no model is configured."""
    if not (model or os.environ.get(f"{ENV_PREFIX}_MODEL")):
        raise ConfigError(f"no annotator model: pass --model or set {ENV_PREFIX}_MODEL (and {ENV_PREFIX}_BASE_URL / "
                          f"{ENV_PREFIX}_API_KEY for the endpoint)")
