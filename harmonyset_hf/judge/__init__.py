"""HarmonySet-OE judges: the protocol, the paper's LLM judge, the embedding proxy, one config, the guard.

- :mod:`.base`: the :class:`Judge` protocol every judge follows;
- :mod:`.llm_judge`: the paper's judge (GPT-4o, Fig. 13 prompt), its prompt, reply parsing, results;
- :mod:`.embedding`: the offline MiniLM proxy (not comparable to the paper's numbers);
- :mod:`.config`: :class:`JudgeConfig` from CLI flags, environment or harness metadata, and
  :func:`make_judge`, the one factory;
- :mod:`.guard`: fencing and detecting responses that address the judge (the ``hardened`` mode).
"""

from .base import Judge
from .config import JUDGE_ENV, JUDGE_KINDS, JudgeConfig, make_judge
from .embedding import EMBED_HI, EMBED_LO, EmbeddingJudge, sentence_encoder
from .llm_judge import (
    DEFAULT_JUDGE_MODEL,
    FOLLOWUP_PROMPT,
    PROMPT_FILES,
    PROMPT_MODES,
    JudgeResult,
    LLMJudge,
    ScoreParseError,
    build_judge_prompt,
    judge_template,
    parse_judge_scores,
    prompt_sha256,
    summarize,
)

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "EMBED_HI",
    "EMBED_LO",
    "EmbeddingJudge",
    "FOLLOWUP_PROMPT",
    "JUDGE_ENV",
    "JUDGE_KINDS",
    "Judge",
    "JudgeConfig",
    "JudgeResult",
    "LLMJudge",
    "PROMPT_FILES",
    "PROMPT_MODES",
    "ScoreParseError",
    "build_judge_prompt",
    "judge_template",
    "make_judge",
    "parse_judge_scores",
    "prompt_sha256",
    "sentence_encoder",
    "summarize",
]
