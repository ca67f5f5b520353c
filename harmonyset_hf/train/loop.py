"""Fine-tune Qwen2.5-Omni's thinker on HarmonySet's ``instruct`` data: LoRA or full, with accelerate.

    accelerate launch -m harmonyset_hf.train --config configs/train/qwen2_5_omni_lora.yaml [--set key=value ...]

One screen, top to bottom: config -> model (encoders frozen) -> data (clips + per-sample processor +
label mask) -> AdamW + warmup/cosine -> loop (gradient accumulation, clipping) -> checkpoints with
the whole state (trainable weights, optimizer, scheduler, RNG, data position) -> adapter/weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data.hub import local_cache_dir
from ..data.video_folder import with_videos
from ..errors import ConfigError, HarmonySetError
from ..io import append_jsonl, atomic_write_json, atomic_write_text
from ..models.omni_processing import load_processor
from ..models.qwen2_5_omni import load_thinker
from .collate import InstructClips, SFTCollator
from .config import PROJECTOR_MODULES, TrainConfig, load_config, to_dict

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


def save_final(cfg: TrainConfig, accelerator, model, processor) -> None:
    """The result: a peft adapter (optionally merged weights too) or full weights, with the processor."""
    out = Path(cfg.output_dir)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        unwrapped.save_pretrained(out)
        processor.save_pretrained(out)
        if cfg.merge:
            merged = unwrapped.merge_and_unload()
            merged.save_pretrained(out / "merged")
            processor.save_pretrained(out / "merged")
    accelerator.wait_for_everyone()


def micro_batches(accelerator, loader, start: int):
    """Batches forever, epoch after epoch, starting ``start`` batches in (skipped without decoding them)."""
    epoch, skip = divmod(start, len(loader))
    while True:
        loader.set_epoch(epoch)
        yield from accelerator.skip_first_batches(loader, skip) if skip else loader
        epoch, skip = epoch + 1, 0


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one fine-tuning run; returns a summary (steps, last loss, output_dir)."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    if cfg.report_to:  # accelerate would silently drop a tracker whose package is missing
        from accelerate.tracking import get_available_trackers

        available = sorted(str(t) for t in get_available_trackers())
        if missing := [t for t in cfg.report_to if t not in available]:
            raise ConfigError(f"report_to {missing}: not installed here (available: {available or 'none'})")
    on_gpu = torch.cuda.is_available() and not os.environ.get("ACCELERATE_USE_CPU")
    precision = cfg.mixed_precision
    if precision == "auto":  # what `accelerate launch` was told, else bf16 on GPU and fp32 on CPU
        precision = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if on_gpu else "no")
    # LoRA keeps the frozen base in bf16 on GPU; full fine-tuning keeps fp32 master weights under autocast.
    dtype = torch.bfloat16 if precision == "bf16" and cfg.finetune == "lora" else torch.float32
    # Accumulation counted in micro-batches only (not reset at epoch ends): a step is always grad_accum batches.
    accumulation = GradientAccumulationPlugin(num_steps=cfg.grad_accum, sync_with_dataloader=False)
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_plugin=accumulation,
                              log_with=cfg.report_to or None, project_dir=cfg.output_dir)
    resume_from = resolve_resume(cfg)
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

    out = Path(cfg.output_dir)
    # What the data position and the schedule depend on: a resume must not change any of it.
    layout = {"items": len(dataset), "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum,
              "processes": accelerator.num_processes, "seed": cfg.seed, "max_steps": max_steps}
    step = 0
    if resume_from is not None:
        state = json.loads((resume_from / STATE_FILE).read_text())
        if changed := {k: (state["layout"].get(k), v) for k, v in layout.items() if state["layout"].get(k) != v}:
            raise ConfigError(f"cannot resume {resume_from} exactly: changed since it was saved (then, now): {changed}")
        accelerator.load_state(str(resume_from))
        step = state["step"]
    if accelerator.is_main_process:
        atomic_write_text(out / "train_config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    if cfg.report_to:
        try:
            accelerator.init_trackers("harmonyset", config={k: v for k, v in to_dict(cfg).items() if k != "report_to"})
        except Exception as err:  # e.g. wandb without a login: say which tracker, without its traceback
            raise ConfigError(f"report_to {cfg.report_to}: the tracker did not start ({type(err).__name__}: {err}); "
                              "log in to it, set it to offline mode (WANDB_MODE=offline), or drop it") from err
    n_params = sum(p.numel() for p in params)
    shown_precision = "fp32" if precision == "no" else precision
    accelerator.print(f"harmonyset train: {len(dataset)} items, {max_steps} steps of {cfg.batch_size}x{cfg.grad_accum}"
                      f"x{accelerator.num_processes} samples, {n_params:,} trainable parameters, {shown_precision}, "
                      f"{'resuming at step ' + str(step) if step else 'fresh run'}")

    def save_checkpoint(at: int) -> None:
        path = out / "checkpoints" / f"step_{at:06d}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            atomic_write_json(path / STATE_FILE, {"step": at, "micro_batches": at * cfg.grad_accum, "layout": layout})
            for old in checkpoints(out)[:-cfg.keep_checkpoints] if cfg.keep_checkpoints else []:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()

    batches = micro_batches(accelerator, loader, step * cfg.grad_accum)
    progress = tqdm(total=max_steps, initial=step, desc="train", disable=not (cfg.progress and
                                                                              accelerator.is_main_process))
    model.train()
    session_steps, last_loss, started = 0, float("nan"), time.perf_counter()
    while step < max_steps:
        micro = [next(batches) for _ in range(cfg.grad_accum)]
        labels = [b.pop("labels")[:, 1:] for b in micro]  # position t predicts token t+1
        # Normalise by the supervised tokens of the whole step, over all processes: every token weighs the same.
        tokens = accelerator.reduce(sum((lab != -100).sum() for lab in labels).to(accelerator.device), "sum")
        loss_sum = torch.zeros((), device=accelerator.device)
        for batch, lab in zip(micro, labels):
            # accumulate(): no gradient all-reduce before the last micro-batch (DDP), DeepSpeed's own counting.
            with accelerator.accumulate(model):
                logits = model(**batch, use_audio_in_video=True, use_cache=False).logits[:, :-1]
                ce = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                       lab.reshape(-1), ignore_index=-100, reduction="sum")
                # backward() divides by grad_accum and DDP averages over processes: undo both, so the step's
                # gradient is that of the mean over all its supervised tokens.
                accelerator.backward(ce * cfg.grad_accum * accelerator.num_processes / tokens.clamp(min=1))
            loss_sum += ce.detach()
        assert accelerator.sync_gradients, "micro-batch count out of step with the accumulation counter"
        grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm) if cfg.max_grad_norm else None
        lr = scheduler.get_last_lr()[0]  # the rate this step used (HF warmup starts at 0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        session_steps += 1
        last_loss = (accelerator.reduce(loss_sum, "sum") / tokens.clamp(min=1)).item()
        progress.update(1)
        progress.set_postfix(loss=f"{last_loss:.4f}")
        if step % cfg.log_every == 0 or step == max_steps:
            record = {"step": step, "loss": last_loss, "lr": lr,
                      "grad_norm": None if grad_norm is None else float(grad_norm), "tokens": int(tokens),
                      "epoch": round(step * cfg.grad_accum / len(loader), 4),
                      "elapsed_s": round(time.perf_counter() - started, 3)}
            if accelerator.is_main_process:
                append_jsonl(out / "log.jsonl", [record])
            accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=step)
        stopping = cfg.stop_after and session_steps >= cfg.stop_after and step < max_steps
        if (cfg.save_every and step % cfg.save_every == 0) or step == max_steps or stopping:
            save_checkpoint(step)
        if stopping:
            break
    progress.close()
    if step >= max_steps:
        save_final(cfg, accelerator, model, processor)
    accelerator.end_training()
    summary = {"step": step, "max_steps": max_steps, "loss": last_loss, "output_dir": str(out),
               "finished": step >= max_steps, "seconds": round(time.perf_counter() - started, 2)}
    accelerator.print(f"harmonyset train: {'finished' if summary['finished'] else 'stopped'} at step {step}/"
                      f"{max_steps}, last loss {last_loss:.4f}, {summary['seconds']} s; output in {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m harmonyset_hf.train`` (under accelerate launch or torchrun)."""
    parser = argparse.ArgumentParser(prog="harmonyset_hf.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="YAML recipe (configs/train/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable), e.g. --set lr=2e-4 --set max_steps=100")
    args = parser.parse_args(argv)
    try:
        train(load_config(args.config, args.overrides))
    except HarmonySetError as err:
        print(f"harmonyset train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
