"""Clips for the rows of a batch, with a small cache: HarmonySet-MC asks four questions per video."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Any

from ..media import load_clip
from .base import ModelError

log = logging.getLogger(__name__)


def source_key(source: Any) -> str:
    """A stable key for a row's ``video`` value (its path, or the sha256 of its bytes)."""
    if isinstance(source, dict):
        if source.get("path"):
            return f"path:{source['path']}"
        if source.get("bytes") is not None:
            return "sha256:" + hashlib.sha256(source["bytes"]).hexdigest()
    if isinstance(source, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(source).hexdigest()
    return f"obj:{source!s}"


class ClipLoader:
    """``load_clip`` for dataset rows, remembering the last ``capacity`` clips."""

    def __init__(self, frames: int = 16, sample_rate: int = 16000, backend: str = "pyav", capacity: int = 8):
        self.frames, self.sample_rate, self.backend, self.capacity = frames, sample_rate, backend, capacity
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, rows: list[dict]) -> list[Any]:
        """One clip per row (frames at segment midpoints, full mono audio); warnings are logged."""
        clips = []
        for row in rows:
            source = row.get("video")
            if source is None:
                raise ModelError(f"row {row.get('id')!r} has no 'video'")
            key = source_key(source)
            clip = self._cache.get(key)
            if clip is None:
                clip = load_clip(source, num_frames=self.frames, sample_rate=self.sample_rate, backend=self.backend)
                for warning in getattr(clip, "warnings", None) or []:
                    log.warning("%s: %s", row.get("id"), warning)
                if not getattr(clip, "has_audio", True):
                    log.warning("%s: the video has no audio track", row.get("id"))
                self._cache[key] = clip
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            clips.append(clip)
        return clips
