"""Data parallelism for evaluation: which process this is, its device, a bounded barrier, per-rank part files.

`harmonyset predict` (and the harness models) run under ``torchrun --nproc_per_node N`` or
``accelerate launch --num_processes N``; both launchers set ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``. Each rank takes whole items (every question of a clip on one rank, so that the clip
is decoded and encoded once), appends its replies to its own part file, and rank 0 merges the parts
into the one output file, in the data's order, once every rank has passed the barrier.

Ranks talk over a gloo process group even when the models sit on GPUs: they exchange only a few
Python objects (summaries), and gloo is the backend with a barrier that names the ranks that did not
arrive (``monitored_barrier``) and needs no GPU.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import HarmonySetError
from .io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

# How long ranks wait for each other by default (a rank done early waits for the slowest one).
DEFAULT_TIMEOUT_S = 2 * 3600
_PART_RE = re.compile(r"^rank(\d+)-of-(\d+)\.jsonl$")


class DistributedError(HarmonySetError):
    """A bad launcher environment, or ranks that did not all finish in time."""


@dataclass(frozen=True)
class Rank:
    """This process's place in a data-parallel run (rank 0 of 1 without a launcher)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that merges and prints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1


def current_rank(env: Mapping[str, str] | None = None) -> Rank:
    """This process's rank, world size and local rank, as torchrun / accelerate launch set them (``RANK``, ...)."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1") or 1)
        rank = int(env.get("RANK", "0") or 0)
        local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    except ValueError as err:
        raise DistributedError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {err}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DistributedError(f"bad launcher environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return Rank(rank=rank, world_size=world, local_rank=local)


def rank_device(device: str | None = None, rank: Rank | None = None) -> str:
    """The device of this rank: ``cuda:{local_rank}`` for ``None``/``"cuda"``/``"cuda:N"`` when CUDA is here, else CPU.

    Under several processes a bare or indexed ``cuda`` would put every rank on the same GPU, so
    the local rank decides (as lmms-eval's models and lm-eval's HFLM do with accelerate). Other
    devices (``cpu``, ``mps``) are kept.
    """
    import torch

    rank = rank or current_rank()
    if device not in (None, "") and not str(device).startswith("cuda"):
        return str(device)
    if not torch.cuda.is_available():
        if device:
            log.warning("device %s: no CUDA here, running on CPU", device)
        return "cpu"
    if rank.distributed or not device or device == "cuda":
        if device not in (None, "", "cuda", f"cuda:{rank.local_rank}"):
            log.warning("device %s replaced by cuda:%d: each rank takes the GPU of its local rank", device,
                        rank.local_rank)
        return f"cuda:{rank.local_rank}"
    return str(device)


@contextlib.contextmanager
def process_group(rank: Rank, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Any]:
    """A gloo process group for ``rank`` (none for one process); destroyed on exit when made here.

    When the launcher's code already made a group (accelerate, a harness), a gloo group over it is
    used and the default group is left alone.
    """
    if not rank.distributed:
        yield None
        return
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    made = not dist.is_initialized()
    if made:
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise DistributedError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: "
                                   "start with torchrun or accelerate launch")
        dist.init_process_group("gloo", rank=rank.rank, world_size=rank.world_size, timeout=timeout)
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    try:
        yield group
    finally:
        if made:
            dist.destroy_process_group()


def close_process_group() -> None:
    """Destroy the default process group if one is up (a no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@functools.cache
def close_process_group_at_exit() -> None:
    """Have the default process group destroyed when Python exits, while the interpreter is still whole (once).

    For groups that code we call makes and never destroys (the harness models' accelerator): a rank
    that leaves gloo's threads to interpreter finalization can abort with "terminate called without
    an active exception" (SIGABRT) after all its work is done (pytorch/pytorch#190489), and its
    launcher then fails the whole run.
    """
    atexit.register(close_process_group)


def barrier(group: Any = None, timeout_s: float = DEFAULT_TIMEOUT_S, what: str = "the other ranks") -> None:
    """Wait (at most ``timeout_s``) until every rank gets here; a rank that does not is named in the error."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size(group) == 1:
        return
    try:
        dist.monitored_barrier(group=group, timeout=timedelta(seconds=timeout_s), wait_all_ranks=True)
    except RuntimeError as err:  # gloo says which ranks failed to respond
        text = " ".join(str(err).split())[:300]
        raise DistributedError(f"waited {timeout_s:.0f} s for {what}: {text}. The parts written so far are kept; "
                               "rerun the same command to finish") from None


def gather(obj: Any, group: Any = None) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for one process)."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size(group) == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def shard_by_item(rows: Sequence[dict], rank: Rank, item_of: Callable[[dict], str]) -> list[dict]:
    """The rows of this rank: items (in order of first appearance) go round-robin, every row of an item together.

    Round-robin over the whole data (not over what is left to do) gives each item a fixed rank, so
    ranks never race over an item, and a resumed run stays balanced when a prefix is done.
    """
    if not rank.distributed:
        return list(rows)
    owner: dict[str, int] = {}
    for row in rows:
        owner.setdefault(item_of(row), len(owner) % rank.world_size)
    return [row for row in rows if owner[item_of(row)] == rank.rank]


# ------------------------------------------------------------------------------------------------
# Part files: one JSON Lines file per rank beside the output, merged into it by rank 0
# ------------------------------------------------------------------------------------------------
def parts_dir(out: str | os.PathLike) -> Path:
    """The folder of ``out``'s part files (``preds.jsonl`` -> ``preds.jsonl.parts/``)."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def part_path(out: str | os.PathLike, rank: Rank) -> Path:
    """The part file that ``rank`` appends to."""
    return parts_dir(out) / f"rank{rank.rank}-of-{rank.world_size}.jsonl"


def part_files(out: str | os.PathLike) -> list[Path]:
    """Every part file of ``out`` (of any earlier world size too), in a stable order."""
    folder = parts_dir(out)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _PART_RE.match(p.name))


def read_records(paths: Iterable[Path]) -> Iterator[dict]:
    """The records of each existing file in ``paths``, in order (a torn last line is skipped)."""
    for path in paths:
        if path.is_file():
            yield from read_jsonl(path)


def merge_parts(out: str | os.PathLike, order: Sequence[str], key: str) -> int:
    """Rewrite ``out`` atomically with its records and its parts', each id once, in ``order``; drop the parts.

    Records whose id is not in ``order`` (an earlier run over more data) keep their place after the
    ordered ones. The first record of an id wins (``out`` before the parts), so a crash between the
    write and the removal of the parts merges to the same file again. Returns the number of records.
    """
    out = Path(out)
    parts = part_files(out)
    if not parts:
        return 0
    records: dict[str, dict] = {}
    for rec in read_records([out, *parts]):
        records.setdefault(str(rec.get(key)), rec)
    position = {ident: i for i, ident in enumerate(order)}
    ranked = sorted(records, key=lambda ident: position.get(ident, len(position)))
    write_jsonl(out, (records[ident] for ident in ranked))
    for part in parts:  # only files this module named and wrote
        part.unlink()
    with contextlib.suppress(OSError):  # not empty: someone else's file is there, keep it
        parts_dir(out).rmdir()
    return len(records)
