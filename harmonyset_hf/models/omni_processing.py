"""Qwen2.5-Omni inputs from a clip (frames + its own music) without torchvision.

Three things the stock processor gets wrong for HarmonySet, and what this module does instead:

- the stock video processor needs torchvision: :class:`OmniVideoProcessor` is the Qwen2-VL video
  processor in numpy/PIL (same ``smart_resize`` rule, CLIP normalisation, temporal patch 2 and the
  exact ``pixel_values_videos`` / ``video_grid_thw`` patch layout);
- the processor takes ONE ``fps`` per call and silently assumes 2 fps without it, so audio and
  video tokens fall out of step: :func:`build_inputs` encodes each clip with its own sampling fps
  (frames / duration) and collates the encodings itself;
- the Whisper feature extractor pads/cuts audio to 30 s: each clip's audio is passed with
  ``max_length`` = its own length and no truncation (HarmonySet clips run up to 63 s).

The model must then be called with ``use_audio_in_video=True`` (:data:`MODEL_KWARGS`), in
``forward`` as in ``generate``; nothing fails without it, the positions are just wrong.

With the paper's sparse sampling (16 frames over ~31 s: one 2-frame grid per ~3.9 s) the rotary
positions stay time-aligned (grid k at k x seconds-per-grid x 25, audio at 25 per second), but
transformers' chunking puts one grid per 2 s audio chunk in the *sequence order* (its chunk index
advances by one per token, not per 2 s), so later grids precede the audio they belong to by more
than one chunk. Processor and model share that rule, so the layout is consistent; it only differs
from the 2 fps sampling Qwen2.5-Omni was trained with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, Qwen2_5OmniProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from transformers.video_processing_utils import VideoProcessorMixin

from ..io import atomic_write_json
from .base import ModelError, load_problem

AUDIO_SAMPLE_RATE = 16000
IGNORE_INDEX = -100
# Qwen2.5-Omni's own system prompt (model card); the model was tuned with it for audio-visual input.
QWEN_OMNI_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)
# What every forward/generate call of the thinker needs with these inputs.
MODEL_KWARGS = {"use_audio_in_video": True}
# Qwen2.5-Omni's processor defaults for video frames (pixels per frame).
DEFAULT_MIN_PIXELS = 128 * 28 * 28
DEFAULT_MAX_PIXELS = 768 * 28 * 28
STOCK_PROCESSOR = "Qwen2_5OmniProcessor"


class ClipLike(Protocol):
    """What :func:`build_inputs` reads from a clip (``harmonyset_hf.media.Clip`` has it)."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    duration: float
    audio: np.ndarray | None
    sample_rate: int


