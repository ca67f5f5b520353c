"""A Hub folder's layout: where each config's parquet file lives, its README ``configs:`` block, reading it back.

Shared by the build (:mod:`harmonyset_hf.data.hub`) and the card (:mod:`harmonyset_hf.data.card`), which
describes a folder the build wrote; see :mod:`harmonyset_hf.data.hub` for why the layout is what it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .. import schema
from ..errors import HarmonySetError

VIDEO_SPLIT = {"instruct": "train", "oe": "test", "mc": "test"}


class HubError(HarmonySetError):
    """A Hub folder that cannot be built, read or pushed."""


def media_file(config: str) -> str:
    """The metadata parquet of a config in a Hub folder with media."""
    return f"{config}.parquet"


def annotations_file(config: str) -> str:
    """The parquet file of a config in an annotations-only Hub folder."""
    return f"data/{config}/{schema.SPLITS[config]}.parquet"


def configs_yaml(hub_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The README ``configs:`` entries for the parquet files present in a Hub folder."""
    hub = Path(hub_dir)
    entries = []
    for config in schema.CONFIGS:
        split = schema.SPLITS[config]
        if (hub / media_file(config)).is_file():
            n_videos = sum(1 for _ in (hub / "videos" / VIDEO_SPLIT[config]).glob("*/*"))
            entries.append((n_videos < 2, {
                "config_name": config,
                "data_files": [{"split": split, "path": [media_file(config), f"videos/{VIDEO_SPLIT[config]}/**"]}],
                "metadata_filenames": [media_file(config)],
            }))
        elif (hub / annotations_file(config)).is_file():
            entries.append((False, {"config_name": config,
                                    "data_files": [{"split": split, "path": annotations_file(config)}]}))
    # datasets infers the builder of every config from the first one's files (most common extension, ties
    # to parquet): put one with at least two videos first; in a tiny build with no such split, let the first
    # config list every video so that mp4 still outnumbers its one parquet file.
    ordered = sorted(entries, key=lambda e: e[0])
    if ordered and ordered[0][0] and "metadata_filenames" in ordered[0][1]:
        ordered[0][1]["data_files"][0]["path"][1] = "videos/**"
    return [entry for _, entry in ordered]


def read_configs(hub_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``configs:`` entries of a Hub folder's README (empty when there is none)."""
    import yaml

    readme = Path(hub_dir) / "README.md"
    if not readme.is_file():
        return []
    text = readme.read_text(encoding="utf-8")
    m = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    return (yaml.safe_load(m.group(1)) or {}).get("configs", []) if m else []


def config_table(hub_dir: str | os.PathLike, config: str):
    """The rows of a config as a pyarrow Table, read from the Hub folder's parquet (no video decoding)."""
    import pyarrow.parquet as pq

    hub = Path(hub_dir)
    for candidate in (media_file(config), annotations_file(config)):
        if (hub / candidate).is_file():
            return pq.read_table(hub / candidate)
    raise HubError(f"{hub} has no parquet file for config {config!r} (expected {media_file(config)} "
                   f"or {annotations_file(config)}); build it with `harmonyset build`")
