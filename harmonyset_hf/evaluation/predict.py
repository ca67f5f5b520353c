"""`harmonyset predict`: run a model over HarmonySet-MC or -OE and append its replies to a JSON Lines file.

Resumable: ids already in the output are skipped and each batch is appended (flushed and
fsynced) as soon as it is done, so a killed run loses at most the batch in flight. A batch whose
model call fails is retried one item at a time; items that still fail are reported by id and
left for the next run.
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

    def line(self) -> str:
        """One-line summary for the terminal."""
        failed = f", {len(self.failed)} failed (rerun to retry)" if self.failed else ""
        return (f"predict {self.model}: {self.written} new, {self.skipped} already in {self.out} "
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
    """Predictions already in ``path`` keyed by id (empty when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    key = id_key(config)
    out: dict[str, dict] = {}
    for number, rec in enumerate(read_jsonl(path), 1):
        if key not in rec or "response" not in rec:
            raise PredictError(f"{path}: line {number} is not a HarmonySet-{config.upper()} prediction "
                               f"(needs {key!r} and 'response')")
        out[str(rec[key])] = rec
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


def run_predictions(model: Any, rows: list[dict], config: str, out: str | os.PathLike, *,
                    batch_size: int = 8, circular: bool = False, meta: dict | None = None,
                    progress: bool = True) -> PredictSummary:
    """Answer every row not yet in ``out`` and append ``{id|question_id, response, model, meta}`` lines.

    With ``circular`` (MC only) each question is asked in its 4 rotations (``"{question_id}#r{k}"``).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    key = id_key(config)
    check_model_config(model, config)
    if circular:
        if config != "mc":
            raise PredictError("--circular applies to HarmonySet-MC only")
        rows = [variant for row in rows for variant in circular_variants(row)]
    done = existing_predictions(out, config)
    others = Counter(rec.get("model") for rec in done.values() if rec.get("model") not in (None, model.name))
    if others:
        raise PredictError(f"{out} already holds predictions of {', '.join(map(str, others))}, not "
                           f"{model.name}; write to another file")
    todo = [row for row in rows if str(row[key]) not in done]
    summary = PredictSummary(out=out, model=model.name, total=len(rows), skipped=len(rows) - len(todo))
    bar = tqdm(total=len(rows), initial=summary.skipped, desc=f"predict {model.name}", unit="item",
               disable=not progress, leave=False)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        prompts = [prompt_for(config, row) for row in batch]
        answered = _generate_safely(model, batch, prompts, key, summary.failed)
        records = [{key: str(row[key]), "response": str(reply), "model": model.name,
                    **({} if stopped_on_length(reply) is None else {"truncated": stopped_on_length(reply)}),
                    **({"meta": meta} if meta else {})} for row, reply in answered]
        summary.written += append_jsonl(out, records)
        bar.update(len(batch))
    bar.close()
    return summary
