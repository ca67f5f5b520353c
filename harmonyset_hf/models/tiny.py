"""A tiny random-weight Qwen2.5-Omni thinker, built offline in seconds, for tests and dry runs.

``build_tiny_model(out)`` writes a directory that loads like any checkpoint:
``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)``, ``AutoTokenizer.from_pretrained(out)``
and :func:`harmonyset_hf.models.omni_processing.load_processor` (the processor with our
torchvision-free video processor). The tokenizer is a byte-level BPE trained on the fly on the
paper's prompts and HarmonySet's vocabulary, with Qwen2.5-Omni's special tokens and chat template.
Its outputs are noise; only the code paths are real.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from .. import schema
from ..io import atomic_write_json
from .base import ModelError

# Qwen2.5-Omni's special tokens (tokenizer_config.json of Qwen/Qwen2.5-Omni-7B); the attribute
# names are those Qwen2_5OmniProcessor reads from its tokenizer (`tokenizer.video_token`, ...).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
                  "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_bos|>", "<|vision_eos|>",
                  "<|vision_pad|>", "<|IMAGE|>", "<|VIDEO|>")
NAMED_TOKENS = {"image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "audio_token": "<|AUDIO|>",
                "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
                "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}

# Qwen2.5-Omni's chat template (the Qwen2-VL family's, with <|VIDEO|>/<|AUDIO|> placeholders).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Sizes of the tiny model (NOTES.md: forward+backward well under a second on CPU).
TEXT_HIDDEN = 64
VOCAB_SIZE = 1024
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112


def _corpus() -> list[str]:
    """Training text for the BPE: the paper's prompts and HarmonySet's vocabulary."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parent.parent / "prompts").glob("*"))
             if p.is_file()]
    words: list[str] = []
    for name in ("ASPECT_HEADERS", "CATEGORY_NAMES", "SUBCATEGORIES", "LABELS", "SYNC_CODES", "ASPECT_NAMES"):
        value: Any = getattr(schema, name, {})
        for v in (value.values() if isinstance(value, dict) else value):
            words.extend([v] if isinstance(v, str) else [str(x) for x in v])
    texts.append(" ".join(words))
    texts.append("Rhythm and Synchronization: The music's tempo matches the cuts at 00:10 and 00:20.\n"
                 "Theme and Content: The music fits the scene.\nEmotion: happy, relaxed.\n"
                 "Cultural Relevance: no culture element. The answer is A. B. C. D. 0123456789")
    return texts


def build_tokenizer() -> Any:
    """A byte-level BPE tokenizer with Qwen2.5-Omni's special tokens and chat template (trained in ~1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        extra_special_tokens=dict(NAMED_TOKENS), model_max_length=32768)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_config(tokenizer: Any) -> Any:
    """A Qwen2.5-Omni thinker config: 2 text layers (hidden 64), vision depth 2, 2 audio layers."""
    from transformers import Qwen2_5OmniThinkerConfig

    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in NAMED_TOKENS.items()}
    text_config = {
        "vocab_size": len(tokenizer), "hidden_size": TEXT_HIDDEN, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        # mrope: how the head_dim/2 = 8 rotary frequencies split over (time, height, width)
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
    }
    vision_config = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 14,
                     "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                     "out_hidden_size": TEXT_HIDDEN, "fullatt_block_indexes": [1]}
    audio_config = {"num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                    "d_model": 32, "output_dim": TEXT_HIDDEN, "n_window": 100, "max_source_positions": 1500}
    return Qwen2_5OmniThinkerConfig(
        text_config=text_config, vision_config=vision_config, audio_config=audio_config,
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
        user_token_id=tokenizer.convert_tokens_to_ids("user") if "user" in tokenizer.get_vocab() else 0,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        position_id_per_seconds=25, seconds_per_chunk=2)


def build_tiny_model(out: str | Path, seed: int = 0) -> Path:
    """Write a random-weight Qwen2.5-Omni thinker + tokenizer + processor configs to ``out``; return it."""
    import torch
    from transformers import GenerationConfig, Qwen2_5OmniThinkerForConditionalGeneration, WhisperFeatureExtractor

    # Lazy, like transformers above: omni_processing imports transformers at its top, 25.5 s on this (shared)
    # machine (python -X importtime -c "import harmonyset_hf.models.omni_processing"); the registry imports
    # this module to list and build models that never need it.
    from .omni_processing import OmniVideoProcessor, build_processor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = tiny_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    feature_extractor = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160,
                                                chunk_length=30, n_fft=400, return_attention_mask=True)
    video_processor = OmniVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    processor = build_processor(tokenizer, feature_extractor, video_processor)
    processor.image_processor.size = {"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS}
    # Saved under the stock class names: with torchvision installed `Qwen2_5OmniProcessor.from_pretrained(out)`
    # reads it; here `load_processor(out)` does. The tokenizer config keeps the chat template too.
    processor.save_pretrained(out)
    atomic_write_json(out / "harmonyset_tiny.json", {"seed": seed, "note": "random weights; outputs are noise"})
    return out


def is_tiny_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a complete tiny model written by :func:`build_tiny_model`."""
    path = Path(path)
    needed = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "harmonyset_tiny.json")
    return all((path / name).is_file() for name in needed)


def tiny_model_dir(path: str | Path | None = None, seed: int = 0) -> Path:
    """A tiny model directory: ``path`` (built there when absent or empty), else one in the user cache."""
    if path is None:
        import transformers

        root = Path(os.environ.get("HARMONYSET_CACHE_DIR") or Path.home() / ".cache" / "harmonyset")
        path = root / "tiny-qwen2_5_omni" / f"seed{seed}-transformers{transformers.__version__}"
    path = Path(path)
    if (path / "config.json").is_file():  # a tiny model, or one trained from it: never overwritten
        return path
    if path.is_dir() and any(path.iterdir()):
        raise ModelError(f"{path} holds files but no model (config.json); give an empty or new folder")
    # Build beside it and rename: concurrent processes (torchrun) never see half a model.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(tmp, seed=seed)
    if path.is_dir():
        path.rmdir()  # empty
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def describe(path: str | Path) -> dict:
    """Model type, vocabulary and parameter count of a tiny model directory (for the CLI summary)."""
    from safetensors import safe_open

    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    params = 0
    for shard in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            params += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    return {"model_type": config.get("model_type"), "vocab_size": config.get("text_config", {}).get("vocab_size"),
            "parameters": params}
