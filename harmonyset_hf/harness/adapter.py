"""Our registry models answering harness requests: one dispatcher shared by the lm-eval and lmms-eval adapters.

A harness request gives the context (the prompt built by the task from
:mod:`harmonyset_hf.prompting`), the generation settings, the doc and its visual (the mp4 path).
:class:`RegistryDispatcher` turns each into the row our models take (the doc's fields plus
``video = {"path", "bytes": None}``) and calls ``model.generate(rows, prompts)`` in batches, MC
questions and OE items apart, each with the model named for its config.

Under several processes (``accelerate launch -m lmms_eval`` / ``torchrun ... harmonyset-lm-eval``)
:func:`bind_rank` gives the harness model what the harnesses' own models have (an accelerator, the
rank and world size the evaluators shard requests by, ``cuda:{local_rank}``, gloo on CPU), and the
registry model is built on that device.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from ..distributed import DEFAULT_TIMEOUT_S, close_process_group_at_exit, current_rank, rank_device
from ..errors import HarmonySetError
from ..evaluation.predict import check_model_config
from ..models import MODELS, ModelError, get_model

log = logging.getLogger(__name__)

# `harmonyset-baseline`: a floor for every config in one run.
BASELINE_MC = "baseline-longest"
BASELINE_OE = "baseline-generic"
BASELINE_PAIR = "baseline-frames"  # swap pairs: rates from the frames only, so it ties: the 50 % floor
DEFAULT_BATCH = 8


class UnsupportedRequestError(HarmonySetError, NotImplementedError):
    """A harness asked our models for something other than generation (a NotImplementedError to the harness)."""


def refuse_requests(kind: str, requests: Sequence[Any]) -> NoReturn:
    """Raise :class:`UnsupportedRequestError` naming the request type and the tasks that asked for it.

    The harnesses' model base classes require ``loglikelihood`` (and more); our adapters generate
    answers from a clip and a prompt, which is all the HarmonySet tasks (``generate_until``) need.
    """
    tasks = sorted({str(t) for t in (getattr(r, "task_name", None) for r in requests) if t})
    asked = f" by task(s) {', '.join(tasks)}" if tasks else ""
    raise UnsupportedRequestError(
        f"harmonyset models answer single-turn generate_until requests only; {len(requests)} {kind} "
        f"request(s) were asked{asked}. Run the HarmonySet tasks (harmonyset_mc, harmonyset_oe, "
        "harmonyset_pair) with them, and likelihood or multi-round tasks with a model that supports those.")


@dataclass
class HarnessRequest:
    """One generation request, harness-neutral."""

    prompt: str
    doc: Mapping[str, Any]
    visuals: Sequence[Any]
    until: list[str]


def doc_config(doc: Mapping[str, Any]) -> str:
    """``mc`` for an MC doc (it has a ``question_id``), ``pair`` for a swap-pair doc (``pair_id``), else ``oe``."""
    if "pair_id" in doc:
        return "pair"
    return "mc" if "question_id" in doc else "oe"


def truncate(reply: str, until: Sequence[str]) -> str:
    """``reply`` cut before the first stop string of ``until`` (as the harnesses' own models do)."""
    cut = len(reply)
    for stop in until or ():
        if stop:
            at = reply.find(stop)
            if at != -1:
                cut = min(cut, at)
    return reply[:cut]


def stop_strings(gen_kwargs: Mapping[str, Any] | None) -> list[str]:
    """The ``until`` stop strings of a request's generation settings, as a list."""
    until = (gen_kwargs or {}).get("until") or []
    return [until] if isinstance(until, str) else [str(u) for u in until]


def batch_size_of(value: Any) -> int:
    """The harness's ``--batch_size`` as a chunk size (``auto`` and the like give the default)."""
    text = str(value).strip() if value is not None else ""
    return max(1, int(text)) if text.isdigit() else DEFAULT_BATCH


def usable_device(device: Any) -> str | None:
    """The harness's device for this rank (``cuda`` -> ``cuda:{local_rank}`` under several processes), or None.

    None leaves the choice to the model: no device given in one process, or CUDA asked for on a
    machine without it (the model then runs on the CPU).
    """
    rank = current_rank()
    if device in (None, "") and not rank.distributed:
        return None
    device = str(device or "")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            log.warning("device %s: no CUDA here, the model picks its device", device)
            return None
    return rank_device(device or None, rank)


def bind_rank(lm: Any, device: Any = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """Set a harness model's ``_device``, ``_rank``, ``_world_size`` and ``accelerator`` as the harnesses' models do.

    lm-eval's HFLM and lmms-eval's models make an ``Accelerator`` when launched with several
    processes and take its process index and count; the evaluators shard the requests by them and
    gather through it. Without GPUs the accelerator is a CPU one (gloo). Neither harness destroys the
    process group the accelerator makes, so it is destroyed at exit here. Returns the device for the
    registry model (see :func:`usable_device`).
    """
    import torch

    rank = current_rank()
    chosen = usable_device(device)
    lm._device = torch.device(chosen or rank_device(None, rank))
    if rank.distributed:
        from accelerate import Accelerator, InitProcessGroupKwargs

        accelerator = Accelerator(cpu=lm._device.type != "cuda",
                                  kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=timeout_s))])
        close_process_group_at_exit()
        lm.accelerator = accelerator
        lm._rank, lm._world_size = accelerator.process_index, accelerator.num_processes
        log.info("harmonyset: rank %d of %d on %s", lm._rank, lm._world_size, lm._device)
    return chosen


