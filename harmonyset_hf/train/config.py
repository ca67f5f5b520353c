"""The fine-tuning recipe as one dataclass: loaded from YAML, overridden by ``--set key=value``, type-checked."""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

# LoRA on the thinker's language model only. The plain list ["q_proj", ...] would also wrap the
# audio encoder (q_proj/k_proj/v_proj/out_proj) and the vision blocks (mlp.gate_proj/up_proj/down_proj).
LANGUAGE_MODEL_LINEAR_LAYERS = (
    r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
)
# The modality projectors of the thinker: vision patch merger and the audio encoder's output projection.
PROJECTOR_MODULES = ["visual.merger", "audio_tower.proj"]


@dataclass
class TrainConfig:
    """Every knob of a fine-tuning run; the YAML recipes under configs/train set a subset of these."""

    # data
    data: str = ""  # Hub folder or Hub repo id holding the `instruct` config
    data_config: str = "instruct"
    video_dir: str = ""  # videos of an annotations-only `data` (`videos download`); else $HARMONYSET_VIDEO_DIR
    split: str = "train"
    max_items: int = 0  # 0 = all; else the first N items (after `shortest_first`)
    shortest_first: bool = False  # sort items by duration (tests and smoke runs)
    num_frames: int = 16
    sample_rate: int = 16000
    seek: str = "exact"  # exact | keyframe
    max_pixels: int = 0  # per-frame pixel budget for the video processor; 0 = the processor's default
    cache_clips: bool = False  # keep decoded clips in memory (small sets, many epochs)
    system_prompt: str = ""  # "" = the model adapter's default system prompt
    num_workers: int = 0
    # model
    model: str = ""  # base Qwen2.5-Omni checkpoint (folder or repo id); its thinker is trained
    finetune: str = "lora"  # lora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = LANGUAGE_MODEL_LINEAR_LAYERS
    lora_modules_to_save: list[str] = field(default_factory=list)  # also trained in full and saved, e.g. [lm_head]
    train_projectors: bool = False
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    # optimisation
    batch_size: int = 1  # per process
    grad_accum: int = 1
    max_steps: int = 0  # optimizer steps; 0 = `epochs` passes over the data
    epochs: float = 1.0
    lr: float = 1e-4
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0  # 0 = no clipping
    seed: int = 0
    mixed_precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | no | bf16 | fp16
    # output
    output_dir: str = "runs/harmonyset"
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 2  # 0 = keep all
    resume: str = ""  # "" (fresh run; refuses a used output_dir) | auto (latest checkpoint) | a checkpoint dir
    stop_after: int = 0  # stop (checkpointed) after this many steps of this session, as a time-limited job would
    merge: bool = False  # LoRA: also write merged full weights to <output_dir>/merged
    log_every: int = 1
    report_to: list[str] = field(default_factory=list)  # accelerate trackers: tensorboard, wandb
    progress: bool = True


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(name: str, value: Any) -> Any:
    """``value`` checked (and widened int->float) against the type of config field ``name``."""
    if name not in FIELDS:
        raise ConfigError(f"unknown config key {name!r}; valid keys: {', '.join(FIELDS)}")
    tp = typing.get_type_hints(TrainConfig)[name]
    options = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    if isinstance(value, str) and float in options:  # PyYAML reads `1e-4` (no dot) as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    for option in options:
        origin = typing.get_origin(option)
        if origin is list:
            items = [value] if isinstance(value, str) else value
            item_tp = typing.get_args(option)[0]
            if isinstance(items, list) and all(isinstance(v, item_tp) for v in items):
                return list(items)
        elif option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        elif option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        elif option is str and isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        elif option in (bool, type(None)) and isinstance(value, option):
            return value
    raise ConfigError(f"config key {name!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (``lr=2e-4``, ``report_to=[tensorboard]``)."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key.strip(), "" if value is None else value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A TrainConfig from a YAML recipe (optional) then ``key=value`` overrides; unknown keys are errors."""
    values: dict[str, Any] = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read training config {path}: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a training config is a YAML mapping of key: value")
        values.update(data)
    for text in overrides or []:
        key, value = parse_override(text)
        values[key] = value
    cfg = TrainConfig(**{key: coerce(key, value) for key, value in values.items()})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Cross-field checks that the types alone cannot express."""
    choices = {"finetune": ("lora", "full"), "seek": ("exact", "keyframe"),
               "mixed_precision": ("auto", "no", "bf16", "fp16")}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    if not cfg.data or not cfg.model:
        raise ConfigError("a training config needs `data` (Hub folder or repo id) and `model` (base checkpoint)")
    for key in ("num_frames", "batch_size", "grad_accum", "log_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {getattr(cfg, key)}")
    if cfg.merge and cfg.finetune != "lora":
        raise ConfigError("merge=true only applies to finetune=lora (full fine-tuning already writes full weights)")


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as a plain dict (for YAML, trackers and checkpoints)."""
    return dataclasses.asdict(cfg)