class OmniVideoProcessor(VideoProcessorMixin):
    """Qwen2-VL's video processor in numpy/PIL: frames -> ``pixel_values_videos`` + ``video_grid_thw``."""

    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def __init__(self, size: Mapping[str, int] | None = None, min_pixels: int | None = None,
                 max_pixels: int | None = None, patch_size: int = 14, temporal_patch_size: int = 2,
                 merge_size: int = 2, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                 image_std: Sequence[float] = OPENAI_CLIP_STD, **kwargs: Any):
        kwargs.pop("video_processor_type", None)
        super().__init__(**kwargs)
        size = dict(size or {})
        self.size = {"shortest_edge": int(min_pixels or size.get("shortest_edge") or DEFAULT_MIN_PIXELS),
                     "longest_edge": int(max_pixels or size.get("longest_edge") or DEFAULT_MAX_PIXELS)}
        self.patch_size = int(patch_size)
        self.temporal_patch_size = int(temporal_patch_size)
        self.merge_size = int(merge_size)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]

    def to_dict(self) -> dict[str, Any]:
        """The config, typed as the stock ``Qwen2VLVideoProcessor`` it is equivalent to (same keys)."""
        config = super().to_dict()
        config["video_processor_type"] = "Qwen2VLVideoProcessor"
        return config

    def __call__(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """Same as :meth:`preprocess`."""
        return self.preprocess(videos, **kwargs)

    def resized_shape(self, height: int, width: int, size: Mapping[str, int] | None = None) -> tuple[int, int]:
        """(height, width) a frame is resized to: multiples of patch*merge within the pixel budget."""
        size = size or self.size
        return smart_resize(height, width, factor=self.patch_size * self.merge_size,
                            min_pixels=int(size["shortest_edge"]), max_pixels=int(size["longest_edge"]))

    def preprocess(self, videos: Any, size: Mapping[str, int] | None = None, return_tensors: str | None = None,
                   **unused: Any) -> BatchFeature:
        """Resize, normalise and patchify a list of videos (each uint8 ``[T, H, W, 3]``) like Qwen2-VL."""
        size = dict(size) if size else self.size
        ps, tps, ms = self.patch_size, self.temporal_patch_size, self.merge_size
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        patches_all, grids = [], []
        for video in _as_video_list(videos):
            height, width = video.shape[1:3]
            new_h, new_w = self.resized_shape(height, width, size)
            if (new_h, new_w) != (height, width):
                video = np.stack([np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.BICUBIC))
                                  for f in video])
            x = (video.astype(np.float32) / 255.0 - mean) / std  # [T, H, W, C]
            x = x.transpose(0, 3, 1, 2)  # [T, C, H, W]
            if pad := -x.shape[0] % tps:  # repeat the last frame, as the stock processor does
                x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)
            grid_t, grid_h, grid_w = x.shape[0] // tps, new_h // ps, new_w // ps
            x = x.reshape(grid_t, tps, 3, grid_h // ms, ms, ps, grid_w // ms, ms, ps)
            # -> (t, h/m, w/m, m, m, C, tps, p, p): the permute(0,1,4,7,5,8,3,2,6,9) of Qwen2VLVideoProcessor
            x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
            patches_all.append(x.reshape(grid_t * grid_h * grid_w, 3 * tps * ps * ps))
            grids.append([grid_t, grid_h, grid_w])
        data = {"pixel_values_videos": np.concatenate(patches_all, axis=0),
                "video_grid_thw": np.asarray(grids, dtype=np.int64)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def get_num_of_video_patches(self, num_frames: int, height: int, width: int,
                                 videos_kwargs: Mapping | None = None) -> int:
        """Number of vision patches of a video of this size (before the 2x2 merge)."""
        size = (videos_kwargs or {}).get("size") or self.size
        new_h, new_w = self.resized_shape(height, width, size)
        grid_t = -(-num_frames // self.temporal_patch_size)
        return grid_t * (new_h // self.patch_size) * (new_w // self.patch_size)


def _as_video_list(videos: Any) -> list[np.ndarray]:
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
        videos = [videos]
    out = []
    for video in videos:
        arr = video.numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        if arr.ndim != 4:
            raise ModelError(f"a video must be a [T, H, W, 3] array of frames, got shape {arr.shape}")
        if arr.shape[-1] != 3 and arr.shape[1] == 3:  # channels-first input
            arr = arr.transpose(0, 2, 3, 1)
        if arr.dtype != np.uint8:
            arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(arr))
    return out


# ------------------------------------------------------------------------------------------------
# The processor
# ------------------------------------------------------------------------------------------------
class OmniProcessor(Qwen2_5OmniProcessor):
    """``Qwen2_5OmniProcessor`` that accepts :class:`OmniVideoProcessor` when torchvision is absent.

    Without torchvision, transformers' processor type check looks the video processor's base class
    up in a dummy mapping and fails; everything else is the stock processor.
    """

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
        """The stock check, except that any ``VideoProcessorMixin`` is a valid video processor."""
        if argument_name == "video_processor" and isinstance(argument, VideoProcessorMixin):
            return type(argument)
        return super().check_argument_for_proper_class(argument_name, argument)

    def to_dict(self) -> dict[str, Any]:
        """The config, typed as the stock processor (so that ``Qwen2_5OmniProcessor.from_pretrained`` reads it)."""
        config = super().to_dict()
        config["processor_class"] = STOCK_PROCESSOR
        return config

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        """The stock ``save_pretrained``, with ``processor_class`` of the tokenizer config set to the stock class."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        path = Path(save_directory) / "tokenizer_config.json"
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            if config.get("processor_class") == type(self).__name__:
                config["processor_class"] = STOCK_PROCESSOR
                atomic_write_json(path, config)
        return result


def build_processor(tokenizer: Any, feature_extractor: Any, video_processor: OmniVideoProcessor,
                    image_processor: Any | None = None, chat_template: str | None = None) -> OmniProcessor:
    """A Qwen2.5-Omni processor from its parts (with our torchvision-free video processor)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if image_processor is None:
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=video_processor.patch_size, merge_size=video_processor.merge_size,
            temporal_patch_size=video_processor.temporal_patch_size)
    chat_template = chat_template or getattr(tokenizer, "chat_template", None)
    return OmniProcessor(image_processor=image_processor, video_processor=video_processor,
                         feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=chat_template)


def _optional_file(name_or_path: str, filename: str, **hub_kwargs: Any) -> str | None:
    from transformers.utils import cached_file

    return cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False, **hub_kwargs)


def load_processor(name_or_path: str, min_pixels: int | None = None, max_pixels: int | None = None,
                   **hub_kwargs: Any) -> OmniProcessor:
    """The processor of a Qwen2.5-Omni checkpoint (local dir or Hub id), with :class:`OmniVideoProcessor`.

    ``Qwen2_5OmniProcessor.from_pretrained`` would build the torchvision video processor; this
    reads the same files (tokenizer, ``preprocessor_config.json``, ``video_preprocessor_config.json``
    when there is one, the chat template) and swaps it. ``min_pixels``/``max_pixels`` override the
    per-frame pixel budget.
    """
    from transformers import AutoTokenizer, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
        feature_extractor = WhisperFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(name_or_path, **hub_kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the Qwen2.5-Omni processor from {name_or_path!r}: "
                         f"{load_problem(name_or_path, err)}") from err
    video_config: dict[str, Any] = {}
    if path := _optional_file(name_or_path, "processor_config.json", **hub_kwargs):  # transformers 5 layout
        video_config = json.loads(Path(path).read_text(encoding="utf-8")).get("video_processor") or {}
    if not video_config and (path := _optional_file(name_or_path, "video_preprocessor_config.json", **hub_kwargs)):
        video_config = json.loads(Path(path).read_text(encoding="utf-8"))
    if not video_config:  # no video config (Qwen/Qwen2.5-Omni-7B): the processor's defaults, image patching
        video_config = {"patch_size": image_processor.patch_size, "merge_size": image_processor.merge_size,
                        "temporal_patch_size": image_processor.temporal_patch_size,
                        "image_mean": image_processor.image_mean, "image_std": image_processor.image_std}
    keep = {"size", "min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size",
            "image_mean", "image_std"}
    video_processor = OmniVideoProcessor(**{k: v for k, v in video_config.items() if k in keep})
    if min_pixels:
        video_processor.size["shortest_edge"] = int(min_pixels)
    if max_pixels:
        video_processor.size["longest_edge"] = int(max_pixels)
    if video_processor.size["shortest_edge"] > video_processor.size["longest_edge"]:
        video_processor.size["shortest_edge"] = video_processor.size["longest_edge"]
    chat_template = getattr(tokenizer, "chat_template", None)
    for name in ("chat_template.jinja", "chat_template.json"):
        if chat_template or not (path := _optional_file(name_or_path, name, **hub_kwargs)):
            continue
        text = Path(path).read_text(encoding="utf-8")
        chat_template = json.loads(text)["chat_template"] if name.endswith(".json") else text
    if not chat_template:
        raise ModelError(f"{name_or_path!r} has no chat template (tokenizer_config.json or chat_template.*)")
    return build_processor(tokenizer, feature_extractor, video_processor, image_processor, chat_template)


# ------------------------------------------------------------------------------------------------
# Conversations
# ------------------------------------------------------------------------------------------------
def make_conversation(prompt: str, answer: str | None = None,
                      system: str | None = QWEN_OMNI_SYSTEM_PROMPT) -> list[dict]:
    """Chat messages for one clip: [system], user = (the video, with its audio) + prompt, [assistant answer]."""
    prompt = prompt.strip()
    if prompt.lower().startswith("<video>"):  # VideoLLaMA2-style placeholder: the template places the video
        prompt = prompt[len("<video>"):].lstrip()
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]})
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def chat_text(processor: Any, conversation: list[dict], add_generation_prompt: bool) -> str:
    """The chat-templated text of a conversation (with the answer if it has one; the video unexpanded)."""
    return processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)