def constructor_params(name: str) -> set[str]:
    """The keyword parameters the registry model ``name``'s class takes (empty when unknown)."""
    import importlib
    import inspect

    target = MODELS.get(name)
    if not target:
        return set()
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        params = set()
        for klass in cls.__mro__:  # subclasses passing **kwargs on to their parent's options
            init = klass.__dict__.get("__init__")
            if init is not None:
                params |= set(inspect.signature(init).parameters) - {"self", "args", "kwargs"}
        return params
    except (ImportError, AttributeError, TypeError, ValueError):
        return set()


class RegistryDispatcher:
    """Runs registry models (``harmonyset_hf.models``) on harness requests."""

    def __init__(self, model: str | None = None, mc: str | None = None, oe: str | None = None,
                 batch_size: Any = None, device: Any = None, pair: str | None = None,
                 model_options: Mapping[str, Any] | None = None, **model_kwargs: Any):
        if model is None and mc is None and oe is None and pair is None:
            raise ModelError(f"name a model: model=<one of {', '.join(sorted(MODELS))}> "
                             "(or mc=<name>, oe=<name>, pair=<name> per config)")
        self.names = {"mc": mc or model, "oe": oe or model, "pair": pair or model}
        # model_options: options whose names the dispatcher uses itself (openai-api's own `model=`).
        self.model_kwargs = {**model_kwargs, **(model_options or {})}
        self.batch_size = batch_size_of(batch_size)
        # The harness's --batch_size and --device reach models whose constructor takes them.
        self.harness_options = {"batch_size": self.batch_size, "device": usable_device(device)}
        self._models: dict[str, Any] = {}

    def model_for(self, config: str) -> Any:
        """The model answering ``config`` (built once, shared when both configs name the same one)."""
        name = self.names[config]
        if name is None:
            raise ModelError(f"no model answers HarmonySet-{config.upper()} here: pass {config}=<model name>")
        if name not in self._models:
            accepted = constructor_params(name)
            extra = {k: v for k, v in self.harness_options.items()
                     if v is not None and k in accepted and k not in self.model_kwargs}
            self._models[name] = get_model(name, **extra, **self.model_kwargs)
        model = self._models[name]
        check_model_config(model, config)
        return model

    @property
    def name(self) -> str:
        """How results name this model (the model names per config)."""
        names = {n for n in self.names.values() if n}
        return "+".join(sorted(names))

    def generate(self, requests: Sequence[HarnessRequest]) -> list[str]:
        """One reply per request, in order."""
        from tqdm.auto import tqdm

        replies: list[str | None] = [None] * len(requests)
        by_config: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_config.setdefault(doc_config(req.doc), []).append(i)
        models = {config: self.model_for(config) for config in by_config}  # a mismatch fails before any work
        with tqdm(total=len(requests), desc=f"harmonyset {self.name}", unit="item") as bar:
            for config, indices in by_config.items():
                model = models[config]
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start:start + self.batch_size]
                    rows = [self._row(requests[i], model) for i in chunk]
                    out = model.generate(rows, [requests[i].prompt for i in chunk])
                    if len(out) != len(chunk):
                        raise RuntimeError(f"{model.name} returned {len(out)} replies for {len(chunk)} rows")
                    for i, reply in zip(chunk, out):
                        replies[i] = truncate(str(reply), requests[i].until)
                    bar.update(len(chunk))
        log.info("harmonyset %s: %d replies (%s)", self.name, len(requests),
                 ", ".join(f"{len(v)} {k.upper()}" for k, v in by_config.items()))
        return [r or "" for r in replies]

    @staticmethod
    def _row(req: HarnessRequest, model: Any) -> dict:
        row = dict(req.doc)
        if getattr(model, "needs_media", False):
            paths = [v for v in req.visuals if isinstance(v, str)] or [row.get("video_path")]
            if not paths[0]:
                raise ModelError(f"{model.name} needs the video of {row.get('id')!r}, which the request lacks")
            row["video"] = {"path": paths[0], "bytes": None}
        return row


def registry_variants() -> dict[str, dict[str, str]]:
    """Harness model names and the dispatcher options they stand for.

    ``harmonyset`` (``model=NAME`` chooses), ``harmonyset-baseline`` (longest option for MC, the
    generic answer for OE, the frames-only rater for swap pairs) and ``harmonyset-<name>`` for every
    registry model (see :func:`make_dispatcher` for a ``model=`` option there).
    """
    variants: dict[str, dict[str, str]] = {"harmonyset": {}, "harmonyset-baseline": {"mc": BASELINE_MC,
                                                                                   "oe": BASELINE_OE,
                                                                                   "pair": BASELINE_PAIR}}
    for name in sorted(MODELS):
        variants[f"harmonyset-{name}"] = {"model": name}
    return variants


def make_dispatcher(defaults: Mapping[str, str], batch_size: Any, device: Any,
                    kwargs: Mapping[str, Any]) -> RegistryDispatcher:
    """The dispatcher of a harness model: its variant ``defaults``, then ``--model_args``.

    With the plain ``harmonyset`` name ``model=NAME`` picks the registry model; with a
    ``harmonyset-<name>`` one the registry model is fixed and ``model=`` goes to the model itself
    (``harmonyset-openai-api --model_args model=gpt-4o``).
    """
    options = dict(kwargs)
    model_options = {"model": options.pop("model")} if "model" in defaults and "model" in options else {}
    return RegistryDispatcher(batch_size=batch_size, device=device, model_options=model_options,
                              **{**defaults, **options})
