"""Canonical records -> a Hub-ready folder that `datasets.load_dataset(folder, config)` reads.

Layout (found by reading datasets 5.2's ``folder_based_builder`` and checked by experiment):

* with media: ``instruct.parquet``, ``oe.parquet`` and ``mc.parquet`` at the root, next to
  ``videos/train/NNN/<id>.mp4`` and ``videos/test/NNN/<id>.mp4`` (at most 10,000 files a folder).
  The README ``configs:`` block gives each config its metadata file plus its split's videos, and
  ``metadata_filenames: [<config>.parquet]`` so that the video-folder builder takes the parquet
  file as its metadata (only ``metadata.parquet`` is recognised by default, and one root can hold
  only one of those). A metadata ``file_name`` is resolved relative to the metadata file and may
  not contain ``..``, which is why the metadata sits at the root above ``videos/``. The parquet
  files carry the ``datasets`` features in their schema metadata, so labels, sync points and
  metadata come out typed as in :func:`harmonyset_hf.schema.features`; ``file_name`` becomes the
  decoded ``video`` column. The module of every config is inferred from the *first* config's
  files (the most common extension, a tie going to parquet), so the first config listed is one
  with at least two videos (in a tiny build without one, the first config lists all videos).
* ``annotations_only``: plain parquet ``data/<config>/<split>.parquet``; ``video`` is then a
  string, the video reference as the release gives it (e.g. ``hs000123.mp4``), to join with
  videos downloaded by the user.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from .. import schema
from ..io import atomic_write_json, mask_secrets, package_versions
from ..prompting import has_instruction, instruction_for
from .build_out import prepare_output_folder, replace_output_folder
from .card import render_card
from .folder import VIDEO_SPLIT, HubError, annotations_file, config_table, media_file
from .release import ReleaseReader, iter_release

log = logging.getLogger(__name__)

MAX_FILES_PER_FOLDER = 10_000
LINK_MODES = ("hardlink", "symlink", "copy")
BATCH_ROWS = 1000


def row_features(config: str, annotations_only: bool):
    """The features written to a config's parquet file (``file_name`` for media, ``video`` string otherwise)."""
    import datasets

    feats = schema.features(config, with_video=False)
    first = "video" if annotations_only else "file_name"
    return datasets.Features({first: datasets.Value("string"), **feats})


def safe_name(item_id: str) -> str:
    """A file-system-safe stem for an id (a short hash is appended when characters had to change)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", item_id)
    if stem != item_id or stem.startswith("."):
        stem = f"{stem.lstrip('.')}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}"
    return stem


def link_file(src: str | os.PathLike, dst: str | os.PathLike, mode: str = "hardlink") -> str:
    """Place ``src`` at ``dst`` by hardlink (copy across devices), symlink or copy; returns the mode used."""
    if mode not in LINK_MODES:
        raise HubError(f"unknown link mode {mode!r}; valid: {', '.join(LINK_MODES)}")
    if mode == "symlink":
        os.symlink(os.path.abspath(src), dst)
        return mode
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return mode
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
                raise
    shutil.copyfile(src, dst)
    return "copy"


class RowGroupWriter:
    """Writes one config's rows to parquet in row groups, so memory stays flat at any size."""

    def __init__(self, path: Path, features):
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = features.arrow_schema
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.count += len(self.rows)
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


class _Videos:
    """Assigns each item's video its place under ``videos/<split>/NNN/`` and links it there."""

    def __init__(self, root: Path, link_mode: str):
        self.root, self.link_mode = root, link_mode
        self.dest: dict[tuple[str, str], str] = {}
        self.count: dict[str, int] = {"train": 0, "test": 0}
        self.modes: dict[str, int] = {}

    def place(self, split: str, item_id: str, src: str) -> str:
        key = (split, item_id)
        if key not in self.dest:
            n = self.count[split]
            self.count[split] += 1
            rel = f"videos/{split}/{n // MAX_FILES_PER_FOLDER:03d}/{safe_name(item_id)}{Path(src).suffix.lower()}"
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            used = link_file(src, target, self.link_mode)
            self.modes[used] = self.modes.get(used, 0) + 1
            self.dest[key] = rel
        return self.dest[key]


def _row(rec: dict, config: str, features, videos: _Videos | None) -> dict:
    row = {k: rec.get(k) for k in features}
    if videos is None:
        row["video"] = rec["video"]
    else:
        row["file_name"] = videos.place(VIDEO_SPLIT[config], rec["id"], rec["video"])
    return row


