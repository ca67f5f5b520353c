"""What the lm-eval and lmms-eval task folders call: data, prompts, per-item scores, aggregations.

Both harnesses get the same functions, so HarmonySet-MC accuracy and HarmonySet-OE judge scores
from a harness equal ``harmonyset eval mc|oe`` on the same replies:

- data: a Hub folder or repo id from ``--metadata '{"data": ...}'`` (lm-eval) or ``HARMONYSET_DATA``,
  loaded with :func:`harmonyset_hf.data.hub.load` (a cache private to each local folder) and turned into
  plain docs by :func:`prepare_docs` (the ``video`` column becomes the mp4's ``video_path``);
- prompts: :func:`harmonyset_hf.prompting.mc_prompt` / ``oe_prompt``, nothing else;
- MC: :func:`mc_process_results` reads the letter with :func:`harmonyset_hf.evaluation.scoring.parse_choice`
  (``accuracy`` and ``invalid_rate`` per question, averaged by the harness; ``choice``, the letter
  read and its reason, kept in ``--log_samples`` and summed up as the share of bare-letter replies);
- OE: :func:`oe_process_results` hands each reply to the aggregation (under the ``judge`` metric;
  the other metrics hold a reference to it), where :func:`judge_items` runs the judge once over all
  replies (concurrently, through harmonyset_hf.llm) with :func:`harmonyset_hf.evaluation.evaluate_oe`;
  each aspect's aggregation reads its Overall mean and each ``{category}_{aspect}`` one its cell of
  the category x aspect table. The judge's verdict of each reply (scores, reply, served model) is
  written into the item the harness logs, so ``--log_samples`` holds it: the harnesses write their
  sample logs after the aggregation. Runs of several processes gather copies of the items before
  the aggregation, so there the sample logs lack the verdicts (the results still hold every number).

Judge settings: ``--metadata`` keys ``judge`` (``openai`` | ``embedding``), ``judge_model``,
``judge_base_url``, ``judge_concurrency``, ``judge_cache`` (lm-eval), else the environment:
``HARMONYSET_JUDGE`` (kind, default ``openai``), ``HARMONYSET_JUDGE_MODEL``/``_BASE_URL``/``_API_KEY``/
``_CONCURRENCY`` (read by harmonyset_hf.llm). An API key is never read from ``--metadata`` (it would be logged).

Videos of an annotations-only folder: ``--metadata`` key ``video_dir`` (lm-eval), else ``HARMONYSET_VIDEO_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..data.hub import load as hub_load
from ..data.hub import local_cache_dir
from ..data.video_folder import with_videos
from ..errors import ConfigError, HarmonySetError
from ..evaluation import evaluate_oe, summary_line
from ..evaluation.mc_reading import LETTER_ONLY
from ..evaluation.scoring import parse_choice
from ..judge import make_judge
from ..prompting import mc_prompt, oe_prompt
from ..schema import ASPECTS, CATEGORIES, SPLITS

log = logging.getLogger(__name__)

DATA_ENV = "HARMONYSET_DATA"
JUDGE_ENV = "HARMONYSET_JUDGE"
JUDGE_KEYS = ("judge", "judge_model", "judge_base_url", "judge_concurrency", "judge_cache")


class HarnessError(HarmonySetError):
    """A harness task that cannot run (no data given, a doc without its video, ...)."""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def data_source(metadata: Mapping[str, Any] | None = None) -> str:
    """The Hub folder or repo id to evaluate: ``metadata["data"]``, else ``$HARMONYSET_DATA``."""
    data = (metadata or {}).get("data") or os.environ.get(DATA_ENV, "").strip()
    if not data:
        raise HarnessError(f"HarmonySet tasks need the data: set {DATA_ENV}=<Hub folder or repo id> "
                           "(lm-eval also takes --metadata '{\"data\": \"...\"}')")
    return str(data)


def load_dataset_kwargs(data: str) -> dict[str, Any]:
    """Extra ``load_dataset`` arguments for ``data``: a cache private to a local folder (datasets 5.2 shares one)."""
    cache = local_cache_dir(data)
    return {"cache_dir": cache} if cache else {}


def prepare_docs(dataset: Any, aspect: str | None = None, video_dir: str | None = None) -> Any:
    """Harness docs from a ``datasets`` split: MC rows of one ``aspect`` (or all), ``video`` -> ``video_path``.

    An annotations-only split (``video`` a file name) takes its videos from ``video_dir`` (the metadata
    key), else ``$HARMONYSET_VIDEO_DIR``; docs whose video is not there are dropped with a warning.
    """
    import datasets

    if aspect is not None:
        if aspect not in ASPECTS:
            raise HarnessError(f"unknown aspect {aspect!r}; expected one of {', '.join(ASPECTS)}")
        dataset = dataset.filter(lambda a: a == aspect, input_columns="aspect")
    if "video" not in dataset.column_names:
        return dataset
    dataset = with_videos(dataset, video_dir)  # an annotations-only split: the files of a download folder
    dataset = dataset.cast_column("video", datasets.Video(decode=False))

    def video_path(video: Mapping, ident: str) -> dict:
        path = (video or {}).get("path")
        if not path or not os.path.isfile(path):
            raise HarnessError(f"{ident}: video file not found ({path!r}); harness tasks need local mp4 files")
        return {"video_path": os.path.abspath(path)}

    return dataset.map(video_path, input_columns=["video", "id"], remove_columns=["video"])


def aspect_filter(aspect: str) -> Callable[[Any], Any]:
    """A ``process_docs`` keeping the MC questions of one aspect (``video`` -> ``video_path`` too)."""
    def process_docs(dataset: Any) -> Any:
        return prepare_docs(dataset, aspect)

    process_docs.__name__ = f"process_docs_{aspect}"
    return process_docs


def load_docs(config: str, data: str | None = None, aspect: str | None = None, **metadata: Any) -> dict[str, Any]:
    """lm-eval's ``custom_dataset``: ``{split: docs}`` of ``config`` (``mc``/``oe``), judge settings remembered.

    lm-eval passes ``--metadata`` (merged with the model args) as keyword arguments, hence ``**metadata``.
    """
    if config not in ("mc", "oe"):
        raise HarnessError(f"config must be 'mc' or 'oe', got {config!r}")
    source = data_source({"data": data} if data else metadata)
    configure_judge(metadata)
    split = hub_load(source, config)  # its local folder's private cache; a HubError names the path and why
    return {SPLITS[config]: prepare_docs(split, aspect, video_dir=metadata.get("video_dir"))}


# --------------------------------------------------------------------------------------------
# Prompts, visuals, targets
# --------------------------------------------------------------------------------------------
def doc_to_text(doc: Mapping, lmms_eval_specific_kwargs: Mapping | None = None) -> str:
    """The prompt of a doc (MC or OE), optionally wrapped in lmms-eval's ``pre_prompt``/``post_prompt``."""
    return wrap_prompt(mc_prompt(doc) if "question_id" in doc else oe_prompt(doc), lmms_eval_specific_kwargs)


