"""Reference raters for the swap-pair task (`harmonyset derive swap`), no GPU, no trained weights.

- ``baseline-frames``: rates the music fit from the frames alone (their mean brightness mapped
  to 1-10) and never decodes the audio. It stands for any model that does not listen: the two
  versions of an item have bit-identical frames, so it always ties, and scores exactly 50 %.
- ``baseline-sync``: rates from the signal-level sync analysis of :mod:`harmonyset_hf.sync`
  (how often visual cuts land on musical changes, 0-1, mapped to 1-10; 5 when no cut is
  found). It listens, so it can tell a video's own music from another's when the edit follows the
  music.
"""

from __future__ import annotations

from typing import Any

from ..media import load_clip
from ..sync import analyze
from .base import ModelError


class _PairRater:
    """Common options: ``seed`` (unused: both are deterministic) and ``frames``."""

    needs_media = True
    configs: tuple[str, ...] = ("pair",)

    def __init__(self, seed: int = 0, frames: int | None = 16):
        self.seed, self.frames = int(seed), int(frames or 16)

    def _video(self, row: dict) -> Any:
        if row.get("video") is None:
            raise ModelError(f"{self.name}: row {row.get('id')!r} has no 'video'")
        return row["video"]

    def generate(self, batch: list[dict], prompts: list[str]) -> list[str]:
        """One rating (an integer 1-10 as text) per row."""
        return [str(self.rate(self._video(row))) for row in batch]


class FramesOnlyRater(_PairRater):
    """A rating that depends on the frames only (it never decodes the audio)."""

    name = "baseline-frames"

    def rate(self, video: Any) -> int:
        """1-10 from the mean brightness of the sampled frames."""
        clip = load_clip(video, num_frames=self.frames, audio_mode="none")
        return 1 + int(round(9 * float(clip.frames.mean()) / 255))


class SyncRater(_PairRater):
    """A rating from how well visual cuts and musical changes line up (the signal-level sync score)."""

    name = "baseline-sync"

    def rate(self, video: Any) -> int:
        """1 + 9 x the sync score (mean credit of the detected cuts); 5 when the video has no cut."""
        score = analyze(video).score
        return 5 if score is None else 1 + int(round(9 * score))
