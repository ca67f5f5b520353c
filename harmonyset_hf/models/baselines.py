"""Reference baselines that need no GPU and no media: floors every real model must beat.

- ``baseline-random`` (MC): a seeded uniformly random letter; the same item always gets the same
  letter for a given seed, however the run is split or resumed.
- ``baseline-longest`` (MC): the longest option, a classic artefact check of curated MC sets.
- ``baseline-generic`` (OE): one fixed, generic four-section answer for every video, the floor of
  what the judge gives a reply that says nothing about the clip.
"""

from __future__ import annotations

import hashlib

from ..prompting import option_list
from ..schema import OPTION_LETTERS
from ..text import join_sections
from .base import ModelError

GENERIC_ANSWER = join_sections({
    "rhythm": "The music's tempo broadly follows the pace of the video, and a few visual transitions "
              "roughly coincide with changes in the music, although not every cut is on the beat.",
    "theme": "The music suits the general content of the video and supports what is shown without "
             "adding a separate story of its own.",
    "emotion": "The music sets a mood that is mostly consistent with the emotions conveyed by the "
               "visuals, giving the video a pleasant atmosphere.",
    "culture": "There are no strong cultural elements in the video, and the music does not refer to a "
               "specific culture, so cultural relevance is neutral.",
})


class _Baseline:
    """Common options of the baselines (they accept and ignore ``frames``)."""

    needs_media = False
    config = "mc"
    configs: tuple[str, ...] = ("mc",)

    def __init__(self, seed: int = 0, frames: int | None = None):
        self.seed = int(seed)

    def generate(self, batch: list[dict], prompts: list[str]) -> list[str]:
        """One answer per row, once every row is checked to be of the baseline's config."""
        key = "question_id" if self.config == "mc" else "instruction"
        for row in batch:
            if key not in row:
                raise ModelError(f"{self.name} answers HarmonySet-{self.config.upper()} rows; "
                                 f"row {row.get('id')!r} has no {key!r}")
        return [self._answer(row) for row in batch]

    def _answer(self, row: dict) -> str:
        raise NotImplementedError


class RandomBaseline(_Baseline):
    """A seeded random letter per MC question."""

    name = "baseline-random"

    def _answer(self, row: dict) -> str:
        """A random letter, a function of (seed, question_id) only."""
        digest = hashlib.sha256(f"{self.seed}:{row['question_id']}".encode()).digest()
        return OPTION_LETTERS[digest[0] % len(OPTION_LETTERS)]


class LongestOptionBaseline(_Baseline):
    """The letter of the longest option (the first one on ties)."""

    name = "baseline-longest"

    def _answer(self, row: dict) -> str:
        """The letter of the option with the most characters."""
        options = option_list(row["options"])
        best = max(range(len(options)), key=lambda i: (len(options[i]), -i))
        return OPTION_LETTERS[best]


class GenericAnswerBaseline(_Baseline):
    """The same generic four-section OE answer for every item."""

    name = "baseline-generic"
    config = "oe"
    configs = ("oe",)

    def _answer(self, row: dict) -> str:
        """The fixed generic answer."""
        return GENERIC_ANSWER
