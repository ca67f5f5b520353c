"""train/step.py on its own: one optimizer step's loss, and an error (not an assert) when accumulation is off."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from harmonyset_hf.train import Run, StepResult, TrainError, train_step
from harmonyset_hf.train.config import TrainConfig


class TinyLM(torch.nn.Module):
    """A 7-token language model with the call signature the step uses (a real torch module, not our code)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(7, 7)

    def forward(self, input_ids, use_audio_in_video=True, use_cache=False):
        return SimpleNamespace(logits=self.table(input_ids))


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps process-wide state; leave none behind for the other training tests."""
    from accelerate.state import AcceleratorState, GradientState

    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def make_run(accumulation_steps: int, grad_accum: int) -> Run:
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin

    plugin = GradientAccumulationPlugin(num_steps=accumulation_steps, sync_with_dataloader=False)
    accelerator = Accelerator(cpu=True, gradient_accumulation_plugin=plugin)
    model = TinyLM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    cfg = TrainConfig(grad_accum=grad_accum, max_grad_norm=0.0)
    return Run(cfg, accelerator, None, model, optimizer, scheduler, None, list(model.parameters()), 2, 10, "no", {})


BATCH = {"input_ids": torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]]),
         "labels": torch.tensor([[-100, 2, 3, -100], [-100, -100, 2, 1]])}


def test_a_step_returns_the_mean_loss_over_supervised_tokens(fresh_accelerate_state):
    """Loss = cross-entropy summed over the step's supervised tokens / their count (labels shifted by one)."""
    run = make_run(accumulation_steps=1, grad_accum=1)
    with torch.no_grad():
        logits = run.model(input_ids=BATCH["input_ids"]).logits[:, :-1]
        labels = BATCH["labels"][:, 1:]
        expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1), ignore_index=-100)
    before = run.model.table.weight.detach().clone()
    result = train_step(run, iter([{k: v.clone() for k, v in BATCH.items()}]))
    assert isinstance(result, StepResult) and result.tokens == 4 and result.grad_norm is None
    assert result.loss == pytest.approx(float(expected), rel=1e-6) and result.lr == pytest.approx(0.1)
    assert not torch.equal(before, run.model.table.weight)  # the optimizer stepped


def test_accumulation_out_of_step_is_an_error_not_an_assert(fresh_accelerate_state):
    """One micro-batch per step against an accumulator that waits for two: a TrainError, and no optimizer step."""
    run = make_run(accumulation_steps=2, grad_accum=1)
    before = run.model.table.weight.detach().clone()
    with pytest.raises(TrainError, match="micro-batch count out of step"):
        train_step(run, iter([{k: v.clone() for k, v in BATCH.items()}]))
    assert torch.equal(before, run.model.table.weight)