def wrap_prompt(text: str, lmms_eval_specific_kwargs: Mapping | None = None) -> str:
    """``text`` inside lmms-eval's ``pre_prompt``/``post_prompt`` (unchanged without them)."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{text}{kwargs.get('post_prompt', '')}"


def doc_to_visual(doc: Mapping) -> list[str]:
    """The doc's video as a one-element list of an mp4 path (its music is the video's own audio track)."""
    return [doc["video_path"]]


def doc_to_target(doc: Mapping) -> str:
    """The reference: the answer letter (MC) or the four-section annotation (OE)."""
    return doc["answer"] if "question_id" in doc else doc["annotation"]


def reply_text(results: Any) -> str:
    """The model's reply in a harness ``results`` list (or the value itself), as text."""
    reply = results[0] if isinstance(results, (list, tuple)) else results
    return "" if reply is None else str(reply)


# --------------------------------------------------------------------------------------------
# MC
# --------------------------------------------------------------------------------------------
def mc_process_results(doc: Mapping, results: Any) -> dict[str, Any]:
    """``accuracy`` (1 when the letter read is the answer), ``invalid_rate`` (1 when none/several) and ``choice``.

    ``choice`` is the letter read (None when invalid) and the reason, which ``--log_samples`` keeps.
    """
    choice = parse_choice(reply_text(results), doc["options"])
    return {"accuracy": int(choice.letter == doc["answer"]), "invalid_rate": int(choice.letter is None),
            "choice": {"letter": choice.letter, "reason": choice.reason}}


