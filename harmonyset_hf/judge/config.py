"""Which judge scores HarmonySet-OE: one :class:`JudgeConfig`, from CLI flags, the environment or harness metadata.

The three ways a judge is chosen all end here: ``harmonyset eval oe`` / ``audit judge`` flags
(:meth:`JudgeConfig.from_args`), lm-eval's ``--metadata`` keys and lmms-eval's environment
(:meth:`JudgeConfig.from_metadata`); :meth:`JudgeConfig.build` makes the judge with
:func:`make_judge`, the one factory. The endpoint's model, URL and key may also come from
``HARMONYSET_JUDGE_MODEL``/``_BASE_URL``/``_API_KEY`` (read by :mod:`harmonyset_hf.llm`); a key is
never part of a config, so a config can be logged, hashed and carried in harness docs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ..llm import DEFAULT_DEADLINE
from .base import Judge
from .embedding import EmbeddingJudge
from .llm_judge import PROMPT_MODES, LLMJudge

JUDGE_KINDS = {"llm": LLMJudge, "openai": LLMJudge, "gpt": LLMJudge, "embedding": EmbeddingJudge}
JUDGE_ENV = "HARMONYSET_JUDGE"  # the kind, when no flag or metadata names one
# lm-eval --metadata key -> JudgeConfig field. An API key is never read from metadata (it would be logged).
METADATA_KEYS = {"judge": "kind", "judge_model": "model", "judge_base_url": "base_url", "judge_mode": "mode",
                 "judge_concurrency": "concurrency", "judge_cache": "cache_dir"}


def make_judge(kind: str = "llm", **kwargs: Any) -> Judge:
    """A judge by name: ``llm`` (the paper's; also ``openai``/``gpt``) or ``embedding`` (offline proxy)."""
    try:
        cls = JUDGE_KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown judge {kind!r}; expected one of {', '.join(JUDGE_KINDS)}") from None
    return cls(**kwargs)


@dataclass(frozen=True)
class JudgeConfig:
    """The judge settings of one evaluation: kind, endpoint, prompt mode, concurrency, cache (no secret)."""

    kind: str = "openai"  # openai (the paper's LLM judge; also llm, gpt) or embedding (the offline proxy)
    model: str | None = None  # None: $HARMONYSET_JUDGE_MODEL, else the judge's default
    base_url: str | None = None  # None: $HARMONYSET_JUDGE_BASE_URL, else the OpenAI API
    mode: str = "paper"  # the LLM judge's prompt: paper (Fig. 13 verbatim) or hardened
    concurrency: int | None = None  # parallel judge calls; None: $HARMONYSET_JUDGE_CONCURRENCY or the default
    cache_dir: str | None = None  # judge reply cache; None: the user cache
    deadline: float = DEFAULT_DEADLINE  # seconds one judge call may take in all (--timeout), retries included

    def __post_init__(self) -> None:
        if self.kind not in JUDGE_KINDS:
            raise ConfigError(f"unknown judge {self.kind!r}; expected one of {', '.join(JUDGE_KINDS)}")
        if self.mode not in PROMPT_MODES:
            raise ConfigError(f"unknown judge prompt mode {self.mode!r}; expected one of {', '.join(PROMPT_MODES)}")
        if self.is_proxy and self.mode != "paper":
            raise ConfigError("--judge-mode applies to the openai judge only (the embedding judge reads no prompt)")
        if self.concurrency is not None and (not isinstance(self.concurrency, int) or self.concurrency < 1):
            raise ConfigError(f"judge concurrency must be a whole number of at least 1, not {self.concurrency!r}")
        if not (isinstance(self.deadline, (int, float)) and self.deadline > 0):
            raise ConfigError(f"judge deadline must be a number of seconds above 0, not {self.deadline!r}")

    @property
    def is_proxy(self) -> bool:
        """True for the offline embedding proxy (its numbers are not comparable to the paper's)."""
        return JUDGE_KINDS[self.kind] is EmbeddingJudge

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> JudgeConfig:
        """From the judge flags: --judge, --judge-{mode,model,base-url}, --concurrency, --cache, --timeout."""
        return cls(kind=args.judge, model=args.judge_model, base_url=args.judge_base_url, mode=args.judge_mode,
                   concurrency=args.concurrency, cache_dir=args.cache,
                   deadline=getattr(args, "timeout", None) or DEFAULT_DEADLINE)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None = None,
                      environ: Mapping[str, str] | None = None) -> JudgeConfig:
        """From harness metadata (lm-eval's ``--metadata`` keys ``judge``, ``judge_model``, ...), else the environment.

        The kind falls back to ``$HARMONYSET_JUDGE``, then ``openai``; endpoint settings left out here are
        read from ``HARMONYSET_JUDGE_*`` by the client. Metadata holding an API key is refused.
        """
        metadata = metadata or {}
        if "judge_api_key" in metadata:
            raise ConfigError("never pass an API key in --metadata (it is logged): set HARMONYSET_JUDGE_API_KEY")
        environ = os.environ if environ is None else environ
        given: dict[str, Any] = {field: metadata[key] for key, field in METADATA_KEYS.items()
                                 if metadata.get(key) not in (None, "")}
        kind = str(given.pop("kind", "") or environ.get(JUDGE_ENV, "").strip() or "openai")
        if "concurrency" in given:
            try:
                given["concurrency"] = int(given["concurrency"])
            except (TypeError, ValueError):
                raise ConfigError(f"judge_concurrency must be a whole number, not {given['concurrency']!r}") from None
        return cls(kind=kind, **{k: v if k == "concurrency" else str(v) for k, v in given.items()})

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON-safe; holds no secret)."""
        return asdict(self)

    def build(self) -> Judge:
        """The judge these settings name (the proxy ignores the endpoint settings, as it reads no prompt)."""
        if self.is_proxy:
            return make_judge(self.kind)
        return make_judge(self.kind, model=self.model, base_url=self.base_url, mode=self.mode,
                          concurrency=self.concurrency, cache_dir=self.cache_dir, deadline=self.deadline)