def build_hub(release_dir: str | os.PathLike, videos_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
              annotations_only: bool = False, strict: bool = False, link_mode: str = "hardlink",
              field_map: dict | str | None = None, card: bool = True) -> dict[str, Any]:
    """Build a Hub-ready folder from release files (+ videos); returns the build report (also written)."""
    from tqdm.auto import tqdm

    if link_mode not in LINK_MODES:
        raise HubError(f"unknown link mode {link_mode!r}; valid: {', '.join(LINK_MODES)}")
    if videos_dir is None and not annotations_only:
        raise HubError("no videos folder given: pass --videos DIR, or --annotations-only for the annotations alone "
                       "(videos_dir= / annotations_only=True in Python)")
    if videos_dir is not None and not annotations_only and not Path(videos_dir).is_dir():
        raise HubError(f"videos folder {videos_dir} does not exist")
    # One rule for every output: replace only an earlier build, never an input or the current folder.
    out, tmp = prepare_output_folder(out_dir, {"release": release_dir,
                                               "videos": None if annotations_only else videos_dir})
    started = time.perf_counter()
    reader = ReleaseReader(None if annotations_only else videos_dir, field_map=field_map, strict=strict,
                           check_videos=not annotations_only)
    videos = None if annotations_only else _Videos(tmp, link_mode)
    writers: dict[str, RowGroupWriter] = {}
    feats = {c: row_features(c, annotations_only) for c in schema.CONFIGS}
    drawn = dict.fromkeys(("instruct", "oe"), 0)  # items without an instruction: prompts get a drawn template
    try:
        for config, rec in tqdm(iter_release(release_dir, reader), desc="build", unit=" rows"):
            if config in drawn and not has_instruction(rec):
                drawn[config] += 1
            if config not in writers:
                target = tmp / (annotations_file(config) if annotations_only else media_file(config))
                writers[config] = RowGroupWriter(target, feats[config])
            writers[config].add(_row(rec, config, feats[config], videos))
        for writer in writers.values():
            writer.close()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    release = reader.release
    report = {
        "annotations_only": annotations_only,
        "link_mode": link_mode,
        "counts": {c: (writers[c].count if c in writers else 0) for c in schema.CONFIGS},
        "videos": dict(videos.count) if videos else {},
        "link_modes_used": dict(videos.modes) if videos else {},
        "mc_items": len({r.rsplit(":", 1)[0] for r in reader._qids}),
        "instructions_drawn": drawn,
        **{k: v for k, v in release.report().items() if k != "counts"},
        "seconds": round(time.perf_counter() - started, 2),
        "versions": package_versions(),
    }
    missing = list(dict.fromkeys(p.id for p in release.problems if p.reason.startswith("missing video")))
    report["missing_videos"] = {"count": len(missing), "ids": missing}  # what `videos download` could not get
    report["warnings"] = []
    if videos is not None and sum(videos.count.values()) < 2 and any(report["counts"].values()):
        # See configs_yaml: with a single video, datasets reads the metadata parquet as plain data.
        report["warnings"].append("fewer than 2 videos in all: load_dataset will not see a Video column")
    for warning in report["warnings"]:
        log.warning("%s", warning)
    atomic_write_json(tmp / "build_report.json", report)
    if card:
        render_card(tmp, report=report)
    replace_output_folder(tmp, out)
    log.info("built %s: %s; %d skipped (see build_report.json)", out,
             ", ".join(f"{c} {n}" for c, n in report["counts"].items()), report["skipped_count"])
    return report


def load(path: str | os.PathLike, config: str, split: str | None = None, streaming: bool = False, **kwargs):
    """``datasets.load_dataset(path, config, split=<its split>)``: a thin convenience, not a second loader."""
    import datasets

    if config not in schema.CONFIGS:
        raise HubError(f"unknown config {config!r}; valid: {', '.join(schema.CONFIGS)}")
    kwargs.setdefault("cache_dir", local_cache_dir(path))
    try:
        return datasets.load_dataset(str(path), config, split=split or schema.SPLITS[config], streaming=streaming,
                                     **kwargs)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise HubError(f"cannot load config {config!r} of {path}: {load_problem(path, err)}") from err


