"""Setting up a fine-tuning run: precision, accelerator, model, data, optimizer and schedule; checkpoints and resume.

What accelerate's ``nlp_example.py`` does before its loop, for Qwen2.5-Omni's thinker on HarmonySet's
``instruct`` data: :func:`prepare_run` returns a :class:`Run` holding everything prepared, and
:func:`resume_run` puts a run back exactly where a checkpoint left it (or refuses, naming what changed).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.hub import local_cache_dir
from ..data.video_folder import with_videos
from ..errors import ConfigError, HarmonySetError
from ..models.omni_processing import load_processor
from ..models.qwen2_5_omni import load_thinker
from .collate import InstructClips, SFTCollator
from .config import PROJECTOR_MODULES, TrainConfig

CHECKPOINT_RE = re.compile(r"^step_(\d+)$")
STATE_FILE = "trainer_state.json"


class EpochShuffle(torch.utils.data.Sampler):
    """A permutation of the items that depends only on (seed, epoch): the data position is just a batch count."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (called by accelerate's data loader)."""
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.n


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = [p for p in root.glob("step_*") if CHECKPOINT_RE.match(p.name) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def resolve_resume(cfg: TrainConfig) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run (which refuses to overwrite a used output_dir)."""
    if cfg.resume == "auto":
        found = checkpoints(cfg.output_dir)
        return found[-1] if found else None
    if cfg.resume:
        path = Path(cfg.resume)
        if not (path / STATE_FILE).exists():
            raise ConfigError(f"resume={cfg.resume}: not a checkpoint (no {STATE_FILE} in it)")
        return path
    if checkpoints(cfg.output_dir):
        raise ConfigError(f"{cfg.output_dir} already holds checkpoints: pass --set resume=auto to continue the run, "
                          "or choose another output_dir")
    return None


def build_model(cfg: TrainConfig, dtype: torch.dtype):
    """The thinker with encoders frozen, and LoRA on the language model (or all of it trainable)."""
    model = load_thinker(cfg.model, dtype=dtype, attn_implementation=cfg.attn_implementation)
    model.requires_grad_(False)
    if cfg.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM",
                          modules_to_save=(cfg.lora_modules_to_save + PROJECTOR_MODULES * cfg.train_projectors) or None)
        model = get_peft_model(model, lora)
        # peft keeps its trainable parameters in the base dtype; the optimizer wants them in fp32.
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    else:
        model.model.language_model.requires_grad_(True)
        model.lm_head.requires_grad_(True)
        for name in PROJECTOR_MODULES if cfg.train_projectors else []:
            model.get_submodule(f"model.{name}").requires_grad_(True)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def build_data(cfg: TrainConfig, processor):
    """The instruct rows as a torch dataset of clips, and the collator that masks and pads them."""
    from datasets import load_dataset

    # A cache private to a local folder's contents: datasets would serve a same-named folder's stale video paths.
    try:
        rows = load_dataset(cfg.data, cfg.data_config, split=cfg.split, cache_dir=local_cache_dir(cfg.data))
    except Exception as err:  # a wrong path reads as "Couldn't reach ... on the Hub": name the setting at fault
        raise ConfigError(f"data={cfg.data}: cannot load config {cfg.data_config!r} split {cfg.split!r} "
                          f"(a Hub folder from `harmonyset build` or a Hub repo id; {type(err).__name__}: {err})"
                          ) from err
    rows = with_videos(rows, cfg.video_dir or None)  # annotations only: the files of a download folder
    if cfg.shortest_first:
        rows = rows.sort("duration")
    if cfg.max_items:
        rows = rows.select(range(min(cfg.max_items, len(rows))))
    dataset = InstructClips(rows, num_frames=cfg.num_frames, sample_rate=cfg.sample_rate, seek=cfg.seek,
                            cache=cfg.cache_clips)
    collator = SFTCollator(processor, system_prompt=cfg.system_prompt or None)
    return dataset, collator


def keep_trainable_only(models, weights, output_dir) -> None:
    """accelerate save_state hook: checkpoint the trainable weights only (a LoRA step is MBs, not GBs)."""
    if len(weights) != len(models):  # FSDP and DeepSpeed save their own (sharded) states: nothing to filter
        return
    for i, model in enumerate(models):
        keep = {name for name, p in model.named_parameters() if p.requires_grad}
        weights[i] = {k: v for k, v in weights[i].items() if k in keep}


def load_trainable_only(models, input_dir) -> None:
    """accelerate load_state hook: load the trainable weights, failing if any is missing from the checkpoint."""
    from safetensors.torch import load_file

    for i, model in enumerate(models):
        state = load_file(os.path.join(input_dir, f"model{'_' + str(i) if i else ''}.safetensors"))
        wanted = {name for name, p in model.named_parameters() if p.requires_grad}
        missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
        if missing or extra:
            raise HarmonySetError(f"checkpoint {input_dir} does not match the model's trainable weights "
                                  f"(missing {missing[:3]}, unexpected {extra[:3]})")
        model.load_state_dict(state, strict=False)
    models.clear()  # nothing left for accelerate to load


def check_trackers(cfg: TrainConfig) -> None:
    """Refuse a ``report_to`` tracker whose package is missing (accelerate would silently drop it)."""
    if not cfg.report_to:
        return
    from accelerate.tracking import get_available_trackers

    available = sorted(str(t) for t in get_available_trackers())
    if missing := [t for t in cfg.report_to if t not in available]:
        raise ConfigError(f"report_to {missing}: not installed here (available: {available or 'none'})")


def choose_precision(cfg: TrainConfig) -> tuple[str, torch.dtype]:
    """accelerate's mixed precision and the dtype of the loaded weights for this run."""
    on_gpu = torch.cuda.is_available() and not os.environ.get("ACCELERATE_USE_CPU")
    precision = cfg.mixed_precision
    if precision == "auto":  # what `accelerate launch` was told, else bf16 on GPU and fp32 on CPU
        precision = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if on_gpu else "no")
    # LoRA keeps the frozen base in bf16 on GPU; full fine-tuning keeps fp32 master weights under autocast.
    dtype = torch.bfloat16 if precision == "bf16" and cfg.finetune == "lora" else torch.float32
    return precision, dtype


