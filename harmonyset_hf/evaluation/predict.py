"""`harmonyset predict`: run a model over HarmonySet-MC or -OE and append its replies to a JSON Lines file.

Resumable: ids already in the output are skipped and each batch is appended (flushed and
fsynced) as soon as it is done, so a killed run loses at most the batch in flight. A batch whose
model call fails is retried one item at a time; items that still fail are reported by id and
left for the next run.

Data-parallel under torchrun / accelerate launch (:mod:`harmonyset_hf.distributed`): each rank
answers whole items into its own part file and rank 0 merges the parts into ``out`` in the data's
order (:func:`predict_data_parallel`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.hub import load as hub_load
from ..data.video_folder import with_videos
from ..distributed import (
    DEFAULT_TIMEOUT_S,
    Rank,
    barrier,
    gather,
    merge_parts,
    part_files,
    part_path,
    process_group,
    shard_by_item,
)
from ..errors import HarmonySetError
from ..io import append_jsonl, read_jsonl
from ..models import stopped_on_length
from ..prompting import prompt_for
from ..schema import CONFIGS
from ..sync.swap import load_pair
from .scoring import circular_variants

log = logging.getLogger(__name__)


class PredictError(HarmonySetError):
    """A prediction run that cannot start (bad config, output of another model, ...)."""


@dataclass
class PredictSummary:
    """What a prediction run did."""

    out: Path
    model: str
    total: int
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    ranks: int = 1

    def line(self) -> str:
        """One-line summary for the terminal."""
        failed = f", {len(self.failed)} failed (rerun to retry)" if self.failed else ""
        ranks = f" by {self.ranks} processes" if self.ranks > 1 else ""
        return (f"predict {self.model}: {self.written} new{ranks}, {self.skipped} already in {self.out} "
                f"(of {self.total}){failed}")


def id_key(config: str) -> str:
    """The field that identifies a prediction of ``config`` (``question_id`` for MC, ``id`` for OE)."""
    return "question_id" if config == "mc" else "id"


def load_split(data: str | os.PathLike, config: str, media: bool = False, limit: int | None = None,
               video_dir: str | os.PathLike | None = None) -> list[dict]:
    """The evaluation rows of ``config`` (``mc``, ``oe``, or ``pair`` of a swap folder) as plain dicts.

    For ``pair``, ``limit`` counts items (each with both of its versions).

    Without ``media`` the ``video`` column is dropped (nothing is decoded); with it, ``video`` is
    the undecoded ``{"path", "bytes"}`` for :func:`harmonyset_hf.media.load_clip`. An annotations-only
    folder takes its videos from ``video_dir`` (else ``$HARMONYSET_VIDEO_DIR``); rows whose video is
    not there are left out, with a warning that counts and names them.
    """
    import datasets

    if config not in (*CONFIGS, "pair") or config == "instruct":
        raise PredictError(f"config must be 'mc', 'oe' or 'pair', got {config!r}")
    try:
        if config == "pair":  # a `harmonyset derive swap` folder

            ds = load_pair(data)
        else:
            ds = hub_load(data, config)
    except (FileNotFoundError, ValueError) as err:  # hub_load explains its own failures (HubError)
        hint = " (the pair config is in a folder made by `harmonyset derive swap`)" if config == "pair" else ""
        raise PredictError(f"cannot load config {config!r} of {data}: {err}{hint}") from err
    if limit is not None and config == "pair":  # the first N items, both versions of each
        pair_ids = ds["pair_id"]
        first = set(list(dict.fromkeys(pair_ids))[:limit])
        ds = ds.select([i for i, p in enumerate(pair_ids) if p in first])
    elif limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    if media and config != "pair":
        ds = with_videos(ds, video_dir)  # an annotations-only folder: the files of a download folder
    if "video" in ds.column_names:
        ds = ds.cast_column("video", datasets.Video(decode=False)) if media else ds.remove_columns("video")
    return ds.to_list()


def existing_predictions(path: str | os.PathLike, config: str) -> dict[str, dict]:
    """Predictions already in ``path`` and its part files (a data-parallel run's) keyed by id (empty when none)."""
    path = Path(path)
    key = id_key(config)
    out: dict[str, dict] = {}
    for file in (path, *part_files(path)):
        if not file.exists():
            continue
        for number, rec in enumerate(read_jsonl(file), 1):
            if key not in rec or "response" not in rec:
                raise PredictError(f"{file}: line {number} is not a HarmonySet-{config.upper()} prediction "
                                   f"(needs {key!r} and 'response')")
            out.setdefault(str(rec[key]), rec)
    return out


def _generate_safely(model: Any, batch: list[dict], prompts: list[str], key: str,
                     failed: dict[str, str]) -> list[tuple[dict, str]]:
    try:
        replies = model.generate(batch, prompts)
        if len(replies) != len(batch):
            raise PredictError(f"{model.name} returned {len(replies)} replies for {len(batch)} rows")
        return list(zip(batch, replies))
    except Exception as err:  # noqa: BLE001 - one bad item must not lose the batch
        if len(batch) == 1:
            failed[str(batch[0][key])] = f"{type(err).__name__}: {err}"
            log.warning("%s: %s", batch[0][key], failed[str(batch[0][key])])
            return []
        out = []
        for row, prompt in zip(batch, prompts):
            out.extend(_generate_safely(model, [row], [prompt], key, failed))
        return out


def check_model_config(model: Any, config: str) -> None:
    """Raise :class:`PredictError` when ``model`` declares ``configs`` and ``config`` is not one of them."""
    supported = getattr(model, "configs", None)
    if supported and config not in supported:
        raise PredictError(f"model {model.name} answers {'/'.join(supported)} only, not {config!r}")


def prediction_rows(rows: list[dict], config: str, circular: bool = False) -> list[dict]:
    """The rows to answer: ``rows``, or with ``circular`` (MC only) each question in its 4 rotations (``"#r{k}"``)."""
    if not circular:
        return rows
    if config != "mc":
        raise PredictError("--circular applies to HarmonySet-MC only")
    return [variant for row in rows for variant in circular_variants(row)]


def run_predictions(model: Any, rows: list[dict], config: str, out: str | os.PathLike, *,
                    batch_size: int = 8, circular: bool = False, meta: dict | None = None,
                    progress: bool = True, rank: Rank | None = None) -> PredictSummary:
    """Answer every row not yet in ``out`` and append ``{id|question_id, response, model, meta}`` lines.

    With ``circular`` (MC only) each question is asked in its 4 rotations (``"{question_id}#r{k}"``).
    With a ``rank`` of several, only that rank's items are answered, into its part file
    (:func:`predict_data_parallel` merges them).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    key = id_key(config)
    rank = rank or Rank()
    check_model_config(model, config)
    rows = shard_by_item(prediction_rows(rows, config, circular), rank, lambda row: str(row.get("id", row[key])))
    target = part_path(out, rank) if rank.distributed else out
    done = existing_predictions(out, config)
    others = Counter(rec.get("model") for rec in done.values() if rec.get("model") not in (None, model.name))
    if others:
        raise PredictError(f"{out} already holds predictions of {', '.join(map(str, others))}, not "
                           f"{model.name}; write to another file")
    todo = [row for row in rows if str(row[key]) not in done]
    summary = PredictSummary(out=out, model=model.name, total=len(rows), skipped=len(rows) - len(todo))
    where = f" (rank {rank.rank}/{rank.world_size})" if rank.distributed else ""
    bar = tqdm(total=len(rows), initial=summary.skipped, desc=f"predict {model.name}{where}", unit="item",
               disable=not progress or not rank.is_main, leave=False)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        prompts = [prompt_for(config, row) for row in batch]
        answered = _generate_safely(model, batch, prompts, key, summary.failed)
        records = [{key: str(row[key]), "response": str(reply), "model": model.name,
                    **({} if stopped_on_length(reply) is None else {"truncated": stopped_on_length(reply)}),
                    **({"meta": meta} if meta else {})} for row, reply in answered]
        summary.written += append_jsonl(target, records)
        bar.update(len(batch))
    bar.close()
    return summary


def predict_data_parallel(model: Any, rows: list[dict], config: str, out: str | os.PathLike, *,
                          rank: Rank | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                          **options: Any) -> PredictSummary:
    """:func:`run_predictions` on this rank's items, then every rank's summary, and ``out`` merged by rank 0.

    One process: the plain run (parts left by an earlier data-parallel run are merged in). Several:
    each rank appends to its part file; after a barrier (at most ``timeout_s``) rank 0 rewrites
    ``out`` atomically with every prediction in the data's order, as a one-process run writes it.
    Every rank returns the summary of the whole run.
    """
    rank = rank or Rank()
    out = Path(out)
    key = id_key(config)
    order = [str(row[key]) for row in prediction_rows(rows, config, options.get("circular", False))]
    with process_group(rank, timeout_s) as group:
        mine = run_predictions(model, rows, config, out, rank=rank, **options)
        barrier(group, timeout_s, what=f"the other ranks to finish their part of {out}")
        if rank.is_main:
            merge_parts(out, order, key)
        summaries = gather(mine, group)
        barrier(group, timeout_s, what=f"rank 0 to merge {out}")  # the file is whole when any rank returns
    failed: dict[str, str] = {}
    for part in summaries:
        failed.update(part.failed)
    return PredictSummary(out=out, model=mine.model, total=sum(s.total for s in summaries),
                          written=sum(s.written for s in summaries), skipped=sum(s.skipped for s in summaries),
                          failed=failed, ranks=rank.world_size)
