"""Model adapters behind one small protocol (see :mod:`harmonyset_hf.models.base`) and their registry.

The registry maps a name to a lazy ``"module:Class"`` import string, so that listing models never
imports torch or transformers. Other modules add adapters with :func:`register_model` or by
adding a line to :data:`MODELS`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .base import Model, ModelError, Reply, stopped_on_length

MODELS: dict[str, str] = {
    "baseline-random": "harmonyset_hf.models.baselines:RandomBaseline",
    "baseline-longest": "harmonyset_hf.models.baselines:LongestOptionBaseline",
    "baseline-generic": "harmonyset_hf.models.baselines:GenericAnswerBaseline",
    "baseline-frames": "harmonyset_hf.models.pair_raters:FramesOnlyRater",
    "baseline-sync": "harmonyset_hf.models.pair_raters:SyncRater",
    "qwen2_5_omni": "harmonyset_hf.models.qwen2_5_omni:QwenOmniModel",
    "tiny": "harmonyset_hf.models.qwen2_5_omni:TinyOmniModel",
    "openai-api": "harmonyset_hf.models.openai_api:OpenAIChatModel",
}

__all__ = ["MODELS", "Model", "ModelError", "Reply", "available_models", "get_model", "parse_model_args",
           "register_model", "stopped_on_length"]


def register_model(name: str, target: str) -> None:
    """Register (or replace) a model under ``name``; ``target`` is ``"package.module:ClassName"``."""
    if ":" not in target:
        raise ModelError(f"model target {target!r} must look like 'package.module:ClassName'")
    MODELS[name] = target


def available_models() -> list[str]:
    """The names ``get_model`` accepts."""
    return sorted(MODELS)


def get_model(name: str, **kwargs: Any) -> Model:
    """Build the registered model ``name`` with keyword options (``seed``, ``frames``, adapter options)."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    module_name, _, class_name = MODELS[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ModelError(f"model {name!r}: cannot import {MODELS[name]} ({err})") from err
    unknown = _unknown_options(cls, kwargs)
    if unknown:
        raise ModelError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"it takes {', '.join(_options(cls))}")
    try:
        model = cls(**kwargs)
    except TypeError as err:
        raise ModelError(f"model {name!r}: bad options {sorted(kwargs)} ({err})") from err
    if not isinstance(model, Model):
        raise ModelError(f"model {name!r} ({MODELS[name]}) lacks name/needs_media/generate")
    return model


def _options(cls: type) -> list[str]:
    """Keyword options of ``cls``, following ``**kwargs`` that a subclass hands to its base class."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return []  # a **kwargs all the way down: anything goes


def _unknown_options(cls: type, kwargs: dict[str, Any]) -> list[str]:
    accepted = _options(cls)
    return sorted(k for k in kwargs if k not in accepted) if accepted else []


def _coerce(value: str) -> Any:
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def parse_model_args(text: str | None) -> dict[str, Any]:
    """``"k=v,k2=v2"`` -> ``{"k": v, "k2": v2}`` with ints, floats, booleans and None read as such."""
    out: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ModelError(f"bad --model-args entry {part!r}: expected key=value")
        out[key.strip()] = _coerce(value.strip())
    return out
