"""Annotations -> HarmonySet-MC questions with the paper's curation prompt (Fig. 14).

The annotation goes into the prompt's ``{input_subtitle}`` slot verbatim. The reply must hold
four blocks (one per aspect), each with options ``A.`` to ``D.`` and ``Correct Answer: X``
(:func:`parse_mc_reply`). Each block is then checked (:func:`check_block`): four distinct
options, every option's length within ``length_tolerance`` of the correct option's (so the
answer cannot be spotted by its length), and the correct option faithful to the annotation's
section (MiniLM cosine similarity >= ``min_similarity``, the packaged encoder the offline judge
uses). An item with a bad block is asked again with the reasons (follow-up turn). Last, the
answer letters are re-balanced over the whole set to a uniform spread (counts differ by at most
one) by a seeded shuffle, and the seed and each question's original letter are recorded.
Output: the release's ``HarmonySet_MC.json`` that ``harmonyset build`` reads.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .. import schema
from ..data.release import iter_json_items
from ..data.release_fields import fold_keys, get_field, read_conversation
from ..errors import HarmonySetError
from ..io import atomic_write_json
from ..judge import sentence_encoder
from ..llm import ChatRequest, LLMClient
from ..text import find_sections
from .describe import ENV_PREFIX, read_annotations, read_metadata_files, require_file

log = logging.getLogger(__name__)

PROMPT_FILE = "prompts/mc_curation.txt"
MANIFEST = "manifests/mc.json"  # not at the top level, where `harmonyset build` reads every *mc* JSON
LETTERS = schema.OPTION_LETTERS
# The paper's prompt yields options only; the question stem of each aspect is ours.
QUESTION_STEMS: dict[str, str] = {
    a: f"Which description best captures the {schema.ASPECT_NAMES[a]} of this video and its music?"
    for a in schema.ASPECTS
}
DEFAULT_LENGTH_TOLERANCE = 0.5  # each option's length within +-50% of the correct option's
DEFAULT_MIN_SIMILARITY = 0.6  # cosine(correct option, source section), MiniLM-L6


class MCParseError(HarmonySetError, ValueError):
    """A curation reply that does not hold four well-formed question blocks."""


@functools.cache
def curation_template() -> str:
    """The paper's MC curation prompt (Fig. 14), verbatim, with its ``{input_subtitle}`` slot."""
    return resources.files("harmonyset_hf").joinpath(PROMPT_FILE).read_text(encoding="utf-8").rstrip("\n")


def curation_prompt(annotation: str) -> str:
    """The curation prompt of one annotation (the slot filled once; braces in the text stay as written)."""
    head, tail = curation_template().split("{input_subtitle}", 1)
    return head + annotation.strip() + tail


_OPTION_RE = re.compile(r"^\s*[*_]*\(?([A-Da-d])[*_]*\s*[.):：]\s*(.*?)\s*$")
_ANSWER_RE = re.compile(r"correct\s+answer\s*[*_]*\s*[:：]?\s*[*_'\"(\[]*\s*([A-Da-d])\b", re.I)


def parse_block(body: str) -> dict[str, Any]:
    """Options (A-D in order) and the answer letter of one block; raises MCParseError saying why not."""
    options: list[tuple[str, str]] = []
    answer = None
    for line in body.splitlines():
        m = _ANSWER_RE.search(line)
        if m:
            answer = m.group(1).upper()
            continue
        m = _OPTION_RE.match(line)
        if m:
            options.append((m.group(1).upper(), m.group(2).strip()))
        elif options and line.strip():  # an option that runs on to a second line
            options[-1] = (options[-1][0], (options[-1][1] + " " + line.strip()).strip())
    letters = [x for x, _ in options]
    if letters != list(LETTERS):
        raise MCParseError(f"expected options A, B, C, D in order, found {letters or 'none'}")
    if any(not t for _, t in options):
        raise MCParseError("an option is empty")
    if answer is None:
        raise MCParseError("no 'Correct Answer: X' line")
    return {"options": [t for _, t in options], "answer": answer}


def parse_mc_reply(text: str) -> dict[str, dict[str, Any]]:
    """The four blocks of a curation reply by aspect key; raises MCParseError naming what is wrong."""
    found = find_sections(text or "")
    if not found.ok:
        raise MCParseError("; ".join(found.problems()))
    out, problems = {}, []
    for aspect in schema.ASPECTS:
        try:
            out[aspect] = parse_block(found.sections[aspect])
        except MCParseError as err:
            problems.append(f"{schema.CANONICAL_HEADERS[aspect]}: {err}")
    if problems:
        raise MCParseError("; ".join(problems))
    return out


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def check_block(block: dict[str, Any], similarity: float | None, length_tolerance: float = DEFAULT_LENGTH_TOLERANCE,
                min_similarity: float = DEFAULT_MIN_SIMILARITY) -> list[str]:
    """Why a parsed block cannot be used ([] when it can); ``similarity`` = cos(correct option, source)."""
    options, answer = block["options"], block["answer"]
    problems = []
    if len({_fold(o) for o in options}) < 4:
        problems.append("two options are the same")
    correct = options[LETTERS.index(answer)]
    lo, hi = (1 - length_tolerance) * len(correct), (1 + length_tolerance) * len(correct)
    off = [f"{x} ({len(o)} chars)" for x, o in zip(LETTERS, options) if not lo <= len(o) <= hi]
    if off:
        problems.append(f"option length of {', '.join(off)} is not within {length_tolerance:.0%} of the correct "
                        f"option's {len(correct)} chars")
    if similarity is not None and similarity < min_similarity:
        problems.append(f"the correct option ({answer}) is not faithful to the annotation (similarity "
                        f"{similarity:.2f} < {min_similarity:.2f})")
    return problems


