"""Training batches for Qwen2.5-Omni: instruct rows -> clips -> processor per sample (real fps) -> labels -> padding.

The label mask is computed on the EXPANDED ids (by ``models.omni_processing.build_inputs``), after
the processor has replaced the video/audio placeholders by hundreds of ``<|VIDEO|>``/``<|AUDIO|>``
tokens: everything up to and including the assistant header (``<|im_start|>assistant\\n``) is
-100, the answer and its ``<|im_end|>`` are supervised, the trailing newline and the padding are -100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import HarmonySetError
from ..media import load_clip
from ..models.omni_processing import QWEN_OMNI_SYSTEM_PROMPT, build_inputs, make_conversation
from ..prompting import oe_prompt


class InstructClips(torch.utils.data.Dataset):
    """Rows of the ``instruct`` config with their clip (frames + 16 kHz audio); clips optionally cached in memory."""

    def __init__(self, rows, num_frames: int = 16, sample_rate: int = 16000, seek: str = "exact",
                 cache: bool = False):
        from datasets import Video

        # Undecoded video: {"path", "bytes"}; harmonyset_hf.media decodes with the frame sampling the paper uses.
        self.rows = rows.cast_column("video", Video(decode=False)) if "video" in rows.column_names else rows
        self.num_frames, self.sample_rate, self.seek = num_frames, sample_rate, seek
        self._cache: dict[int, Any] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.rows)

    def clip(self, index: int):
        """The decoded clip of row ``index`` (from the cache when enabled)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        row = self.rows[index]
        video = row["video"]
        source = (video.get("path") or video.get("bytes")) if isinstance(video, Mapping) else video
        try:
            clip = load_clip(source, num_frames=self.num_frames, sample_rate=self.sample_rate, seek=self.seek)
        except HarmonySetError as err:  # a training batch cannot just drop an item: stop, naming it
            raise HarmonySetError(f"training item {row.get('id')!r}: {err}") from err
        if self._cache is not None:
            self._cache[index] = clip
        return clip

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        return {"id": row["id"], "clip": self.clip(index), "prompt": oe_prompt(row), "answer": row["annotation"]}


@dataclass
class SFTCollator:
    """InstructClips samples -> one right-padded, label-masked Qwen2.5-Omni batch (the processor runs per sample)."""

    processor: Any
    system_prompt: str | None = None  # None: Qwen2.5-Omni's own system prompt, as the adapter uses at inference

    def __call__(self, samples: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Model inputs + ``labels`` (-100 but for the answers and their ``<|im_end|>``, in the expanded ids)."""
        system = self.system_prompt or QWEN_OMNI_SYSTEM_PROMPT
        conversations = [make_conversation(s["prompt"], answer=s["answer"], system=system) for s in samples]
        try:
            batch = build_inputs(self.processor, [s["clip"] for s in samples], conversations,
                                 add_generation_prompt=False, labels=True, padding_side="right")
        except HarmonySetError as err:
            raise HarmonySetError(f"items {[s['id'] for s in samples]}: {err}") from err
        return dict(batch)
