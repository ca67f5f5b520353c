"""The accelerate recipe for fine-tuning Qwen2.5-Omni's thinker on ``instruct``: config, collate, loop.

``python -m harmonyset_hf.train`` (or ``accelerate launch -m harmonyset_hf.train``) runs :func:`main`.
"""

from .loop import (
    CHECKPOINT_RE,
    STATE_FILE,
    EpochShuffle,
    build_data,
    build_model,
    checkpoints,
    keep_trainable_only,
    load_trainable_only,
    main,
    micro_batches,
    resolve_resume,
    save_final,
    train,
)

__all__ = [
    "CHECKPOINT_RE",
    "EpochShuffle",
    "STATE_FILE",
    "build_data",
    "build_model",
    "checkpoints",
    "keep_trainable_only",
    "load_trainable_only",
    "main",
    "micro_batches",
    "resolve_resume",
    "save_final",
    "train",
]
