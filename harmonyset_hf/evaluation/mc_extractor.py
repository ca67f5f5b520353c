"""MC answers of many replies: the rules of mc_reading, and optionally an LLM for what they call invalid.

The LLM extractor follows VLMEvalKit's idea (a judge model matches a free-form reply to the
options, answering one letter or ``Z`` for none): it sees only the replies the rules call invalid,
its calls go through :class:`harmonyset_hf.llm.LLMClient` (cached, resumable), and its reads keep
their own reason, so a result can count rule reads, LLM reads and invalid answers apart and stay
comparable with a rules-only run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..llm import ChatRequest, LLMClient
from ..prompting import format_options
from .mc_reading import Choice, read_choice, reason_kind

EXTRACTORS = ("rules", "llm")
LLM_READ = "LLM extractor"
LLM_NONE = "LLM extractor found no single option"
LLM_FAILED = "LLM extractor call failed"
_PROMPT = """You help grade a multiple-choice test. Below are a question, its options and a reply written by \
a model. Say which single option the reply chooses as its answer.
Output exactly one uppercase letter: {letters} for the option the reply chooses, or Z when the reply \
chooses no option, refuses, or offers more than one option. Judge only what the reply chooses, not \
which option is right.

Question: {question}
Options:
{options}
Reply: <<<{reply}>>>
Your output (one letter):"""
_LLM_LETTER = re.compile(r"^\W*([A-DZ])\W*$")


def llm_prompt(reply: str, options: Sequence[str] | Mapping[str, str], question: str = "") -> str:
    """The extractor's prompt for one reply (the reply is fenced so it reads as data)."""
    return _PROMPT.format(letters=", ".join("ABCD"), question=question.strip() or "(not given)",
                          options=format_options(options), reply=reply.replace(">>>", "> > >"))


def _llm_choice(text: str | None, rules: Choice) -> Choice:
    m = _LLM_LETTER.match(text or "")
    if not m or m.group(1) == "Z":
        return Choice(None, f"{LLM_NONE} (rules: {rules.reason})")  # keep why the rules gave up too
    return Choice(m.group(1), LLM_READ)


def read_choices(items: Sequence[Mapping[str, Any]], client: LLMClient | None = None,
                 progress: bool = False) -> list[Choice]:
    """The choice of each ``{"response", "options", "question"?}``; with ``client`` the LLM reads the invalid ones."""
    choices = [read_choice(item.get("response"), item.get("options")) for item in items]
    if client is None:
        return choices
    todo = [i for i, (item, c) in enumerate(zip(items, choices))
            if c.letter is None and str(item.get("response") or "").strip() and item.get("options")]
    requests = [ChatRequest([{"role": "user", "content": llm_prompt(str(items[i]["response"]), items[i]["options"],
                                                                    str(items[i].get("question") or ""))}],
                            params={"temperature": 0, "max_tokens": 4}, metadata={"purpose": "mc-extractor"})
                for i in todo]
    for i, result in zip(todo, client.complete_many(requests, progress=progress, desc="mc extractor")):
        choices[i] = (_llm_choice(result.text, choices[i]) if result.ok
                      else Choice(None, f"{LLM_FAILED} (rules: {choices[i].reason})"))
    return choices


def read_counts(choices: Sequence[Choice]) -> dict[str, Any]:
    """How the answers were read: by the rules, by the LLM, invalid; and the count of each reason."""
    by_llm = sum(c.letter is not None and c.reason == LLM_READ for c in choices)
    read = sum(c.letter is not None for c in choices)
    return {"rule_reads": read - by_llm, "llm_reads": by_llm, "invalid": len(choices) - read,
            "reasons": dict(Counter(reason_kind(c.reason) for c in choices).most_common())}
