"""Qwen2.5-Omni (thinker only) as a HarmonySet model: video frames and the clip's own music, interleaved.

``qwen2_5_omni`` takes a checkpoint folder or Hub id (``path=``, default Qwen/Qwen2.5-Omni-7B),
optionally a LoRA adapter written by ``harmonyset_hf.train`` (``adapter=DIR``) or merged weights
(``adapter=DIR/merged`` or ``path=DIR/merged``). ``tiny`` is the same class on the random-weight
model of :mod:`harmonyset_hf.models.tiny` (built into the cache when no ``path`` is given).

Inputs are built by :func:`harmonyset_hf.models.omni_processing.build_inputs`, the same function
the training collator uses, so inference sees exactly the layout training saw.

By default (``share_prefix=true``) each clip's video+audio prefix runs once and its KV cache serves
all the clip's questions (:mod:`harmonyset_hf.models.omni_prefix`); ``share_prefix=false`` runs
every prompt whole. Greedy replies are the same either way. The device defaults to
``cuda:{LOCAL_RANK}`` under torchrun / accelerate launch (CPU without CUDA).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..distributed import rank_device
from .base import ModelError, Reply, load_problem
from .clips import ClipLoader, source_key
from .tiny import tiny_model_dir

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "Qwen/Qwen2.5-Omni-7B"
FRAME_CHOICES = (16, 32, 64)
# HarmonySet annotations average 352.65 words (about 470 tokens) and run well past that: 512 new tokens
# would cut long OE answers, so the default leaves room for twice the mean (MC replies stop far earlier).
DEFAULT_MAX_NEW_TOKENS = 1024
# Whole prompts (clip + question) per generate call when batch_size is not given: each runs the
# encoders. With a shared prefix a row costs only its question and a copy of the prefix's cache,
# so every row of the call decodes together (the caller's batch, e.g. predict's --batch-size).
WHOLE_PROMPT_BATCH = 4


def resolve_dtype(dtype: Any, device: str) -> Any:
    """``"auto"`` -> bf16 on CUDA, fp32 elsewhere; else the named torch dtype."""
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, names.get(str(dtype), str(dtype)), None)
    if not isinstance(value, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}: use auto, bfloat16, float16 or float32")
    return value


def load_thinker(path: str, dtype: Any = None, attn_implementation: str | None = None, **hub_kwargs: Any) -> Any:
    """The Qwen2.5-Omni thinker from a thinker-only checkpoint or a full Omni one (its talker is not loaded)."""
    from transformers import AutoConfig, Qwen2_5OmniThinkerForConditionalGeneration

    kwargs: dict[str, Any] = {"dtype": dtype, **hub_kwargs}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model_type = AutoConfig.from_pretrained(path, **hub_kwargs).model_type
        if model_type not in ("qwen2_5_omni", "qwen2_5_omni_thinker"):
            raise ModelError(f"{path!r} is a {model_type!r} checkpoint, not Qwen2.5-Omni")
        # transformers maps a full checkpoint's thinker_config and thinker.* weights onto the thinker.
        return Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelError(f"cannot load a Qwen2.5-Omni checkpoint from {path!r}: {load_problem(path, err)}") from err


def _has(path: Path, *names: str) -> bool:
    return path.is_dir() and all((path / n).is_file() for n in names)


class QwenOmniModel:
    """Qwen2.5-Omni's thinker answering from 16/32/64 frames + the clip's audio (greedy by default)."""

    needs_media = True
    default_name = "qwen2_5_omni"

    def __init__(self, path: str | None = DEFAULT_CHECKPOINT, adapter: str | None = None, frames: int | None = 16,
                 seed: int = 0, max_pixels: int | None = None, min_pixels: int | None = None, dtype: str = "auto",
                 device: str | None = None, batch_size: int | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, system: str | None = None,
                 attn_implementation: str | None = None, media_backend: str = "pyav", name: str | None = None,
                 local_files_only: bool = False, share_prefix: bool = True):
        import torch

        # Lazy: omni_processing (and omni_prefix, which builds on it) import transformers at their top
        # (25.5 s here: python -X importtime -c "import harmonyset_hf.models.omni_processing"); the
        # registry and `train` import this module first.
        from .omni_prefix import PrefixCache
        from .omni_processing import QWEN_OMNI_SYSTEM_PROMPT, load_processor

        frames = 16 if frames is None else int(frames)
        if frames < 2:
            raise ModelError(f"frames must be at least 2 (Qwen2.5-Omni pairs frames), not {frames}")
        if frames not in FRAME_CHOICES:
            log.warning("frames=%d: the paper compares %s", frames, FRAME_CHOICES)
        path = self._default_path(path, seed)
        self.frames, self.seed = frames, int(seed)
        self.batch_size = max(1, int(batch_size)) if batch_size else None
        self.max_new_tokens, self.do_sample = int(max_new_tokens), bool(do_sample)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.system = QWEN_OMNI_SYSTEM_PROMPT if system is None else (system or None)
        self.media_backend = media_backend
        self.share_prefix = bool(share_prefix)
        self.device = rank_device(device)
        if self.device.startswith("cuda"):
            torch.cuda.set_device(self.device)  # kernels and NCCL of this rank on its own GPU
        self.dtype = resolve_dtype(dtype, self.device)
        hub = {"local_files_only": bool(local_files_only)}
        weights, processor_from = str(path), str(path)
        peft_dir = None
        if adapter:
            adapter_dir = Path(adapter)
            if not adapter_dir.is_dir():
                raise ModelError(f"adapter {adapter!r}: no such folder (give the output folder of "
                                 "`harmonyset_hf.train`: a peft adapter or merged weights)")
            if _has(adapter_dir, "adapter_config.json"):
                peft_dir = adapter_dir
            elif _has(adapter_dir, "config.json"):  # merged weights
                weights = str(adapter_dir)
            else:
                raise ModelError(f"adapter {adapter!r} is neither a peft adapter (adapter_config.json) "
                                 "nor merged weights (config.json)")
            if _has(adapter_dir, "tokenizer_config.json"):  # train/loop.py saves the processor beside the weights
                processor_from = str(adapter_dir)
        torch.manual_seed(self.seed)
        self.model = load_thinker(weights, dtype=self.dtype, attn_implementation=attn_implementation, **hub)
        if peft_dir is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(peft_dir)).merge_and_unload()
        self.model.to(self.device).eval()
        self.processor = load_processor(processor_from, min_pixels=min_pixels, max_pixels=max_pixels, **hub)
        self.name = name or self._describe_name(path, adapter)
        self._clips = ClipLoader(frames=self.frames, sample_rate=16000, backend=media_backend)
        self._prefixes = PrefixCache()

    def _default_path(self, path: str | None, seed: int) -> str:
        if not path:
            raise ModelError(f"{self.default_name}: give path=<checkpoint folder or Hub id>")
        return str(path)

    def _describe_name(self, path: str, adapter: str | None) -> str:
        name = self.default_name
        if str(path) != DEFAULT_CHECKPOINT:
            name += f":{Path(str(path).rstrip('/')).name}"
        if adapter:
            name += f"+{Path(str(adapter).rstrip('/')).name}"
        return name

    def load_clips(self, batch: list[dict]) -> list[Any]:
        """Frames (``self.frames`` at segment midpoints) and the full 16 kHz audio of each row's video."""
        return self._clips(batch)

    def generate(self, batch: list[dict], prompts: list[str]) -> list[str]:
        """One reply per row, ``batch_size`` rows per generate call (default: 4 whole prompts; all, prefixes shared)."""
        if len(batch) != len(prompts):
            raise ModelError(f"{len(batch)} rows but {len(prompts)} prompts")
        step = self.batch_size or (max(1, len(batch)) if self.share_prefix else WHOLE_PROMPT_BATCH)
        replies: list[str] = []
        for start in range(0, len(batch), step):
            rows, texts = batch[start:start + step], prompts[start:start + step]
            keys = [source_key(row.get("video")) for row in rows]
            replies.extend(self.generate_clips(self.load_clips(rows), texts, keys=keys))
        return replies

    def generate_clips(self, clips: list[Any], prompts: list[str], keys: list[Any] | None = None) -> list[str]:
        """Replies for already-loaded clips (``harmonyset_hf.media.Clip``) and their prompts.

        ``keys`` name the clips (rows with one key share one clip), so that a clip's prefix is kept
        for the next call; without them prefixes are shared within this call only.
        """
        replies: list[str | None] = [None] * len(clips)
        for indices, inputs in self.generation_inputs(clips, prompts, keys):
            for i, text in zip(indices, self._generate(inputs)):
                replies[i] = text
        return [r or "" for r in replies]

    def generation_inputs(self, clips: list[Any], prompts: list[str],
                          keys: list[Any] | None = None) -> list[tuple[list[int], dict[str, Any]]]:
        """``(row indices, generate kwargs)`` groups: shared-prefix rows in one, rows run whole in another."""
        from .omni_prefix import PrefixCache, shared_inputs, split_after_clip  # lazy: see __init__
        from .omni_processing import chat_text, make_conversation

        if len(clips) != len(prompts):
            raise ModelError(f"{len(clips)} clips but {len(prompts)} prompts")
        whole: list[int] = list(range(len(clips)))
        groups: list[tuple[list[int], dict[str, Any]]] = []
        if self.share_prefix:
            split = [split_after_clip(chat_text(self.processor, make_conversation(p, system=self.system), True),
                                      self.processor.tokenizer) for p in prompts]
            shared = [i for i, parts in enumerate(split) if parts is not None]
            whole = [i for i, parts in enumerate(split) if parts is None]
            if shared:
                # Unnamed clips share within this call only: a cache of their own, dropped after it.
                store = self._prefixes if keys else PrefixCache(capacity=len(clips))
                prefixes = [self._prefix(store, clips[i], split[i][0], keys[i] if keys else id(clips[i]))
                            for i in shared]
                questions = [split[i][1] for i in shared]
                groups.append((shared, shared_inputs(self.model, prefixes, questions, self._pad_id(), self.device)))
        if whole:
            groups.append((whole, self._whole_inputs([clips[i] for i in whole], [prompts[i] for i in whole])))
        return groups

    def _prefix(self, store: Any, clip: Any, prefix_text: str, key: Any) -> Any:
        from .omni_prefix import encode_prefix  # lazy: see __init__

        return store.get((key, prefix_text), lambda: encode_prefix(
            self.model, self.processor, clip, prefix_text, self.device, self.dtype))

    def _pad_id(self) -> int:
        tok = self.processor.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def _whole_inputs(self, clips: list[Any], prompts: list[str]) -> dict[str, Any]:
        from .omni_processing import MODEL_KWARGS, build_inputs, make_conversation  # lazy: see __init__

        conversations = [make_conversation(p, system=self.system) for p in prompts]
        inputs = build_inputs(self.processor, clips, conversations, add_generation_prompt=True, padding_side="left")
        # Only the pixels and mel features take the model dtype: video_second_per_grid stays fp32
        # (in bf16, 3.9 s becomes 3.906 s and the video drifts against the audio).
        inputs = {k: v.to(self.device, self.dtype) if k in ("pixel_values_videos", "input_features")
                  else v.to(self.device) for k, v in inputs.items()}
        return {**inputs, **MODEL_KWARGS}

    def generation_options(self) -> dict[str, Any]:
        """The ``generate`` options of this model (greedy unless ``do_sample``)."""
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                                   "pad_token_id": self.processor.tokenizer.pad_token_id,
                                   "eos_token_id": self.processor.tokenizer.eos_token_id}
        if self.do_sample:
            options.update(temperature=self.temperature, top_p=self.top_p)
        else:  # greedy: silence the checkpoint's sampling defaults
            options.update(temperature=None, top_p=None, top_k=None)
        return options

    def _generate(self, inputs: dict[str, Any]) -> list[str]:
        import torch

        if self.do_sample:
            torch.manual_seed(self.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **self.generation_options())
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        # A row that never produced an end token ran into max_new_tokens: its answer may be cut short.
        ends = self.processor.tokenizer.eos_token_id
        ends = [e for e in (ends if isinstance(ends, (list, tuple)) else [ends]) if e is not None]
        if not ends:  # no end token known: whether a reply was cut cannot be told
            return [Reply(t.strip()) for t in texts]
        finished = torch.isin(new_tokens, torch.tensor(ends, device=new_tokens.device)).any(dim=1).tolist()
        return [Reply(t.strip(), truncated=not done and new_tokens.shape[1] >= self.max_new_tokens)
                for t, done in zip(texts, finished)]


class TinyOmniModel(QwenOmniModel):
    """``QwenOmniModel`` on the tiny random-weight thinker (``path`` = a ``harmonyset tiny-model`` dir)."""

    default_name = "tiny"

    def __init__(self, path: str | None = None, max_new_tokens: int = 16, **kwargs: Any):
        super().__init__(path=path, max_new_tokens=max_new_tokens, **kwargs)

    def _default_path(self, path: str | None, seed: int) -> str:
        return str(tiny_model_dir(path))  # weights seeded 0 always; `seed` is the generation seed

    def _describe_name(self, path: str, adapter: str | None) -> str:
        return self.default_name + (f"+{Path(str(adapter).rstrip('/')).name}" if adapter else "")
