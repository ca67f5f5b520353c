"""The accelerate recipe for fine-tuning Qwen2.5-Omni's thinker on ``instruct``: config, collate, setup, step, loop.

``python -m harmonyset_hf.train`` (or ``accelerate launch -m harmonyset_hf.train``) runs :func:`main`.
"""

from .loop import finish_run, log_step, main, save_checkpoint, save_final, start_run, train
from .setup import (
    CHECKPOINT_RE,
    STATE_FILE,
    EpochShuffle,
    Run,
    build_data,
    build_model,
    check_trackers,
    checkpoints,
    choose_precision,
    keep_trainable_only,
    load_trainable_only,
    prepare_run,
    resolve_resume,
    resume_run,
)
from .step import StepResult, TrainError, micro_batches, train_step

__all__ = [
    "CHECKPOINT_RE",
    "STATE_FILE",
    "EpochShuffle",
    "Run",
    "StepResult",
    "TrainError",
    "build_data",
    "build_model",
    "check_trackers",
    "checkpoints",
    "choose_precision",
    "finish_run",
    "keep_trainable_only",
    "load_trainable_only",
    "log_step",
    "main",
    "micro_batches",
    "prepare_run",
    "resolve_resume",
    "resume_run",
    "save_checkpoint",
    "save_final",
    "start_run",
    "train",
    "train_step",
]
