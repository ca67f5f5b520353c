"""Our models as lmms-eval models, installed through the ``lmms_eval.models`` entry point (see setup.py).

lmms-eval calls :func:`manifests` when it builds its model registry (so it must stay cheap: no
torch, no lmms_eval.api import at module level); each manifest points at a class made here on
first import. Names as for lm-eval: ``harmonyset`` (``--model_args model=tiny``),
``harmonyset-baseline`` and ``harmonyset-<registry name>``.
"""

from __future__ import annotations

import functools
from typing import Any

from .adapter import HarnessRequest, bind_rank, make_dispatcher, refuse_requests, registry_variants, stop_strings

_CLASS_PREFIX = "HarmonySetLMMS_"


def class_name(name: str) -> str:
    """The Python class name of harness model ``name`` in this module."""
    return _CLASS_PREFIX + "".join(c if c.isalnum() else "_" for c in name)


def manifests() -> list[Any]:
    """lmms-eval model manifests for every harness name (entry point ``lmms_eval.models``)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, simple_class_path=f"{__name__}.{class_name(name)}")
            for name in registry_variants()]


@functools.cache
def _base_class() -> type:
    from lmms_eval.api.model import lmms

    class HarmonySetLMMS(lmms):
        """A HarmonySet registry model behind lmms-eval's ``generate_until`` (visual: the mp4 path).

        Under ``accelerate launch --num_processes N -m lmms_eval`` it follows lmms-eval's models: an
        accelerator, ``rank``/``world_size`` from it, the model on ``cuda:{local_rank}`` (CPU + gloo
        without GPUs).
        """

        is_simple = True
        DEFAULTS: dict[str, str] = {}

        def __init__(self, batch_size: Any = None, device: Any = None, **kwargs: Any):
            super().__init__()
            bind_rank(self, device)
            self.dispatcher = make_dispatcher(self.DEFAULTS, batch_size, device, kwargs)

        @property
        def device(self) -> Any:
            """The torch device of this rank (the evaluator puts its gather tensors there)."""
            return self._device

        def generate_until(self, requests: list[Any]) -> list[str]:
            """One reply per request; ``args`` are ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``."""
            reqs = []
            for r in requests:
                context, gen_kwargs, to_visual, doc_id, task, split = r.args
                doc = self.task_dict[task][split][doc_id]
                visuals = to_visual(doc) if to_visual else []
                reqs.append(HarnessRequest(prompt=context, doc=doc, until=stop_strings(gen_kwargs),
                                           visuals=visuals if isinstance(visuals, list) else [visuals]))
            return self.dispatcher.generate(reqs)

        def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
            """Refused with the asking tasks named: HarmonySet tasks are single-turn."""
            refuse_requests("generate_until_multi_round", requests)

        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            """Refused with the asking tasks named: our models generate, and HarmonySet tasks are generative."""
            refuse_requests("loglikelihood", requests)

    return HarmonySetLMMS


def __getattr__(attr: str) -> type:
    """The class of a harness model, made on first access (lmms-eval imports ``module.ClassName``)."""
    for name, defaults in registry_variants().items():
        if class_name(name) == attr:
            base = _base_class()
            cls = type(attr, (base,), {"DEFAULTS": defaults, "__module__": __name__,
                                       "__doc__": f"lmms-eval model {name!r}: {defaults or 'model=NAME'}"})
            globals()[attr] = cls
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
