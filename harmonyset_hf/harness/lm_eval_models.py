"""Our models as lm-eval models (multimodal: they take the mp4 path the HarmonySet tasks give as visual).

lm-eval 0.4.13 has no plugin entry point for models, so :func:`register` adds them to its registry
and ``harmonyset-lm-eval`` calls it before lm-eval's own CLI. Names (see
:func:`harmonyset_hf.harness.adapter.registry_variants`): ``harmonyset`` (``--model_args model=tiny``),
``harmonyset-baseline`` and ``harmonyset-<registry name>``; other ``--model_args`` go to the model.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM

from .adapter import HarnessRequest, bind_rank, make_dispatcher, refuse_requests, registry_variants, stop_strings


class HarmonySetLM(LM):
    """A HarmonySet registry model behind lm-eval's ``generate_until`` (video tasks only).

    Data-parallel like lm-eval's HFLM: under ``accelerate launch`` / ``torchrun`` each rank gets its
    share of the requests (``rank``/``world_size``), runs on ``cuda:{local_rank}`` (CPU and gloo
    without GPUs) and the evaluator gathers through the accelerator.
    """

    MULTIMODAL = True
    DEFAULTS: dict[str, str] = {}

    def __init__(self, batch_size: Any = None, max_batch_size: Any = None, device: Any = None, **kwargs: Any):
        super().__init__()
        bind_rank(self, device)
        self.dispatcher = make_dispatcher(self.DEFAULTS, batch_size, device, kwargs)

    def all_gather(self, tensor: Any) -> Any:
        """The tensor of every rank, concatenated (as HFLM does, through the accelerator)."""
        return self.accelerator.gather(tensor) if self.world_size > 1 else tensor

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        """Every rank's ``obj`` on ``dst`` (None elsewhere)."""
        if self.world_size <= 1:
            return [obj]
        import torch.distributed as dist

        result = [None] * self.world_size if self.rank == dst else None
        dist.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world_size > 1:
            self.accelerator.wait_for_everyone()

    @property
    def tokenizer_name(self) -> str:
        """Names the (absent) chat template in lm-eval's cache keys."""
        return f"harmonyset:{self.dispatcher.name}"

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The messages' text joined: each adapter applies its own chat format to the prompt."""
        return "\n\n".join(str(m.get("content", "")) for m in chat_history)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """One reply per request; ``args`` are ``(context, gen_kwargs, {"visual": [mp4 path]})``."""
        reqs = []
        for r in requests:
            context, gen_kwargs = r.args[0], r.args[1]
            media = r.args[2] if len(r.args) > 2 and isinstance(r.args[2], dict) else {}
            visuals = media.get("visual") or []
            reqs.append(HarnessRequest(prompt=context, doc=r.doc, until=stop_strings(gen_kwargs),
                                       visuals=visuals if isinstance(visuals, list) else [visuals]))
        replies = self.dispatcher.generate(reqs)
        for r, reply in zip(requests, replies):
            self.cache_hook.add_partial("generate_until", r.args[:2], reply)
        return replies

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Refused with the asking tasks named: our models generate, and HarmonySet tasks are generative."""
        refuse_requests("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Refused with the asking tasks named: our models generate, and HarmonySet tasks are generative."""
        refuse_requests("loglikelihood_rolling", requests)


def model_classes() -> dict[str, type[HarmonySetLM]]:
    """One lm-eval model class per harness name, each with its dispatcher defaults."""
    out = {}
    for name, defaults in registry_variants().items():
        cls_name = "HarmonySetLM_" + "".join(c if c.isalnum() else "_" for c in name)
        out[name] = type(cls_name, (HarmonySetLM,), {"DEFAULTS": defaults, "__module__": __name__,
                                                    "__doc__": f"lm-eval model {name!r}: {defaults or 'model=NAME'}"})
    return out


def register() -> list[str]:
    """Add our models to lm-eval's registry (after its own, which load lazily when it is empty)."""
    import lm_eval.models  # noqa: F401  (registers lm-eval's models; an empty registry would skip them)
    from lm_eval.api.registry import model_registry

    names = []
    for name, cls in model_classes().items():
        if name not in model_registry:
            model_registry.register(name)(cls)
        names.append(name)
    return names