def mc_letter_only(items: list) -> float:
    """The share of replies that were only a letter: the answer format the prompt asks for."""
    return sum(i["reason"] == LETTER_ONLY for i in items) / len(items) if items else math.nan


# --------------------------------------------------------------------------------------------
# OE
# --------------------------------------------------------------------------------------------
_JUDGE_SETTINGS: dict[str, Any] = {}  # from lm-eval's --metadata (load_docs), read by the aggregation
_JUDGED: dict[str, dict] = {}  # evaluate_oe results by the digest of (settings, items): one judge run per task


def configure_judge(metadata: Mapping[str, Any] | None) -> None:
    """Remember the judge settings of ``--metadata`` (an aggregation function sees no task config)."""
    metadata = metadata or {}
    if "judge_api_key" in metadata:
        raise ConfigError("never pass an API key in --metadata (it is logged): set HARMONYSET_JUDGE_API_KEY")
    _JUDGE_SETTINGS.update({k: metadata[k] for k in JUDGE_KEYS if metadata.get(k) not in (None, "")})


def judge_settings() -> dict[str, Any]:
    """The judge settings in force: ``--metadata`` first, then ``$HARMONYSET_JUDGE`` for the kind."""
    settings = dict(_JUDGE_SETTINGS)
    settings.setdefault("judge", os.environ.get(JUDGE_ENV, "").strip() or "openai")
    return settings


def make_harness_judge(settings: Mapping[str, Any]) -> Any:
    """The judge of ``settings`` (``openai``: the paper's prompt on any OpenAI-compatible server)."""
    kind = str(settings.get("judge", "openai"))
    if kind == "embedding":
        return make_judge("embedding")
    if kind not in ("openai", "llm", "gpt"):
        raise ConfigError(f"unknown judge {kind!r} (metadata 'judge' or ${JUDGE_ENV}): use openai or embedding")
    concurrency = settings.get("judge_concurrency")
    return make_judge("openai", model=settings.get("judge_model"), base_url=settings.get("judge_base_url"),
                      concurrency=int(concurrency) if concurrency else None, cache_dir=settings.get("judge_cache"))


# The category x aspect table of `harmonyset eval oe`, one harness metric per cell: "{category}_{aspect}".
OE_CELLS: tuple[tuple[str, str], ...] = tuple((c, a) for c in CATEGORIES for a in ASPECTS)
_VERDICT_KEYS = ("status", "scores", "error", "judge_reply", "judge_model", "judge_system_fingerprint")


def oe_process_results(doc: Mapping, results: Any) -> dict[str, dict]:
    """Under ``judge`` the reply and what judging it needs; under every other OE metric a reference to it.

    The reference (id and the reply's digest) keeps ``--log_samples`` small: the judge runs once,
    in the ``judge`` metric's aggregation (the first key here, so the harness aggregates it first).
    """
    reply = reply_text(results)
    ref = {"id": str(doc["id"]), "response_sha256": hashlib.sha256(reply.encode("utf-8")).hexdigest()}
    item = {**ref, "category": doc["category"], "subcategory": doc.get("subcategory"),
            "annotation": doc["annotation"], "response": reply}
    return {"judge": item, **{aspect: ref for aspect in ASPECTS}, "failed": ref,
            **{f"{c}_{a}": ref for c, a in OE_CELLS}}