def load_problem(path: str | os.PathLike, err: Exception) -> str:
    """Why ``load_dataset`` failed, in the user's terms (a typo'd folder is tried as a Hub repo id)."""
    if not Path(path).exists():
        return f"no such folder, and as a Hub repo id: {err}"
    if Path(path).is_dir() and not (Path(path) / "README.md").is_file():
        return f"{err} (not a Hub folder: make one from the release files with `harmonyset build`)"
    return str(err)


def local_cache_dir(data: str | os.PathLike) -> str | None:
    """A `datasets` cache folder private to one local Hub folder's exact contents (None for a Hub repo id).

    datasets 5.2 keys the cache of a local folder by its base name and README configs only, so two
    builds with the same name (a rebuild, another tmp folder) share one cache and the second load
    returns the first one's rows and video paths. Keying by the folder's path and its metadata
    files' sizes and mtimes avoids that.
    """
    import hashlib

    import datasets

    root = Path(data)
    if not root.is_dir():
        return None
    digest = hashlib.sha256(str(root.resolve()).encode())
    for item in sorted([*root.glob("*"), *root.glob("data/*/*")]):
        if item.is_file():
            stat = item.stat()
            digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "harmonyset-local" / digest.hexdigest()[:16])


# --------------------------------------------------------------------------------------------
# Push and export
# --------------------------------------------------------------------------------------------
def redact(text: str, token: str | None) -> str:
    """``text`` with the token, the process's secrets (with or without prefix) and HF-token shapes masked."""
    text = mask_secrets(text, (token,) if token else ())
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def upload_files(hub_dir: str | os.PathLike) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file a push uploads (hidden files and folders left out)."""
    hub = Path(hub_dir)
    out = []
    for dirpath, dirnames, filenames in os.walk(hub, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                path = Path(dirpath, name)
                out.append((path.relative_to(hub).as_posix(), path.stat().st_size))
    return out


def push_hub(hub_dir: str | os.PathLike, repo_id: str, private: bool = False, dry_run: bool = False,
             token: str | None = None) -> dict[str, Any]:
    """Create the dataset repo and upload the folder (resumable); ``dry_run`` only lists what would go."""
    import huggingface_hub

    hub = Path(hub_dir)
    if not (hub / "README.md").is_file():
        raise HubError(f"{hub} has no README.md: build it first with `harmonyset build`")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise HubError(f"bad repo id {repo_id!r}: expected ORG/NAME")
    files = upload_files(hub)
    token = token or huggingface_hub.get_token()
    plan = {"repo_id": repo_id, "private": private, "files": len(files), "bytes": sum(n for _, n in files),
            "token": "found" if token else "missing", "listing": files}
    if dry_run:
        return plan
    if not token:
        raise HubError("no Hugging Face token: run `hf auth login` or set HF_TOKEN")
    api = huggingface_hub.HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        large = getattr(api, "upload_large_folder", None)  # resumable, in huggingface_hub versions that have it
        if large is not None:
            large(repo_id=repo_id, folder_path=str(hub), repo_type="dataset", private=private,
                  ignore_patterns=[".*", "**/.*"])
        else:  # huggingface_hub 2.x: content-addressed (Xet) uploads, so a rerun sends only what is missing
            api.upload_folder(repo_id=repo_id, folder_path=str(hub), repo_type="dataset",
                              commit_message="harmonyset push", ignore_patterns=[".*", "**/.*"])
    except Exception as err:  # noqa: BLE001 - any failure is reported, with the token masked
        raise HubError(redact(f"push to {repo_id} failed: {type(err).__name__}: {err}", token)) from None
    return {**plan, "url": f"https://huggingface.co/datasets/{repo_id}"}


def export_videollama2(hub_dir: str | os.PathLike, config: str, out: str | os.PathLike) -> int:
    """Write a config as VideoLLaMA2's training JSON (id, video relative to the Hub folder, conversations)."""
    if config not in ("instruct", "oe"):
        raise HubError(f"VideoLLaMA2 export needs an annotated config (instruct or oe), not {config!r}")
    table = config_table(hub_dir, config)
    video_col = "file_name" if "file_name" in table.column_names else "video"
    items = []
    for row in table.select([video_col, "id", "instruction", "annotation"]).to_pylist():
        prompt = instruction_for(row)  # an item without an instruction gets a paper template, drawn by its id
        items.append({"id": row["id"], "video": row[video_col],
                      "conversations": [{"from": "human", "value": prompt},
                                        {"from": "gpt", "value": row["annotation"]}]})
    atomic_write_json(out, items, indent=None)
    return len(items)
