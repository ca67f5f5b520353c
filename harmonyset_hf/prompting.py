"""The prompts a model under evaluation sees, built in one place for the CLI, harness tasks and adapters.

HarmonySet-MC shows the question, the four lettered options and an instruction to answer with
the letter; HarmonySet-OE shows the item's own instruction (one of the paper's templates, Fig. 11)
without the ``<video>`` placeholder: each model adapter puts its media where its chat format wants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .schema import OPTION_LETTERS

MC_ANSWER_INSTRUCTION = "Answer with the option's letter (A, B, C or D) from the given choices directly."

_VIDEO_TOKEN_RE = re.compile(r"^\s*<video>\s*\n?", re.IGNORECASE)


def option_list(options: Sequence[str] | Mapping[str, str]) -> list[str]:
    """The four option texts in A-D order, from a list or from a ``{"A": ..., ...}`` mapping."""
    if isinstance(options, Mapping):
        return [str(options.get(letter, "")) for letter in OPTION_LETTERS]
    return [str(o) for o in options]


def format_options(options: Sequence[str] | Mapping[str, str]) -> str:
    """Options as lines ``A. text`` ... ``D. text``."""
    return "\n".join(f"{letter}. {text}" for letter, text in zip(OPTION_LETTERS, option_list(options)))


def mc_prompt(row: Mapping) -> str:
    """The text prompt of one HarmonySet-MC question: question, lettered options, answer instruction."""
    return f"{row['question'].strip()}\n{format_options(row['options'])}\n{MC_ANSWER_INSTRUCTION}"


def oe_prompt(row: Mapping) -> str:
    """The text prompt of one HarmonySet-OE item: its instruction, without the ``<video>`` placeholder."""
    return _VIDEO_TOKEN_RE.sub("", row["instruction"]).strip()


def prompt_for(config: str, row: Mapping) -> str:
    """The prompt of a row of config ``mc`` or ``oe``."""
    return mc_prompt(row) if config == "mc" else oe_prompt(row)