def judge_items(items: list[dict]) -> dict:
    """``evaluate_oe`` results of the OE items (one judge run per distinct item set and settings).

    Each item gets its verdict (``status``, ``scores`` or ``error``, ``judge_reply``, the served
    ``judge_model``), so the harness's sample log shows it.
    """
    settings = judge_settings()

    def judge_all() -> dict:
        if any("annotation" not in i for i in items):
            raise HarnessError("the OE judge runs in the aggregation of the `judge` metric, which must come first "
                               "in oe_process_results (use the task YAML shipped with harmonyset_hf)")
        judge = make_harness_judge(settings)
        try:
            rows = [{k: i[k] for k in ("id", "category", "subcategory", "annotation")} for i in items]
            results, judged = evaluate_oe(rows, {str(i["id"]): i["response"] for i in items}, judge, model="harness")
        finally:
            judge.close()
        verdicts = {j["id"]: {k: j[k] for k in _VERDICT_KEYS if k in j} for j in judged}
        for i in items:  # in place: these are the dicts the harness logs (it writes samples after aggregating)
            i.update(verdicts.get(str(i["id"]), {}))
        log.info("%s", summary_line(results))
        return results

    return memoised(_JUDGED, [settings, [[i["id"], i["response_sha256"]] for i in items]], judge_all)


def memoised(cache: dict[str, dict], key: Any, compute: Callable[[], dict]) -> dict:
    """``compute()``, run once per distinct ``key`` (by the digest of its JSON) and kept in ``cache``.

    Every metric of a task aggregates the same items, so the scoring they share runs only once.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    if digest not in cache:
        cache[digest] = compute()
    return cache[digest]


def overall_metric(score: Callable[[list], dict], key: str, name: str, doc: str) -> Callable[[list], float]:
    """An aggregation: ``score(items)["overall"][key]`` as a float (NaN when None), named ``name``."""
    def aggregate(items: list) -> float:
        value = score(items)["overall"][key]
        return math.nan if value is None else float(value)

    aggregate.__name__ = name
    aggregate.__doc__ = doc
    return aggregate


def _aspect_mean(aspect: str) -> Callable[[list], float]:
    return overall_metric(judge_items, aspect, f"oe_{aspect}",
                          f"Mean judge score (1-10) for {aspect} over the judged items, as `harmonyset eval oe`.")


def oe_scored(items: list) -> int:
    """How many replies the judge scored (the ``judge`` metric, whose items hold each verdict)."""
    return int(judge_items(items)["counts"]["scored"])


def _cell_mean(category: str, aspect: str) -> Callable[[list], float]:
    def aggregate(items: list) -> float:
        value = judge_items(items)["categories"].get(category, {}).get(aspect)
        return math.nan if value is None else float(value)

    aggregate.__name__ = f"oe_{category}_{aspect}"
    aggregate.__doc__ = f"Mean judge score (1-10) for {aspect} over the {category} items, as `harmonyset eval oe`."
    return aggregate


oe_rhythm = _aspect_mean("rhythm")
oe_theme = _aspect_mean("theme")
oe_emotion = _aspect_mean("emotion")
oe_culture = _aspect_mean("culture")


def oe_failed(items: list) -> int:
    """How many replies the judge could not score (left out of the means)."""
    return int(judge_items(items)["counts"]["failed"])


# Aggregations by the names the task YAMLs use (``utils.<name>``), which each task folder's utils.py
# takes in one line: the table's cells (``oe_{category}_{aspect}``), the OE count scored, the MC share of
# bare letters.
AGGREGATIONS: dict[str, Callable[[list], float]] = {
    **{f"oe_{c}_{a}": _cell_mean(c, a) for c, a in OE_CELLS}, "oe_scored": oe_scored, "mc_letter_only": mc_letter_only,
}
