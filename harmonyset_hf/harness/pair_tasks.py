"""The swap-pair task (``harmonyset_pair``) for lm-eval and lmms-eval: docs, prompt, per-doc items, aggregations.

Each doc is one version (original or swapped) of a test video from a ``harmonyset derive swap``
folder; the model rates the music fit (1-10) with :data:`harmonyset_hf.prompting.PAIR_RATING_PROMPT`.
Whether the original won can only be told once both versions are answered, so, as for OE, every
metric's per-doc value is the reply and what joining needs, and the aggregation scores all of
them with :func:`harmonyset_hf.evaluation.evaluate_pair` (one run per distinct set of replies):
the numbers equal ``harmonyset eval pair`` on the same replies.

The data: ``--metadata '{"pair_data": ...}'`` (lm-eval) or ``$HARMONYSET_PAIR_DATA``, else the
tasks' usual ``data`` / ``$HARMONYSET_DATA`` (so one run can score MC on the Hub folder and pairs on
the derived one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..evaluation import evaluate_pair, summary_line
from ..prompting import pair_prompt
from ..sync.swap import PAIR_CONFIG, PAIR_SPLIT, load_pair
from .tasks import HarnessError, data_source, memoised, overall_metric, prepare_docs, reply_text, wrap_prompt

log = logging.getLogger(__name__)

PAIR_DATA_ENV = "HARMONYSET_PAIR_DATA"
PAIR_METRICS = ("accuracy", "strict_accuracy", "tie_rate", "invalid_rate")
_SCORED: dict[str, dict] = {}


def pair_data_source(metadata: Mapping[str, Any] | None = None) -> str:
    """The swap folder: ``metadata["pair_data"]``, ``$HARMONYSET_PAIR_DATA``, else :func:`data_source`."""
    data = (metadata or {}).get("pair_data") or os.environ.get(PAIR_DATA_ENV, "").strip()
    return str(data) if data else data_source(metadata)


def load_pair_docs(config: str = "pair", data: str | None = None, **metadata: Any) -> dict[str, Any]:
    """lm-eval's ``custom_dataset``: ``{"test": docs}`` of a swap folder's ``pair`` config (with ``video_path``)."""
    if config != PAIR_CONFIG:
        raise HarnessError(f"the pair task reads config 'pair', not {config!r}")
    source = pair_data_source({**metadata, **({"data": data} if data else {})})  # pair_data first
    try:
        split = load_pair(source)
    except (FileNotFoundError, ValueError) as err:
        raise HarnessError(f"cannot load config 'pair' of {source} (made by `harmonyset derive swap`?): {err}") from err
    return {PAIR_SPLIT: prepare_docs(split)}


def pair_doc_to_text(doc: Mapping, lmms_eval_specific_kwargs: Mapping | None = None) -> str:
    """The rating prompt (the same for both versions), optionally inside lmms-eval's ``pre_prompt``/``post_prompt``."""
    return wrap_prompt(pair_prompt(doc), lmms_eval_specific_kwargs)


def pair_doc_to_target(doc: Mapping) -> str:
    """The version a doc is (``original`` or ``swapped``): what a rating is compared across."""
    return str(doc["variant"])


def pair_process_results(doc: Mapping, results: Any) -> dict[str, dict]:
    """The reply and the doc's pairing fields under every pair metric (scored together in the aggregation)."""
    item = {"id": str(doc["id"]), "pair_id": str(doc["pair_id"]), "variant": doc["variant"],
            "category": doc["category"], "music_source_id": doc.get("music_source_id"), "response": reply_text(results)}
    return {metric: item for metric in PAIR_METRICS}


def score_pair_items(items: list[Mapping]) -> dict:
    """``evaluate_pair`` results of the items of both versions; items whose other version is absent are left out."""
    def score() -> dict:
        versions: dict[str, set] = {}
        for item in items:
            versions.setdefault(item["pair_id"], set()).add(item["variant"])
        whole = [i for i in items if versions[i["pair_id"]] == {"original", "swapped"}]
        if len(whole) < len(items):  # e.g. an odd --limit
            log.warning("pair task: %d docs without their other version are left out", len(items) - len(whole))
        rows = [{k: i[k] for k in ("id", "pair_id", "variant", "category", "music_source_id")} for i in whole]
        results, _ = evaluate_pair(rows, {i["id"]: i["response"] for i in whole}, model="harness")
        log.info("%s", summary_line(results))
        return results

    return memoised(_SCORED, [[i["id"], i["response"]] for i in items], score)


def _metric(name: str) -> Callable[[list], float]:
    return overall_metric(score_pair_items, name, f"pair_{name}",
                          f"The swap pairs' overall {name} over the items answered in both versions.")


pair_accuracy = _metric("accuracy")
pair_strict_accuracy = _metric("strict_accuracy")
pair_tie_rate = _metric("tie_rate")
pair_invalid_rate = _metric("invalid_rate")
