"""Evaluation of predictions against HarmonySet rows: the one place the CLI, harness tasks and metrics call.

`evaluate_mc`, `evaluate_oe` and `evaluate_pair` take plain rows (``load_dataset(HUB, "mc"|"oe")``,
or ``"pair"`` of a `harmonyset derive swap` folder; video column not needed) and predictions keyed
by id, and return ``(results, items)``: the results dict that ``results.json`` holds (see DESIGN.md)
and one record per item for ``items.jsonl``. Missing predictions are counted (and left out of the
scores); predictions whose id is not in the data are counted and listed.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import HarmonySetError
from ..io import atomic_write_json, package_versions, read_jsonl, write_jsonl
from ..judge.guard import detect_judge_address
from ..llm import LLMClient
from ..schema import ASPECTS, OPTION_LETTERS
from .mc_extractor import read_choices, read_counts
from .mc_reading import Choice
from .predict import id_key
from .scoring import (
    CIRCULAR_SEPARATOR,
    aggregate_oe,
    base_question_id,
    circular_variants,
    mc_accuracy,
    pair_accuracy,
    pair_outcome,
    parse_choice,
    parse_rating,
)

RESULTS_FORMAT = 1
MAX_LISTED = 20


class EvaluationError(HarmonySetError):
    """Predictions or data that cannot be evaluated (wrong config, unreadable file, ...)."""


def read_predictions(path: str | os.PathLike, config: str) -> tuple[dict[str, str], dict]:
    """Responses keyed by id from a predictions file, and facts about it (model, duplicates, bad lines)."""
    key = id_key(config)
    path = Path(path)
    if path.is_dir():
        raise EvaluationError(f"--predictions {path} is a folder; give the predictions .jsonl file")
    if not path.exists():
        raise EvaluationError(f"predictions file not found: {path}")
    responses: dict[str, str] = {}
    models: Counter = Counter()
    duplicates, bad = 0, []
    truncated: dict[str, bool] = {}  # id -> stopped on the length limit (only where the model said)
    try:
        records = list(read_jsonl(path))
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    for number, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or key not in rec or "response" not in rec:
            bad.append(number)
            continue
        ident = str(rec[key])
        duplicates += ident in responses
        responses[ident] = "" if rec["response"] is None else str(rec["response"])  # the last one wins
        if isinstance(rec.get("truncated"), bool):
            truncated[ident] = rec["truncated"]
        else:
            truncated.pop(ident, None)
        if rec.get("model"):
            models[str(rec["model"])] += 1
    if bad and not responses:
        raise EvaluationError(f"{path}: no line has {key!r} and 'response' (is it a "
                              f"HarmonySet-{config.upper()} predictions file?)")
    facts = {"path": str(path), "model": models.most_common(1)[0][0] if models else path.stem,
             "models": dict(models), "lines": len(records), "duplicates": duplicates,
             "bad_lines": bad[:MAX_LISTED], "bad_line_count": len(bad),
             "truncation": {"known": len(truncated), "truncated": sum(truncated.values()),
                            "share": sum(truncated.values()) / len(truncated) if truncated else None,
                            "ids": sorted(i for i, t in truncated.items() if t)[:MAX_LISTED]}}
    return responses, facts


def _unknown(predictions: Iterable[str], known: set[str]) -> list[str]:
    return sorted(p for p in predictions if p not in known)


def _base(results: dict, config: str, model: str | None, counts: dict, unknown: list[str]) -> dict:
    return {
        "format": RESULTS_FORMAT,
        "config": config,
        "model": model,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": {**counts, "unknown_predictions": len(unknown)},
        "unknown_prediction_ids": unknown[:MAX_LISTED],
        **results,
        "package_versions": package_versions(),
    }


def _score_mc(row: Mapping, response: str, choice: Choice | None = None) -> dict:
    choice = choice or parse_choice(response, row["options"])
    return {"predicted": choice.letter, "reason": choice.reason, "invalid": choice.letter is None,
            "correct": choice.letter == row["answer"]}


def _mc_choices(rows: list[Mapping], predictions: Mapping[str, str], circular: bool,
                extractor: LLMClient | None) -> dict[str, Choice]:
    """The choice of every reply that will be scored, keyed by prediction id (the LLM sees the invalid ones)."""
    asked = []
    for row in rows:
        qid = str(row["question_id"])
        for variant in ([row] if not circular else [row, *circular_variants(row)]):
            vid = str(variant["question_id"])
            pid = vid if vid in predictions else f"{qid}{CIRCULAR_SEPARATOR}0" if vid == qid else None
            if pid in predictions:
                asked.append((pid, {"response": predictions[pid], "options": variant["options"],
                                    "question": variant.get("question", "")}))
    choices = read_choices([item for _, item in asked], extractor, progress=True)
    return {pid: choice for (pid, _), choice in zip(asked, choices)}


def evaluate_mc(rows: Iterable[Mapping], predictions: Mapping[str, str], *, circular: bool = False,
                model: str | None = None, known_ids: Iterable[str] | None = None,
                extractor: LLMClient | None = None) -> tuple[dict, list[dict]]:
    """Accuracy per aspect (95 % CI, invalid rate, chance) of MC predictions keyed by ``question_id``.

    A question's own id is used, else its ``#r0`` variant. With ``circular`` a question also counts
    as circular-correct only when all 4 rotations (``#r0``-``#r3``) are answered correctly.
    ``known_ids`` (default: the rows' ids) are the ids a prediction may name without being reported
    as unknown, e.g. the whole split when only its first rows are evaluated. With ``extractor`` (an
    LLM client) the replies the rules call invalid are read by that LLM; ``counts`` keeps rule reads,
    LLM reads and invalid answers apart.
    """
    rows = list(rows)
    known = {str(r["question_id"]) for r in rows} | set(known_ids or ())
    choices = _mc_choices(rows, predictions, circular, extractor)
    unknown = _unknown({base_question_id(p) for p in predictions}, known)
    items, scored, circ_items = [], [], []
    letters, answers = Counter(), Counter()
    for row in rows:
        qid = str(row["question_id"])
        item = {"question_id": qid, "id": row["id"], "aspect": row["aspect"], "category": row["category"],
                "answer": row["answer"]}
        pid = qid if qid in predictions else f"{qid}{CIRCULAR_SEPARATOR}0"
        response = predictions.get(pid)
        if response is None:
            item["status"] = "missing"
        else:
            item.update(status="scored", response=response, **_score_mc(row, response, choices.get(pid)))
            scored.append(item)
            letters[item["predicted"] or "invalid"] += 1
            answers[row["answer"]] += 1
        if circular:
            variants = circular_variants(row)
            replies = [predictions.get(v["question_id"]) for v in variants]
            if any(r is None for r in replies):
                item["circular"] = {"status": "missing",
                                    "missing": [v["question_id"] for v, r in zip(variants, replies) if r is None]}
            else:
                marks = [_score_mc(v, r, choices.get(str(v["question_id"]))) for v, r in zip(variants, replies)]
                item["circular"] = {"status": "scored", "predicted": [m["predicted"] for m in marks],
                                    "correct": all(m["correct"] for m in marks),
                                    "invalid": any(m["invalid"] for m in marks)}
                circ_items.append({**item, **item["circular"]})
        items.append(item)
    reads = read_counts([Choice(i["predicted"], i["reason"]) for i in scored])
    counts = {"questions": len(rows), "scored": len(scored), "missing": len(rows) - len(scored),
              "invalid": sum(i["invalid"] for i in scored), "rule_reads": reads["rule_reads"],
              "llm_reads": reads["llm_reads"]}
    results = {"judge": None, **mc_accuracy(scored),
               "extraction": {"extractor": "llm" if extractor else "rules",
                              "llm": extractor.describe() if extractor else None, "reasons": reads["reasons"]},
               "letters": {"predicted": {k: letters[k] for k in (*OPTION_LETTERS, "invalid")},
                           "answer": {k: answers[k] for k in OPTION_LETTERS}}}
    if circular:
        results["circular"] = {**mc_accuracy(circ_items),
                               "missing": sum(1 for i in items if i["circular"]["status"] == "missing")}
    return _base(results, "mc", model, counts, unknown), items


def _result_fields(result: Any) -> tuple[str, dict | None, str | None, str | None]:
    """(id, scores, error, raw reply) of one judge result, whether a dict or an object with attributes."""
    get = result.get if isinstance(result, Mapping) else lambda k, d=None: getattr(result, k, d)
    scores = get("scores")
    failed = bool(get("failed", False)) or not scores
    error = get("error") or ("no scores" if failed else None)
    return str(get("id")), (None if failed else {a: float(scores[a]) for a in ASPECTS}), error, get("raw")


def _served(result: Any) -> dict[str, str]:
    """The model name and system_fingerprint the judge's API returned for one result (those it gave)."""
    get = result.get if isinstance(result, Mapping) else lambda k, d=None: getattr(result, k, d)
    pairs = (("judge_model", get("served_model")), ("judge_system_fingerprint", get("system_fingerprint")))
    return {k: str(v) for k, v in pairs if v}


def describe_judge(judge: Any) -> dict:
    """The judge's own description (model, prompt hash, ...), with a prompt hash when it gives the prompt."""
    info = dict(judge.describe()) if hasattr(judge, "describe") else {"name": type(judge).__name__}
    prompt = info.pop("prompt", None)
    if prompt and "prompt_sha256" not in info and "prompt_hash" not in info:
        info["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    return info


def evaluate_oe(rows: Iterable[Mapping], predictions: Mapping[str, str], judge: Any, *,
                model: str | None = None, known_ids: Iterable[str] | None = None) -> tuple[dict, list[dict]]:
    """Judge OE predictions keyed by ``id`` against each row's annotation; per category x aspect means.

    ``judge.score_items([{"id", "response", "reference"}])`` returns one result per item with
    ``scores`` ({aspect: 1-10}) or ``failed`` and ``error``. Failed items are left out of the means
    and counted; Overall is the mean over items, as in the paper. ``known_ids`` as in :func:`evaluate_mc`.
    """
    rows = list(rows)
    known = {str(r["id"]) for r in rows} | set(known_ids or ())
    unknown = _unknown(predictions, known)
    items = []
    to_judge = []
    for row in rows:
        ident = str(row["id"])
        item = {"id": ident, "category": row["category"], "subcategory": row.get("subcategory")}
        if ident in predictions:
            item.update(status="pending", response=predictions[ident])
            addressed = detect_judge_address(predictions[ident])
            if addressed:  # the response talks to the judge (prompt injection); flagged, still judged
                item["addresses_judge"] = addressed
            to_judge.append({"id": ident, "response": predictions[ident], "reference": row["annotation"]})
        else:
            item["status"] = "missing"
        items.append(item)
    judged, served = {}, {}
    if to_judge:
        for result in judge.score_items(to_judge):
            ident, scores, error, raw = _result_fields(result)
            judged[ident] = (scores, error, raw)
            served[ident] = _served(result)
    for item in items:
        if item["status"] != "pending":
            continue
        scores, error, raw = judged.get(item["id"], (None, "the judge returned no result for this item", None))
        if raw is not None:
            item["judge_reply"] = raw
        item.update(served.get(item["id"], {}))
        if scores is None:
            item.update(status="failed", failed=True, error=error)
        else:
            item.update(status="scored", scores=scores)
    agg = aggregate_oe(i for i in items if i["status"] != "missing")
    counts = {"items": len(rows), "scored": agg["scored"], "failed": agg["failed"],
              "missing": sum(i["status"] == "missing" for i in items)}
    flagged = [i["id"] for i in items if i.get("addresses_judge")]
    usage = getattr(judge, "usage", None)
    judge_info = describe_judge(judge)
    for field, key in (("judge_model", "served_models"), ("judge_system_fingerprint", "system_fingerprints")):
        seen = Counter(i[field] for i in items if i.get(field))
        if seen or judge_info.get("kind") == "llm":  # what the API says served, beside what was asked for
            judge_info[key] = dict(seen.most_common())
    results = {"judge": judge_info, **({"judge_usage": usage} if isinstance(usage, dict) else {}),
               "overall": agg["overall"], "categories": agg["categories"],
               "failed_ids": [i["id"] for i in items if i["status"] == "failed"][:MAX_LISTED],
               "judge_address": {"flagged": len(flagged), "ids": flagged[:MAX_LISTED],
                                 "patterns": dict(Counter(p for i in items for p in i.get("addresses_judge", ())))}}
    return _base(results, "oe", model, counts, unknown), items


def evaluate_pair(rows: Iterable[Mapping], predictions: Mapping[str, str], *, model: str | None = None,
                  known_ids: Iterable[str] | None = None) -> tuple[dict, list[dict]]:
    """Score swap-pair predictions (1-10 ratings keyed by row ``id``): per item, is the original rated higher?

    Rows are those of the ``pair`` config (``id``, ``pair_id``, ``variant``, ``category``). An item
    scores 1 when its original's rating is higher than its swapped version's, 0.5 on a tie (a model
    that ignores the music ties every item: 50 %, the chance level) and 0 otherwise; an item with
    an invalid rating scores 0 and is counted; one with a missing prediction is left out and counted.
    ``known_ids`` as in :func:`evaluate_mc`.
    """
    rows = list(rows)
    known = {str(r["id"]) for r in rows} | set(known_ids or ())
    unknown = _unknown(predictions, known)
    versions: dict[str, dict[str, Mapping]] = {}
    for row in rows:
        versions.setdefault(str(row["pair_id"]), {})[row["variant"]] = row
    items, scored = [], []
    for pair_id, pair in versions.items():
        if set(pair) != {"original", "swapped"}:
            raise EvaluationError(f"item {pair_id}: the pair rows hold versions {sorted(pair)}, not original and "
                                  "swapped (is this a `harmonyset derive swap` folder?)")
        item = {"id": pair_id, "category": pair["original"]["category"],
                "music_source_id": pair["swapped"].get("music_source_id")}
        replies = {v: predictions.get(str(pair[v]["id"])) for v in ("original", "swapped")}
        if any(r is None for r in replies.values()):
            item.update(status="missing", missing=[str(pair[v]["id"]) for v, r in replies.items() if r is None])
            items.append(item)
            continue
        ratings = {v: parse_rating(r) for v, r in replies.items()}
        values = {v: ratings[v].value for v in ratings}
        invalid = [v for v, value in values.items() if value is None]
        item.update(status="scored", responses=replies, ratings=values,
                    reasons={v: ratings[v].reason for v in ratings}, invalid=bool(invalid),
                    outcome=None if invalid else pair_outcome(values["original"], values["swapped"]))
        items.append(item)
        scored.append(item)
    categories = {}
    for cat in sorted({i["category"] for i in scored}):
        categories[cat] = pair_accuracy(i for i in scored if i["category"] == cat)
    counts = {"items": len(versions), "scored": len(scored), "missing": len(items) - len(scored),
              "invalid": sum(i["invalid"] for i in scored)}
    results = {"judge": None, "overall": pair_accuracy(scored), "categories": categories,
               "scoring": "1 if the original is rated higher, 0.5 on a tie, 0 if lower or a rating is invalid"}
    return _base(results, "pair", model, counts, unknown), items


def write_results(out_dir: str | os.PathLike, results: dict, items: list[dict]) -> Path:
    """Write ``results.json`` and ``items.jsonl`` into ``out_dir`` (atomically); returns the results path."""
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "items.jsonl", items)
    return atomic_write_json(out_dir / "results.json", results)



def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_line(results: dict) -> str:
    """One line saying what an evaluation found (for the terminal)."""
    counts = results["counts"]
    extra = f", {counts['unknown_predictions']} unknown ids" if counts.get("unknown_predictions") else ""
    if results["config"] == "mc":
        o = results["overall"]
        circ = ""
        if "circular" in results:
            circ = f"; circular {_pct(results['circular']['overall']['accuracy'])}"
            if not results["circular"]["overall"]["n"]:  # plain predictions: no #r0..#r3 rotations to score
                circ += " (no rotated answers: run `harmonyset predict --circular`)"
        if counts.get("llm_reads"):
            extra += f", {counts['llm_reads']} letters read by the LLM extractor"
        return (f"MC {results['model']}: accuracy {_pct(o['accuracy'])} on {o['n']} questions "
                f"(invalid {_pct(o['invalid_rate'])}, chance 25.0%){circ}; {counts['missing']} missing{extra}")
    if results["config"] == "pair":
        o = results["overall"]
        return (f"PAIR {results['model']}: accuracy {_pct(o['accuracy'])} on {o['n']} items (ties count half; "
                f"strict {_pct(o['strict_accuracy'])}, ties {_pct(o['tie_rate'])}, invalid {_pct(o['invalid_rate'])}, "
                f"chance 50.0%); {counts['missing']} missing{extra}")
    o = results["overall"]
    scores = "/".join("n/a" if o[a] is None else f"{o[a]:.2f}" for a in ASPECTS)
    cut = (results.get("predictions") or {}).get("truncation") or {}
    if cut.get("known"):  # answers cut by the generation budget score lower for a reason the judge cannot see
        extra += f", {_pct(cut['share'])} of answers stopped on the length limit"
    flagged = (results.get("judge_address") or {}).get("flagged")
    if flagged:
        extra += f", {flagged} address the judge"
    return (f"OE {results['model']}: R&S/T/E/C {scores} over {counts['scored']} items; "
            f"{counts['failed']} failed, {counts['missing']} missing{extra}")
