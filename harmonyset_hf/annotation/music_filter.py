"""The music-presence screen of the crawl: AudioSet tagging, kept when ``Music`` is in the top 2.

The paper tagged every crawled video with PANNs (527 AudioSet classes), kept it when ``Music``
was among its two highest labels (59,771 -> 49,610 videos), and stored the top-10 labels as the
metadata's ``audio_labels``. Here any ``transformers`` audio-classification model with AudioSet
labels does the tagging (default: the AST checkpoint ``MIT/ast-finetuned-audioset-10-10-0.4593``).
The audio comes from :func:`harmonyset_hf.media.load_clip` at 16 kHz mono; a clip longer than the
model's window (AST: 10.24 s) is cut into windows whose sigmoid scores are averaged, so the whole
soundtrack counts (PANNs also pooled over the whole clip). The 527 AudioSet display names ship as
``audioset_labels.csv`` (index, mid, display_name), e.g. to give a fine-tuned model its labels.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..data.release_fields import VIDEO_EXTENSIONS
from ..errors import ConfigError
from ..io import append_jsonl, read_jsonl
from ..media import load_clip

log = logging.getLogger(__name__)

DEFAULT_MODEL = "MIT/ast-finetuned-audioset-10-10-0.4593"
MUSIC_LABEL = "Music"
SAMPLE_RATE = 16000


@functools.cache
def audioset_labels() -> tuple[str, ...]:
    """The 527 AudioSet display names, in the index order of AudioSet-trained models."""
    text = resources.files("harmonyset_hf").joinpath("annotation/audioset_labels.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return tuple(r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"])))


class MusicFilter:
    """AudioSet tagging with a transformers audio classifier; ``Music`` in the top ``keep_rank`` keeps a video."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", top_k: int = 10, keep_rank: int = 2,
                 music_label: str = MUSIC_LABEL, max_windows: int = 8) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        self.model_name, self.device = model, device
        self.top_k, self.keep_rank, self.music_label, self.max_windows = top_k, keep_rank, music_label, max_windows
        try:
            with warnings.catch_warnings():  # AST's 128 mel bins over 257 FFT bins leave empty filters (harmless)
                warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
                self.extractor = AutoFeatureExtractor.from_pretrained(model)
            self.model = AutoModelForAudioClassification.from_pretrained(model).to(device).eval()
        except OSError as err:  # not found / offline: say which model, without a traceback
            raise ConfigError(f"cannot load the audio classifier {model!r}: {err}") from None
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]
        if music_label not in self.labels:
            raise ConfigError(f"model {model!r} has no {music_label!r} label (it has {len(self.labels)} labels, e.g. "
                              f"{', '.join(self.labels[:5])}); the screen needs an AudioSet-labelled model")
        rate = getattr(self.extractor, "sampling_rate", SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise ConfigError(f"model {model!r} expects {rate} Hz audio; the screen feeds {SAMPLE_RATE} Hz")
        frames = getattr(self.extractor, "max_length", 1024)  # AST: 1024 frames of 10 ms
        self.window = int(frames * 0.01 * SAMPLE_RATE) if frames else 10 * SAMPLE_RATE

    def scores(self, audio: Any) -> list[float]:
        """Per-label scores (sigmoid, averaged over windows) of mono 16 kHz audio."""
        import numpy as np
        import torch

        wave = np.asarray(audio, dtype=np.float32)
        if wave.size == 0:
            wave = np.zeros(SAMPLE_RATE, dtype=np.float32)
        starts = list(range(0, max(1, len(wave) - self.window // 4), self.window))[: self.max_windows] or [0]
        chunks = [wave[s:s + self.window] for s in starts]
        inputs = self.extractor(chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.no_grad():
            logits = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).logits
        return torch.sigmoid(logits.float()).mean(0).cpu().tolist()

    def screen_audio(self, audio: Any) -> dict[str, Any]:
        """Top-k labels, their scores, the rank of Music and the keep decision for one soundtrack."""
        scores = self.scores(audio)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        rank = order.index(self.labels.index(self.music_label)) + 1
        top = order[: self.top_k]
        return {"audio_labels": [self.labels[i] for i in top], "audio_scores": [round(scores[i], 6) for i in top],
                "music_rank": rank, "music_score": round(scores[self.labels.index(self.music_label)], 6),
                "kept": rank <= self.keep_rank}

    def screen(self, videos: Sequence[tuple[str, str]], out_path: str | os.PathLike,
               progress: bool = True) -> dict[str, Any]:
        """Screen ``(id, path)`` pairs into ``out_path`` (JSON Lines, appended; ids already there are skipped)."""
        from tqdm.auto import tqdm

        done = {r["id"] for r in read_jsonl(out_path)} if Path(out_path).exists() else set()
        pending = [(i, p) for i, p in videos if i not in done]
        counts = {"videos": len(videos), "already_done": len(videos) - len(pending), "kept": 0, "dropped": 0,
                  "failed": 0}
        for item_id, path in tqdm(pending, desc="music filter", unit="video", disable=not progress):
            row: dict[str, Any] = {"id": item_id, "video": os.path.basename(path)}
            try:
                clip = load_clip(path, num_frames=1, sample_rate=SAMPLE_RATE, max_side=64)
                if not clip.has_audio:
                    raise ValueError("the video has no audio track")
                row.update(self.screen_audio(clip.audio))
                counts["kept" if row["kept"] else "dropped"] += 1
            except Exception as err:  # a broken file is reported, the screen goes on
                row.update({"kept": False, "error": f"{type(err).__name__}: {err}"})
                counts["failed"] += 1
                log.warning("%s: not screened: %s", item_id, row["error"])
            append_jsonl(out_path, [row])
        counts.update({"model": self.model_name, "keep_rank": self.keep_rank, "top_k": self.top_k})
        return counts


def list_videos(videos_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """(id, path) of every video under a folder (id = file name without extension), sorted."""
    out = []
    for dirpath, _, files in os.walk(videos_dir):
        for name in files:
            if name.lower().endswith(VIDEO_EXTENSIONS):
                out.append((os.path.splitext(name)[0], os.path.join(dirpath, name)))
    return sorted(out)
