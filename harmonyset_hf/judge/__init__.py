"""HarmonySet-OE judges: the paper's LLM judge, the embedding proxy, the guard against responses that address it."""

from .llm_judge import (
    DEFAULT_JUDGE_MODEL,
    FOLLOWUP_PROMPT,
    JUDGE_KINDS,
    PROMPT_FILES,
    PROMPT_MODES,
    EmbeddingJudge,
    JudgeResult,
    LLMJudge,
    ScoreParseError,
    build_judge_prompt,
    judge_template,
    make_judge,
    parse_judge_scores,
    prompt_sha256,
    sentence_encoder,
    summarize,
)

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "EmbeddingJudge",
    "FOLLOWUP_PROMPT",
    "JUDGE_KINDS",
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
