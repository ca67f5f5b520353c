"""A torch Dataset of decoded clips, for DataLoader workers: in order, bounded memory, bad items skipped and counted.

    ds = ClipDataset(load_dataset(hub, "oe")["test"], num_frames=16, max_side=224, on_error="skip")
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_clips)
    for batch in loader:  # batch["frames"]: uint8 [B, T, H, W, 3] (a list when sizes differ)
        skipped += len(batch["skipped"])

Items are rows (dicts with a `video` value and an `id`, e.g. a `datasets.Dataset`) or plain sources
(paths, bytes, `{"path", "bytes"}`). A map-style dataset keeps the DataLoader's order whatever the
number of workers, and memory is bounded by `batch_size * prefetch_factor * num_workers` clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import AUDIO_MODES, DEFAULT_TIMEOUT, MediaError, load_clip

ON_ERROR = ("raise", "skip")


class ClipDataset(torch.utils.data.Dataset):
    """Decoded clips (frames + mono audio) of rows or sources; `on_error="skip"` turns bad files into skip records."""

    def __init__(self, items: Sequence[Any], num_frames: int = 16, sample_rate: int = 16000, backend: str = "pyav",
                 seek: str = "exact", *, audio_mode: str = "full", size: tuple[int, int] | None = None,
                 max_side: int | None = None, timeout: float = DEFAULT_TIMEOUT, on_error: str = "raise",
                 video_key: str = "video", id_key: str = "id"):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
        if audio_mode not in AUDIO_MODES:
            raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
        self.items = _undecoded(items, video_key)
        self.video_key, self.id_key, self.on_error = video_key, id_key, on_error
        self.options = dict(num_frames=num_frames, sample_rate=sample_rate, backend=backend, seek=seek,
                            audio_mode=audio_mode, size=size, max_side=max_side, timeout=timeout)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        if isinstance(item, dict) and self.video_key in item:
            source, item_id = item[self.video_key], item.get(self.id_key, index)
        else:
            source, item_id = item, index
        try:
            clip = load_clip(source, **self.options)
        except MediaError as err:
            if self.on_error == "raise":
                raise
            return {"index": index, "id": item_id, "error": str(err), "error_type": type(err).__name__}
        return {
            "index": index, "id": item_id,
            "frames": torch.from_numpy(clip.frames),
            "frame_indices": torch.from_numpy(clip.frame_indices),
            "frame_times": torch.from_numpy(clip.frame_times),
            "audio": None if clip.audio is None else torch.from_numpy(clip.audio),
            "has_audio": clip.has_audio, "sample_rate": clip.sample_rate, "fps": clip.fps,
            "duration": clip.duration, "warnings": clip.warnings,
        }


def _undecoded(items: Any, video_key: str) -> Any:
    """A datasets.Dataset with a decoding Video column is switched to {"path", "bytes"} (no torchcodec per row)."""
    features = getattr(items, "features", None)
    if features is not None and video_key in features and getattr(features[video_key], "decode", False):
        from datasets import Video

        return items.cast_column(video_key, Video(decode=False))
    return items


def collate_clips(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack clips into a batch; audio zero-padded (+ `audio_lengths`); skip records listed under `skipped`."""
    good = [b for b in batch if "error" not in b]
    out: dict[str, Any] = {
        "skipped": [{k: b[k] for k in ("index", "id", "error", "error_type")} for b in batch if "error" in b],
        "index": torch.tensor([b["index"] for b in good], dtype=torch.long),
        "id": [b["id"] for b in good],
        "has_audio": torch.tensor([b["has_audio"] for b in good], dtype=torch.bool),
        "fps": torch.tensor([b["fps"] for b in good], dtype=torch.float64),
        "duration": torch.tensor([b["duration"] for b in good], dtype=torch.float64),
        "warnings": [b["warnings"] for b in good],
    }
    for key in ("frames", "frame_indices", "frame_times"):
        values = [b[key] for b in good]
        same = len({tuple(v.shape) for v in values}) <= 1
        out[key] = torch.stack(values) if values and same else values
    lengths = [0 if b["audio"] is None else b["audio"].shape[0] for b in good]
    audio = np.zeros((len(good), max(lengths, default=0)), np.float32)
    for i, b in enumerate(good):
        if b["audio"] is not None:
            audio[i, : lengths[i]] = b["audio"].numpy()
    out["audio"] = torch.from_numpy(audio)
    out["audio_lengths"] = torch.tensor(lengths, dtype=torch.long)
    out["sample_rate"] = good[0]["sample_rate"] if good else None
    return out