@dataclass
class Run:
    """A prepared run: what accelerate's examples keep in local variables, handed to the step and the loop."""

    cfg: TrainConfig
    accelerator: Any
    processor: Any
    model: Any
    optimizer: Any
    scheduler: Any
    loader: Any
    params: list  # the trainable parameters, as prepare() left them (FSDP2 swaps in sharded ones)
    items: int
    max_steps: int
    precision: str
    # What the data position and the schedule depend on: a resume must not change any of it.
    layout: dict[str, Any]

    @property
    def out(self) -> Path:
        """The run's output folder."""
        return Path(self.cfg.output_dir)


def prepare_run(cfg: TrainConfig) -> tuple[Run, Path | None]:
    """Everything a run needs, prepared by accelerate, and the checkpoint to resume from (None: a fresh run)."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, set_seed
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    check_trackers(cfg)
    precision, dtype = choose_precision(cfg)
    # Accumulation counted in micro-batches only (not reset at epoch ends): a step is always grad_accum batches.
    accumulation = GradientAccumulationPlugin(num_steps=cfg.grad_accum, sync_with_dataloader=False)
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_plugin=accumulation,
                              log_with=cfg.report_to or None, project_dir=cfg.output_dir)
    resume_from = resolve_resume(cfg)  # before any weights load: a used output_dir fails at once
    set_seed(cfg.seed)

    processor = load_processor(cfg.model, max_pixels=cfg.max_pixels or None)
    model = build_model(cfg, dtype)
    dataset, collator = build_data(cfg, processor)
    sampler = EpochShuffle(len(dataset), cfg.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collator,
                                         num_workers=cfg.num_workers, drop_last=False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    params = [p for p in model.parameters() if p.requires_grad]  # FSDP2 swaps them for sharded ones in prepare()

    steps_per_epoch = max(1, len(loader) // cfg.grad_accum)
    max_steps = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    warmup = cfg.warmup_steps or round(cfg.warmup_ratio * max_steps)
    # Not passed to prepare(): accelerate would step it once per process; we step it once per optimizer step.
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup, max_steps, min_lr_rate=cfg.min_lr_ratio)
    accelerator.register_for_checkpointing(scheduler)
    accelerator.register_save_state_pre_hook(keep_trainable_only)
    accelerator.register_load_state_pre_hook(load_trainable_only)
    layout = {"items": len(dataset), "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum,
              "processes": accelerator.num_processes, "seed": cfg.seed, "max_steps": max_steps}
    return Run(cfg, accelerator, processor, model, optimizer, scheduler, loader, params, len(dataset), max_steps,
               precision, layout), resume_from


def resume_run(run: Run, checkpoint: Path) -> int:
    """Load ``checkpoint`` into ``run`` (weights, optimizer, schedule, RNG); returns the step it was saved at."""
    state = json.loads((checkpoint / STATE_FILE).read_text())
    if changed := {k: (state["layout"].get(k), v) for k, v in run.layout.items() if state["layout"].get(k) != v}:
        raise ConfigError(f"cannot resume {checkpoint} exactly: changed since it was saved (then, now): {changed}")
    run.accelerator.load_state(str(checkpoint))
    return state["step"]