def reask_text(problems: Sequence[str]) -> str:
    """The follow-up turn after an unusable reply."""
    return ("Your answer cannot be used yet: " + "; ".join(problems) + ". Write all four question blocks again in "
            "the output format given above.")


def rebalance(questions: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Questions with the correct option moved so that answer letters are spread uniformly (seeded).

    Each question is ``{"options": [4], "answer": letter, ...}``; the distractors keep their
    relative order; the result carries ``original_answer``.
    """
    targets = [LETTERS[i % 4] for i in range(len(questions))]
    random.Random(f"harmonyset-mc-balance:{seed}").shuffle(targets)
    out = []
    for q, target in zip(questions, targets):
        correct = q["options"][LETTERS.index(q["answer"])]
        rest = [o for x, o in zip(LETTERS, q["options"]) if x != q["answer"]]
        rest.insert(LETTERS.index(target), correct)
        out.append({**q, "options": rest, "answer": target, "original_answer": q["answer"]})
    return out


class MCCurator:
    """Curates MC questions with an OpenAI-compatible LLM: parsed, validated, re-asked, cached."""

    def __init__(self, client: LLMClient | None = None, *, model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, cache_dir: str | None = None, temperature: float = 0.0,
                 max_tokens: int = 2048, max_attempts: int = 3, concurrency: int | None = None,
                 length_tolerance: float = DEFAULT_LENGTH_TOLERANCE, min_similarity: float = DEFAULT_MIN_SIMILARITY,
                 check_faithfulness: bool = True, device: str = "cpu") -> None:
        self.client = client or LLMClient(model=model, base_url=base_url, api_key=api_key, env_prefix=ENV_PREFIX,
                                          cache_dir=cache_dir, concurrency=concurrency)
        self.params = {"temperature": float(temperature), "max_tokens": int(max_tokens)}
        self.max_attempts, self.concurrency = max(1, int(max_attempts)), concurrency
        self.length_tolerance, self.min_similarity = float(length_tolerance), float(min_similarity)
        self.check_faithfulness, self.device = check_faithfulness, device

    def similarity(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Cosine similarities of text pairs with the packaged MiniLM encoder (the offline judge's loader)."""
        import numpy as np

        if not pairs:
            return []
        texts = sorted({t for p in pairs for t in p})
        emb = sentence_encoder(self.device).encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                                   show_progress_bar=False)
        vec = dict(zip(texts, emb))
        return [float(np.dot(vec[a], vec[b])) for a, b in pairs]

    def validate(self, text: str, annotation: str) -> tuple[dict[str, dict] | None, list[str]]:
        """(blocks, []) for a usable reply, else (None, the reasons)."""
        try:
            blocks = parse_mc_reply(text)
        except MCParseError as err:
            return None, [str(err)]
        sources = find_sections(annotation).sections
        sims: dict[str, float | None] = dict.fromkeys(schema.ASPECTS)
        if self.check_faithfulness:
            aspects = [a for a in schema.ASPECTS if sources.get(a)]
            pairs = [(blocks[a]["options"][LETTERS.index(blocks[a]["answer"])], sources[a]) for a in aspects]
            sims.update(zip(aspects, self.similarity(pairs)))
        problems = []
        for a in schema.ASPECTS:
            blocks[a]["similarity"] = None if sims[a] is None else round(sims[a], 4)
            problems += [f"{schema.CANONICAL_HEADERS[a]}: {p}" for p in
                         check_block(blocks[a], sims[a], self.length_tolerance, self.min_similarity)]
        return (None, problems) if problems else (blocks, [])

    def curate(self, items: Sequence[dict[str, Any]], progress: bool = True) -> tuple[dict[str, dict], list[dict]]:
        """({id: blocks}, failures) for items ``{"id", "annotation"}``; invalid replies are asked again."""
        base = {it["id"]: [{"role": "user", "content": curation_prompt(it["annotation"])}] for it in items}
        state: dict[str, tuple[str | None, list[str]]] = {it["id"]: (None, []) for it in items}
        done: dict[str, dict] = {}
        failures: dict[str, dict] = {}
        live = list(items)
        for attempt in range(self.max_attempts):
            if not live:
                break
            reqs = []
            for it in live:
                messages = list(base[it["id"]])
                if attempt:
                    prev, problems = state[it["id"]]
                    messages += [{"role": "assistant", "content": prev or ""},
                                 {"role": "user", "content": reask_text(problems)}]
                reqs.append(ChatRequest(messages, dict(self.params), {"task": "harmonyset_mc_curation",
                                                                      "attempt": attempt}))
            replies = self.client.complete_many(reqs, concurrency=self.concurrency, progress=progress,
                                                desc="mc" if attempt == 0 else f"mc re-ask {attempt}")
            still = []
            for it, reply in zip(live, replies):
                if not reply.ok:
                    failures[it["id"]] = {"id": it["id"], "error": f"call failed: {reply.error}",
                                          "attempts": attempt + 1}
                    continue
                blocks, problems = self.validate(reply.text or "", it["annotation"])
                if blocks is not None:
                    done[it["id"]] = {"blocks": blocks, "attempts": attempt + 1}
                    failures.pop(it["id"], None)
                    continue
                state[it["id"]] = (reply.text, problems)
                failures[it["id"]] = {"id": it["id"], "error": "invalid reply: " + "; ".join(problems),
                                      "attempts": attempt + 1, "last_reply": reply.text}
                still.append(it)
            live = still
        for f in failures.values():
            log.warning("%s: no MC questions: %s", f["id"], f["error"])
        return done, list(failures.values())


