"""Fine-tune Qwen2.5-Omni's thinker on HarmonySet's ``instruct`` data: LoRA or full, with accelerate.

    accelerate launch -m harmonyset_hf.train --config configs/train/qwen2_5_omni_lora.yaml [--set key=value ...]

:func:`train` reads top to bottom in one screen: :func:`.setup.prepare_run` (config -> model with encoders
frozen -> data: clips + per-sample processor + label mask -> AdamW + warmup/cosine), :func:`.setup.resume_run`,
then the loop over :func:`.step.train_step` (gradient accumulation, clipping), logging, checkpoints with
the whole state (trainable weights, optimizer, scheduler, RNG, data position) and the adapter/weights.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, HarmonySetError
from ..io import append_jsonl, atomic_write_json, atomic_write_text
from .config import TrainConfig, load_config, to_dict
from .setup import STATE_FILE, Run, checkpoints, prepare_run, resume_run
from .step import StepResult, micro_batches, train_step


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one fine-tuning run; returns a summary (steps, last loss, output_dir)."""
    from tqdm.auto import tqdm

    run, resume_from = prepare_run(cfg)
    step = resume_run(run, resume_from) if resume_from is not None else 0
    start_run(run, step)
    batches = micro_batches(run.accelerator, run.loader, step * cfg.grad_accum)
    progress = tqdm(total=run.max_steps, initial=step, desc="train",
                    disable=not (cfg.progress and run.accelerator.is_main_process))
    run.model.train()
    session_steps, last_loss, started = 0, float("nan"), time.perf_counter()
    while step < run.max_steps:
        result = train_step(run, batches)
        step, session_steps, last_loss = step + 1, session_steps + 1, result.loss
        progress.update(1)
        progress.set_postfix(loss=f"{last_loss:.4f}")
        if step % cfg.log_every == 0 or step == run.max_steps:
            log_step(run, step, result, started)
        stopping = cfg.stop_after and session_steps >= cfg.stop_after and step < run.max_steps
        if (cfg.save_every and step % cfg.save_every == 0) or step == run.max_steps or stopping:
            save_checkpoint(run, step)
        if stopping:
            break
    progress.close()
    if step >= run.max_steps:
        save_final(cfg, run.accelerator, run.model, run.processor)
    run.accelerator.end_training()
    return finish_run(run, step, last_loss, started)


def start_run(run: Run, step: int) -> None:
    """Write the run's config, start its trackers and say what is about to run."""
    cfg, accelerator = run.cfg, run.accelerator
    if accelerator.is_main_process:
        atomic_write_text(run.out / "train_config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    if cfg.report_to:
        try:
            accelerator.init_trackers("harmonyset", config={k: v for k, v in to_dict(cfg).items() if k != "report_to"})
        except Exception as err:  # e.g. wandb without a login: say which tracker, without its traceback
            raise ConfigError(f"report_to {cfg.report_to}: the tracker did not start ({type(err).__name__}: {err}); "
                              "log in to it, set it to offline mode (WANDB_MODE=offline), or drop it") from err
    n_params = sum(p.numel() for p in run.params)
    shown_precision = "fp32" if run.precision == "no" else run.precision
    accelerator.print(f"harmonyset train: {run.items} items, {run.max_steps} steps of {cfg.batch_size}x{cfg.grad_accum}"
                      f"x{accelerator.num_processes} samples, {n_params:,} trainable parameters, {shown_precision}, "
                      f"{'resuming at step ' + str(step) if step else 'fresh run'}")


def log_step(run: Run, step: int, result: StepResult, started: float) -> None:
    """One line of ``log.jsonl`` (main process) and the trackers' record for ``step``."""
    record = {"step": step, "loss": result.loss, "lr": result.lr, "grad_norm": result.grad_norm,
              "tokens": result.tokens, "epoch": round(step * run.cfg.grad_accum / len(run.loader), 4),
              "elapsed_s": round(time.perf_counter() - started, 3)}
    if run.accelerator.is_main_process:
        append_jsonl(run.out / "log.jsonl", [record])
    run.accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=step)


def save_checkpoint(run: Run, step: int) -> None:
    """The whole state at ``step`` under ``checkpoints/step_NNNNNN`` (older ones beyond ``keep_checkpoints`` go)."""
    path = run.out / "checkpoints" / f"step_{step:06d}"
    run.accelerator.save_state(str(path))
    if run.accelerator.is_main_process:
        atomic_write_json(path / STATE_FILE, {"step": step, "micro_batches": step * run.cfg.grad_accum,
                                              "layout": run.layout})
        for old in checkpoints(run.out)[:-run.cfg.keep_checkpoints] if run.cfg.keep_checkpoints else []:
            shutil.rmtree(old)
    run.accelerator.wait_for_everyone()


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


def finish_run(run: Run, step: int, last_loss: float, started: float) -> dict[str, Any]:
    """The run's summary, also printed as one line."""
    summary = {"step": step, "max_steps": run.max_steps, "loss": last_loss, "output_dir": str(run.out),
               "finished": step >= run.max_steps, "seconds": round(time.perf_counter() - started, 2)}
    run.accelerator.print(f"harmonyset train: {'finished' if summary['finished'] else 'stopped'} at step {step}/"
                          f"{run.max_steps}, last loss {last_loss:.4f}, {summary['seconds']} s; output in {run.out}")
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
