"""Annotations -> instruction data: each paired with one of the paper's instruction templates (Fig. 11).

The template of an item is drawn by a generator seeded with ``(seed, id)``, so the choice of an
item does not depend on which other items are in the run or their order. The output is the
release's VideoLLaMA2 JSON (``HarmonySet_Train.json`` / ``HarmonySet_Test.json``: ``id``,
``video``, ``conversations`` and the paper's extra fields ``category``, ``subcategory``,
``duration``, ``sync``, ``labels``, ``metadata``), which ``harmonyset build`` reads into the
``instruct`` (train) and ``oe`` (test) configs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import schema
from ..errors import HarmonySetError
from ..io import atomic_write_json
from ..prompting import instruction_templates
from ..text import find_sections, join_sections
from .describe import read_annotations, read_consensus, read_metadata_files, require_file

OUTPUT_FILES = {"train": "HarmonySet_Train.json", "test": "HarmonySet_Test.json"}
# Outside the release folder's top level: `harmonyset build` reads every *train*/*test*/*mc* JSON there.
MANIFEST = "manifests/instruct.json"


class InstructError(HarmonySetError):
    """Inputs the instruct step cannot use."""


def choose_template(item_id: str, seed: int = 0) -> int:
    """The index of the template an item gets: a generator seeded with (seed, id)."""
    return random.Random(f"harmonyset-instruct:{seed}:{item_id}").randrange(len(instruction_templates()))


def release_item(record: dict[str, Any], annotation: str, meta: dict[str, Any], template: str) -> dict[str, Any]:
    """One release item (VideoLLaMA2 conversations + the paper's extra fields)."""
    sections = find_sections(annotation)
    if not sections.ok:
        raise InstructError(f"id {record['id']}: annotation is not usable: {'; '.join(sections.problems())}")
    md = dict(meta.get("metadata") or {})
    category = meta.get("category")
    return {
        "id": record["id"],
        "video": meta.get("video") or f"{record['id']}.mp4",
        "conversations": [{"from": "human", "value": template},
                          {"from": "gpt", "value": join_sections(sections.sections)}],
        "category": schema.CATEGORY_NAMES.get(category, category),
        "subcategory": meta.get("subcategory"),
        "duration": meta.get("duration"),
        "sync": record.get("sync") or "0",
        "labels": record["labels"],
        "metadata": {"title": md.get("title"), "author": md.get("author"), "duration": meta.get("duration"),
                     "video_height": md.get("video_height"), "video_width": md.get("video_width"),
                     "audio_labels": md.get("audio_labels") or [], "youtube_id": md.get("youtube_id")},
    }


def read_ids(path: str | os.PathLike) -> set[str]:
    """Ids from a file: a JSON list, or one id per line."""
    text = require_file(path, "ids: a JSON list or one id per line").read_text(encoding="utf-8")
    try:
        value = json.loads(text)
        if isinstance(value, list):
            return {str(v) for v in value}
    except json.JSONDecodeError:
        pass
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def run_instruct(annotations_path: str | os.PathLike, consensus_path: str | os.PathLike,
                 metadata_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, seed: int = 0,
                 test_ids: set[str] | None = None) -> dict[str, Any]:
    """Write ``HarmonySet_Train.json`` (and ``HarmonySet_Test.json`` for ``test_ids``) and a manifest."""
    annotations = read_annotations(annotations_path)
    records = {r["id"]: r for r in read_consensus(consensus_path)}
    metas = read_metadata_files(metadata_paths)
    templates = instruction_templates()
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    skipped, used = [], Counter()
    for item_id, ann in annotations.items():
        record, meta = records.get(item_id), metas.get(item_id)
        if record is None or meta is None:
            skipped.append({"id": item_id, "error": "no consensus record" if record is None else "no metadata"})
            continue
        index = choose_template(item_id, seed)
        used[index] += 1
        split = "test" if test_ids and item_id in test_ids else "train"
        splits[split].append(release_item(record, ann["annotation"], meta, templates[index]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, items in splits.items():
        if items or split == "train":
            files[split] = str(atomic_write_json(out / OUTPUT_FILES[split], items))
    manifest = {"seed": seed, "templates_sha256": hashlib.sha256(json.dumps(templates).encode()).hexdigest(),
                "template_counts": {str(i): used[i] for i in range(len(templates))},
                "counts": {s: len(v) for s, v in splits.items()}, "skipped": skipped, "files": files}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