# ------------------------------------------------------------------------------------------------
# Clips -> model inputs
# ------------------------------------------------------------------------------------------------
def sampling_fps(clip: Any) -> float:
    """Frames per second of the SAMPLED frames (len(frames) / duration), what the processor's ``fps`` means."""
    n = len(clip.frames)
    duration = float(getattr(clip, "duration", 0) or 0)
    if duration > 0:
        return n / duration
    times = getattr(clip, "frame_times", None)
    times = np.asarray([] if times is None else times, dtype=np.float64)
    if times.size >= 2 and np.all(np.diff(times) > 0):
        return float(1.0 / np.mean(np.diff(times)))
    raise ModelError(f"cannot tell the sampling rate of a clip of {n} frames: no duration and no frame times")


def clip_audio(clip: Any, sample_rate: int = AUDIO_SAMPLE_RATE) -> tuple[np.ndarray, str | None]:
    """The clip's mono audio at ``sample_rate`` (float32), or silence of its duration with a warning."""
    audio = getattr(clip, "audio", None)
    if audio is None or len(audio) == 0:
        seconds = max(float(getattr(clip, "duration", 0) or 0), 1.0)
        return np.zeros(int(round(seconds * sample_rate)), dtype=np.float32), "no audio track: silence used"
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:  # [channels, samples] or [samples, channels]
        audio = audio.mean(axis=0 if audio.shape[0] < audio.shape[1] else 1)
    rate = int(getattr(clip, "sample_rate", sample_rate) or sample_rate)
    if rate != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, sample_rate)
        audio = resample_poly(audio, sample_rate // g, rate // g).astype(np.float32)
    return audio, None


def encode_clip(processor: Any, clip: Any, text: str, size: Mapping[str, int] | None = None) -> BatchFeature:
    """Processor outputs (batch of one, torch) for one clip and its chat-templated text."""
    audio, _ = clip_audio(clip, processor.feature_extractor.sampling_rate)
    size = dict(size) if size else dict(processor.video_processor.size)
    return processor(
        text=[text], videos=[np.asarray(clip.frames)], audio=[audio],
        audio_from_video_indices=[0], load_audio_from_video=True,
        # `size` explicitly: the processor's class default would override the video processor's own.
        videos_kwargs={"fps": sampling_fps(clip), "size": size},
        audio_kwargs={"max_length": len(audio), "truncation": False},
        text_kwargs={"padding": False}, return_tensors="pt")


def collate(encodings: Sequence[BatchFeature], pad_token_id: int, padding_side: str = "left") -> BatchFeature:
    """One batch from per-clip encodings: pad text, concatenate patches, pad audio features."""
    if padding_side not in ("left", "right"):
        raise ModelError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    out: dict[str, torch.Tensor] = {}
    longest = max(e["input_ids"].shape[1] for e in encodings)
    for key, fill in (("input_ids", pad_token_id), ("attention_mask", 0), ("labels", IGNORE_INDEX)):
        if key not in encodings[0]:
            continue
        rows = []
        for e in encodings:
            row = e[key][0]
            pad = torch.full((longest - row.shape[0],), fill, dtype=row.dtype)
            rows.append(torch.cat([pad, row]) if padding_side == "left" else torch.cat([row, pad]))
        out[key] = torch.stack(rows)
    for key in ("pixel_values_videos", "video_grid_thw", "video_second_per_grid"):
        out[key] = torch.cat([torch.as_tensor(e[key]) for e in encodings])
    # Mel frames: zero-pad to the longest clip; feature_attention_mask tells the audio encoder the real length.
    frames = max(e["input_features"].shape[-1] for e in encodings)
    for key in ("input_features", "feature_attention_mask"):
        out[key] = torch.cat([torch.nn.functional.pad(e[key], (0, frames - e[key].shape[-1])) for e in encodings])
    return BatchFeature(data=out)


def assistant_labels(input_ids: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    """Labels of one sequence: the assistant answers and their ``<|im_end|>``; everything else -100."""
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = input_ids.tolist()
    labels = [IGNORE_INDEX] * len(ids)
    i, found = 0, False
    while i <= len(ids) - len(header):
        if ids[i:i + len(header)] != header:
            i += 1
            continue
        j = i + len(header)
        while j < len(ids) and ids[j] != end_id:
            labels[j] = ids[j]
            j += 1
        if j < len(ids):
            labels[j] = ids[j]
        found, i = True, j + 1
    if not found:
        raise ModelError("no assistant answer in the templated text: nothing to train on")
    return torch.tensor(labels, dtype=input_ids.dtype)


def build_inputs(processor: Any, clips: Sequence[Any], conversations: Sequence[list[dict]], *,
                 add_generation_prompt: bool, labels: bool = False, padding_side: str = "left",
                 size: Mapping[str, int] | None = None) -> BatchFeature:
    """Model inputs for a batch of (clip, conversation): the one entry point for inference and training.

    Inference: conversations without an answer, ``add_generation_prompt=True`` (left padding).
    Training: conversations ending with the assistant answer, ``add_generation_prompt=False,
    labels=True`` (``labels`` = -100 except the answer tokens and their ``<|im_end|>``).
    Call the model with ``**inputs, **MODEL_KWARGS``. ``size`` overrides the per-frame pixel budget
    ``{"shortest_edge": min_pixels, "longest_edge": max_pixels}``.
    """
    if len(clips) != len(conversations):
        raise ModelError(f"{len(clips)} clips but {len(conversations)} conversations")
    if not clips:
        raise ModelError("build_inputs needs at least one clip")
    encodings = []
    for clip, conversation in zip(clips, conversations):
        enc = encode_clip(processor, clip, chat_text(processor, conversation, add_generation_prompt), size)
        if labels:
            enc["labels"] = assistant_labels(enc["input_ids"][0], processor.tokenizer)[None]
        encodings.append(enc)
    pad_id = processor.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = processor.tokenizer.eos_token_id
    return collate(encodings, pad_id, padding_side)
