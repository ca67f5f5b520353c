"""Videos of an annotations-only Hub folder, found in a folder the user downloaded into.

``--videos DIR`` (predict, eval sync), the ``video_dir`` key (lm-eval's ``--metadata``, the training
config) or ``$HARMONYSET_VIDEO_DIR`` name the folder; each row's ``video`` file name is looked up
there (by file name anywhere under it, then by the item's id, as `harmonyset videos download`
names its files), and rows whose video is not there are left out and counted, never a crash mid-run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .hub import safe_name
from .release_fields import VideoResolver

log = logging.getLogger(__name__)

VIDEO_DIR_ENV = "HARMONYSET_VIDEO_DIR"


def video_dir(value: str | os.PathLike | None = None) -> Path | None:
    """The folder of downloaded videos: ``value`` (--videos / a ``video_dir`` key), else $HARMONYSET_VIDEO_DIR."""
    value = value or os.environ.get(VIDEO_DIR_ENV, "").strip() or None
    if value is None:
        return None
    if not Path(value).is_dir():
        raise ConfigError(f"videos folder {value} does not exist (--videos / video_dir / ${VIDEO_DIR_ENV})")
    return Path(value)


class VideoFolder:
    """Finds an item's video in a downloaded folder: by the release's file name, else by its id."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._resolver = VideoResolver(root)

    def find(self, ref: str | None, item_id: str) -> Path | None:
        """The file for a row (its ``video`` file name and ``id``), or None when it is not there."""
        for key in (ref, safe_name(str(item_id)), str(item_id)):
            if not key:
                continue
            try:
                found = self._resolver.resolve(VideoResolver.check_ref(key))
            except Exception:  # noqa: BLE001 - a ref that escapes the folder is simply not found here
                found = None
            if found is not None:
                return found
        return None


def with_video_paths(dataset: Any, folder: str | os.PathLike) -> tuple[Any, list[str]]:
    """A `datasets` split whose ``video`` file names become the paths of the files in ``folder``; rows without
    one are dropped, and their ids returned."""
    finder = VideoFolder(folder)
    paths = [finder.find(ref, str(ident)) for ref, ident in zip(dataset["video"], dataset["id"])]
    missing = list(dict.fromkeys(str(i) for i, p in zip(dataset["id"], paths) if p is None))
    keep = [i for i, p in enumerate(paths) if p is not None]
    dataset = dataset.select(keep).remove_columns("video")
    return dataset.add_column("video", [str(paths[i].resolve()) for i in keep]), missing


def with_videos(dataset: Any, video_dir_value: str | os.PathLike | None = None) -> Any:
    """``dataset`` itself when its ``video`` column holds videos; for an annotations-only split, the rows whose
    file is in the download folder (``video_dir_value``, else ``$HARMONYSET_VIDEO_DIR``) with ``video`` set to its
    path, the others left out with a warning that counts and names them."""
    import datasets

    if "video" not in dataset.column_names or isinstance(dataset.features["video"], datasets.Video):
        return dataset
    folder = video_dir(video_dir_value)
    if folder is None:  # file names, not videos: fail once, before any item
        raise ConfigError(f"the data has no videos (built with --annotations-only) and they are needed here: pass "
                          f"--videos DIR (the video_dir key, or ${VIDEO_DIR_ENV}) with the folder of `harmonyset "
                          "videos download`, or rebuild it with `harmonyset build --videos DIR`")
    dataset, missing = with_video_paths(dataset, folder)
    if missing:
        log.warning("%s", missing_note(missing, folder))
    return dataset


def missing_note(missing: list[str], folder: str | os.PathLike) -> str:
    """One line: how many items were skipped for a missing video, and which."""
    shown = ", ".join(missing[:10]) + (f" ... (+{len(missing) - 10} more)" if len(missing) > 10 else "")
    return f"{len(missing)} items skipped: their video is not in {folder} ({shown})"
