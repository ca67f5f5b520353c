"""The protocol every HarmonySet-OE judge follows, so that evaluation, audits and harness tasks can use any.

A judge is any object with:

- ``kind: str``: its registry name (``openai`` for the paper's LLM judge, ``embedding`` for the proxy);
- ``score_items(items, concurrency=None, progress=True) -> list[JudgeResult]``: one result per item,
  in order. An item is ``{"id", "response", "reference"}``; a result holds four 1-10 scores
  (``rhythm``, ``theme``, ``emotion``, ``culture``) or ``failed`` with the reason: an item that
  cannot be judged fails alone, the rest of the batch goes on;
- ``describe() -> dict``: what judged (kind, model, prompt hash, whether it is a proxy), written
  into result files; never a secret;
- ``close()``: release what the judge holds (connections).

Judges are built from a :class:`harmonyset_hf.judge.config.JudgeConfig` (flags, environment or
harness metadata) or by name with :func:`harmonyset_hf.judge.config.make_judge`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .llm_judge import JudgeResult


@runtime_checkable
class Judge(Protocol):
    """What evaluation needs from a HarmonySet-OE judge."""

    kind: str

    def score_items(self, items: list[dict], concurrency: int | None = None,
                    progress: bool = True) -> list[JudgeResult]:
        """One result per item of ``items``, in order (four 1-10 scores, or failed with the reason)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What judged, for result files (kind, model, prompt hash, proxy or not); never a secret."""
        ...

    def close(self) -> None:
        """Release what the judge holds."""
        ...