def run_mc(items: Sequence[dict[str, Any]], curator: MCCurator, out_dir: str | os.PathLike, seed: int = 0,
           progress: bool = True) -> dict[str, Any]:
    """Curate, re-balance and write ``HarmonySet_MC.json`` and ``manifests/mc.json`` for ``{id, video, annotation}``."""
    done, failures = curator.curate(items, progress=progress)
    flat = [{"id": it["id"], "aspect": a, **done[it["id"]]["blocks"][a]}
            for it in items if it["id"] in done for a in schema.ASPECTS]
    before = Counter(q["answer"] for q in flat)
    balanced = rebalance(flat, seed)
    by_id: dict[str, list[dict]] = {}
    for q in balanced:
        by_id.setdefault(q["id"], []).append(q)
    release = [{"id": it["id"], "video": it.get("video") or f"{it['id']}.mp4",
                "questions": [{"aspect": schema.ASPECT_NAMES[q["aspect"]], "question": QUESTION_STEMS[q["aspect"]],
                               "options": dict(zip(LETTERS, q["options"])), "answer": q["answer"]}
                              for q in by_id[it["id"]]]}
               for it in items if it["id"] in by_id]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_json(out / "HarmonySet_MC.json", release)
    manifest = {
        "seed": seed, "prompt_sha256": hashlib.sha256(curation_template().encode()).hexdigest(),
        "endpoint": curator.client.endpoint.describe(), "params": curator.params,
        "length_tolerance": curator.length_tolerance, "min_similarity": curator.min_similarity,
        "faithfulness_checked": curator.check_faithfulness,
        "items": len(items), "items_with_questions": len(release), "questions": len(balanced),
        "failures": failures, "answer_letters_before": {x: before[x] for x in LETTERS},
        "answer_letters_after": {x: sum(q["answer"] == x for q in balanced) for x in LETTERS},
        "questions_detail": [{"question_id": f"{q['id']}:{q['aspect']}", "original_answer": q["original_answer"],
                              "answer": q["answer"], "similarity": q.get("similarity"),
                              "attempts": done[q["id"]]["attempts"]} for q in balanced],
        "usage": curator.client.usage.as_dict(), "file": str(path),
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def load_items(annotations_path: str | os.PathLike, metadata_paths: Sequence[str | os.PathLike] = (),
               ids: set[str] | None = None) -> list[dict[str, Any]]:
    """``{"id", "video", "annotation"}`` items from a describe output (JSON Lines) or a release JSON file."""
    require_file(annotations_path, "annotations: describe's JSON Lines output or a release JSON file")
    metas = read_metadata_files(metadata_paths) if metadata_paths else {}
    if str(annotations_path).endswith((".jsonl", ".ndjson")):
        raw = [{"id": i, "annotation": r["annotation"], "video": None}
               for i, r in read_annotations(annotations_path).items()]
    else:
        raw = []
        for item in iter_json_items(annotations_path):
            item = fold_keys(item)
            _, annotation = read_conversation(item, None)
            raw.append({"id": str(get_field(item, "id")), "annotation": annotation, "video": get_field(item, "video")})
    items = []
    for it in raw:
        if ids is not None and it["id"] not in ids:
            continue
        if not isinstance(it["annotation"], str) or not it["annotation"].strip():
            log.warning("%s: no annotation, no MC questions", it["id"])
            continue
        it["video"] = it["video"] or (metas.get(it["id"]) or {}).get("video")
        items.append(it)
    return items
