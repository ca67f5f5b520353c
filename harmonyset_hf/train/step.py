"""One optimizer step of the recipe: ``grad_accum`` micro-batches, the loss averaged over the supervised tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import HarmonySetError
from .setup import Run


class TrainError(HarmonySetError):
    """A training run whose own bookkeeping went wrong (not a bad input: a bug to report)."""


@dataclass
class StepResult:
    """What one optimizer step did: its loss per supervised token, those tokens, the gradient norm, the rate."""

    loss: float
    tokens: int
    grad_norm: float | None
    lr: float


def micro_batches(accelerator, loader, start: int):
    """Batches forever, epoch after epoch, starting ``start`` batches in (skipped without decoding them)."""
    epoch, skip = divmod(start, len(loader))
    while True:
        loader.set_epoch(epoch)
        yield from accelerator.skip_first_batches(loader, skip) if skip else loader
        epoch, skip = epoch + 1, 0


def train_step(run: Run, batches) -> StepResult:
    """Forward and backward ``grad_accum`` micro-batches from ``batches``, then clip, step and schedule once."""
    cfg, accelerator = run.cfg, run.accelerator
    micro = [next(batches) for _ in range(cfg.grad_accum)]
    labels = [b.pop("labels")[:, 1:] for b in micro]  # position t predicts token t+1
    # Normalise by the supervised tokens of the whole step, over all processes: every token weighs the same.
    tokens = accelerator.reduce(sum((lab != -100).sum() for lab in labels).to(accelerator.device), "sum")
    loss_sum = torch.zeros((), device=accelerator.device)
    for batch, lab in zip(micro, labels):
        # accumulate(): no gradient all-reduce before the last micro-batch (DDP), DeepSpeed's own counting.
        with accelerator.accumulate(run.model):
            logits = run.model(**batch, use_audio_in_video=True, use_cache=False).logits[:, :-1]
            ce = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                   lab.reshape(-1), ignore_index=-100, reduction="sum")
            # backward() divides by grad_accum and DDP averages over processes: undo both, so the step's
            # gradient is that of the mean over all its supervised tokens.
            accelerator.backward(ce * cfg.grad_accum * accelerator.num_processes / tokens.clamp(min=1))
        loss_sum += ce.detach()
    if not accelerator.sync_gradients:  # the optimizer would step on a partial accumulation
        raise TrainError(f"micro-batch count out of step with the accumulation counter (grad_accum={cfg.grad_accum})")
    grad_norm = accelerator.clip_grad_norm_(run.params, cfg.max_grad_norm) if cfg.max_grad_norm else None
    lr = run.scheduler.get_last_lr()[0]  # the rate this step used (HF warmup starts at 0)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    loss = (accelerator.reduce(loss_sum, "sum") / tokens.clamp(min=1)).item()
    return StepResult(loss, int(tokens), None if grad_norm is None else float(grad_norm), lr)
