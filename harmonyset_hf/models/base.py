"""The protocol every model adapter follows, so that `harmonyset predict` and the harness tasks can run it.

A model is any object with:

- ``name: str``: how predictions and reports name it (written into each prediction line);
- ``needs_media: bool``: whether it looks at the clip. When False, callers drop the ``video``
  column and never decode media (the baselines). When True, each row's ``video`` is the
  undecoded ``{"path": ..., "bytes": ...}`` of the ``datasets`` ``Video`` feature; load frames and
  audio with :func:`harmonyset_hf.media.load_clip` (``frames`` from ``--frames``, 16 by default);
- ``configs`` (optional): the configs it answers, e.g. ``("mc",)``; predict refuses others up front;
- ``generate(batch, prompts) -> list[str]``: one reply per row, in order. ``batch`` holds rows of
  ``load_dataset(HUB, "mc"|"oe")`` (see ``schema.features``); ``prompts`` holds the matching text
  prompts from :mod:`harmonyset_hf.prompting` (never build a second prompt format in an adapter).
  A reply may be a :class:`Reply` (a ``str``) that says whether generation stopped on its length
  limit; `harmonyset predict` records it as ``truncated`` and `harmonyset eval` reports the share.

Adapters are registered by name in :data:`harmonyset_hf.models.MODELS` as lazy ``"module:Class"``
strings and built with ``get_model(name, **kwargs)``; the class takes its options as keyword
arguments (``--model-args k=v,...`` on the command line), plus ``seed`` and ``frames``.
Errors about bad options or inputs subclass :class:`ModelError`.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from ..errors import HarmonySetError


class ModelError(HarmonySetError):
    """A model that cannot be built or run (unknown name, bad option, missing dependency)."""


class Reply(str):
    """A reply's text that also says whether generation stopped on the length limit (None: not known)."""

    truncated: bool | None

    def __new__(cls, text: str, truncated: bool | None = None) -> Reply:
        """The text, marked with ``truncated``."""
        reply = super().__new__(cls, text)
        reply.truncated = truncated
        return reply


def stopped_on_length(reply: object) -> bool | None:
    """Whether a model's reply stopped on its length limit (None when the model does not say)."""
    return getattr(reply, "truncated", None)


@runtime_checkable
class Model(Protocol):
    """What `harmonyset predict` needs from a model."""

    name: str
    needs_media: bool

    def generate(self, batch: list[dict], prompts: list[str]) -> list[str]:
        """One reply per row of ``batch`` (``prompts[i]`` is the prompt of ``batch[i]``)."""
        ...


def load_problem(path: str | os.PathLike, err: Exception) -> str:
    """Why a checkpoint or processor failed to load, on one line (a typo'd folder is tried as a Hub repo id)."""
    from pathlib import Path

    text = " ".join(str(err).split())
    return text if Path(path).exists() else f"no such folder, and as a Hub repo id: {text}"
