"""The prompts a model under evaluation sees, built in one place for the CLI, harness tasks and adapters.

HarmonySet-MC shows the question, the four lettered options and an instruction to answer with
the letter; HarmonySet-OE shows the item's own instruction (one of the paper's templates, Fig. 11)
without the ``<video>`` placeholder: each model adapter puts its media where its chat format wants.
An item without an instruction gets one of the paper's templates, drawn by the digest of its id
(:func:`instruction_for`), the same in predict, the harness tasks, training and the export.
The swap-pair task asks every version of a video the same 1-10 music-fit rating question.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources

from .schema import OPTION_LETTERS

MC_ANSWER_INSTRUCTION = "Answer with the option's letter (A, B, C or D) from the given choices directly."

# The swap-pair task (`harmonyset derive swap`): the same prompt for a video with its own music and with
# another item's, so only the music tells them apart. The four aspects are the paper's.
PAIR_RATING_PROMPT = (
    "Watch the video and listen to its background music. How well does the music fit the video, considering "
    "rhythm and synchronization, theme and content, emotion, and cultural relevance? Rate the fit on a scale "
    "from 1 (the music does not fit the video at all) to 10 (the music fits the video perfectly). "
    "Answer with the number only."
)

INSTRUCTION_TEMPLATES_FILE = "prompts/instruction_templates.json"

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


@functools.cache
def instruction_templates() -> tuple[str, ...]:
    """The paper's instruction templates (Fig. 11), each starting with ``<video>\\n``."""
    text = resources.files("harmonyset_hf").joinpath(INSTRUCTION_TEMPLATES_FILE).read_text(encoding="utf-8")
    return tuple(json.loads(text))


def has_instruction(row: Mapping) -> bool:
    """Whether a row carries its own (non-empty) instruction."""
    value = row.get("instruction")
    return isinstance(value, str) and bool(_VIDEO_TOKEN_RE.sub("", value).strip())


def instruction_for(row: Mapping) -> str:
    """A row's instruction with ``<video>\\n`` in front; without one, a paper template drawn by the sha1 of its id."""
    if has_instruction(row):
        return "<video>\n" + _VIDEO_TOKEN_RE.sub("", row["instruction"]).strip()
    templates = instruction_templates()
    return templates[int(hashlib.sha1(str(row["id"]).encode()).hexdigest(), 16) % len(templates)]


def oe_prompt(row: Mapping) -> str:
    """The text prompt of one HarmonySet-OE item: its instruction (or its drawn template), without ``<video>``."""
    return _VIDEO_TOKEN_RE.sub("", instruction_for(row)).strip()


def pair_prompt(row: Mapping) -> str:
    """The text prompt of one version of a swap pair: the music-fit rating question (the same for every row)."""
    return PAIR_RATING_PROMPT


def prompt_for(config: str, row: Mapping) -> str:
    """The prompt of a row of config ``mc``, ``oe`` or ``pair``."""
    if config == "pair":
        return pair_prompt(row)
    return mc_prompt(row) if config == "mc" else oe_prompt(row)
