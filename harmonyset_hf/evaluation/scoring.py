"""Scoring: MC answer extraction and accuracy (with intervals and invalid rates), OE aggregation.

An MC reply is read by :func:`harmonyset_hf.mc_reading.read_choice` (rules that would rather call
a reply invalid than read a letter it does not choose); an invalid answer counts as wrong and is
reported separately (the paper's scores under the 25 % chance level suggest its parser failed on
free-form replies).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from ..prompting import option_list
from ..schema import ASPECTS, CATEGORIES, OPTION_LETTERS
from .mc_reading import Choice, read_choice

CHANCE = 1 / len(OPTION_LETTERS)
Z95 = 1.959963984540054


def _clean(response: str) -> str:
    text = re.sub(r"[*_`]+", "", response)  # markdown emphasis around letters
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------------------------
# MC answer extraction (the rules live in mc_reading.py)
# --------------------------------------------------------------------------------------------
def parse_choice(response: str | None, options: Sequence[str] | Mapping[str, str] | None = None) -> Choice:
    """Read the chosen option letter from a free-form reply; ``Choice(None, reason)`` when invalid."""
    return read_choice(response, options)


def extract_choice(response: str | None, options: Sequence[str] | Mapping[str, str] | None = None) -> str | None:
    """The chosen option letter of a free-form reply, or None when it names none or several."""
    return parse_choice(response, options).letter


# --------------------------------------------------------------------------------------------
# Accuracy with intervals
# --------------------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (95 % by default); None when ``n`` is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_stats(correct: int, n: int, invalid: int = 0) -> dict:
    """Accuracy, its 95 % Wilson interval, the invalid-answer rate and the chance level of ``n`` answers."""
    ci = wilson_interval(correct, n)
    return {
        "accuracy": correct / n if n else None,
        "ci95": list(ci) if ci else None,
        "n": n,
        "correct": correct,
        "invalid": invalid,
        "invalid_rate": invalid / n if n else None,
        "chance": CHANCE,
    }


def mc_accuracy(items: Iterable[Mapping]) -> dict:
    """Per-aspect, per-category x aspect and overall accuracy of scored MC items.

    Each item has ``aspect``, ``correct`` (bool) and ``invalid`` (bool) and optionally ``category``;
    an invalid answer counts as wrong.
    """
    items = list(items)

    def stats(group: list[Mapping]) -> dict:
        correct = sum(bool(i["correct"]) for i in group)
        return accuracy_stats(correct, len(group), sum(bool(i["invalid"]) for i in group))

    aspects = {a: stats([i for i in items if i["aspect"] == a]) for a in ASPECTS}
    categories = {}
    for cat in CATEGORIES:
        in_cat = [i for i in items if i.get("category") == cat]
        if in_cat:
            categories[cat] = {a: stats([i for i in in_cat if i["aspect"] == a]) for a in ASPECTS}
            categories[cat]["all"] = stats(in_cat)
    return {"aspects": aspects, "categories": categories, "overall": stats(items)}


# --------------------------------------------------------------------------------------------
# Circular evaluation (position bias)
# --------------------------------------------------------------------------------------------
CIRCULAR_SEPARATOR = "#r"


def circular_variants(row: Mapping) -> list[dict]:
    """The 4 rotations of an MC row's options (r0 = as published), each with its own answer letter.

    Variant ``k`` shows option ``(i + k) % 4`` in position ``i``; its ``question_id`` is
    ``"{question_id}#r{k}"``. A model is circular-correct only when it is right on all four.
    """
    options = option_list(row["options"])
    if len(options) != len(OPTION_LETTERS):
        raise ValueError(f"{row.get('question_id')}: circular evaluation needs 4 options, got {len(options)}")
    answer_index = OPTION_LETTERS.index(row["answer"])
    out = []
    for k in range(len(OPTION_LETTERS)):
        rotated = [options[(i + k) % 4] for i in range(4)]
        variant = dict(row)
        variant.update(options=rotated, answer=OPTION_LETTERS[(answer_index - k) % 4],
                       question_id=f"{row['question_id']}{CIRCULAR_SEPARATOR}{k}")
        out.append(variant)
    return out


def base_question_id(question_id: str) -> str:
    """The published question id of a circular variant id (``"x:rhythm#r2"`` -> ``"x:rhythm"``)."""
    return question_id.split(CIRCULAR_SEPARATOR, 1)[0]


# --------------------------------------------------------------------------------------------
# OE aggregation
# --------------------------------------------------------------------------------------------
def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate_oe(items: Iterable[Mapping]) -> dict:
    """Per category x aspect means and the Overall of judged OE items (failed ones excluded, counted).

    Each item has ``category`` and either ``scores`` ({aspect: 1-10}) or ``failed`` true. As in the
    paper, Overall is the mean over all scored items, not the mean of the category means.
    """
    items = list(items)
    scored = [i for i in items if not i.get("failed") and i.get("scores")]
    failed = len(items) - len(scored)

    def means(group: list[Mapping]) -> dict:
        out: dict = {a: _mean([float(i["scores"][a]) for i in group]) for a in ASPECTS}
        out["mean"] = _mean([out[a] for a in ASPECTS]) if group else None
        out["n"] = len(group)
        return out

    categories = {}
    for cat in CATEGORIES:
        in_cat = [i for i in scored if i.get("category") == cat]
        n_failed = sum(1 for i in items if i.get("category") == cat) - len(in_cat)
        if in_cat or n_failed:
            categories[cat] = {**means(in_cat), "failed": n_failed}
    return {"categories": categories, "overall": {**means(scored), "failed": failed},
            "scored": len(scored), "failed": failed}


# --------------------------------------------------------------------------------------------
# Swap pairs: 1-10 music-fit ratings, original vs swapped
# --------------------------------------------------------------------------------------------
class Rating(NamedTuple):
    """An extracted 1-10 rating (None when invalid) and why."""

    value: float | None
    reason: str


RATING_MIN, RATING_MAX = 1, 10
MAX_RATING_REPLY_CHARS = 20_000  # a rating, maybe with a sentence or two: far more is not a rating reply
# Patterns start only where a number starts (lookbehinds), so parsing is linear in the reply's length.
_NUM = r"(?<![\d.])(\d{1,2}(?:\.\d+)?)"
# "-8" (a sign right before a number that follows no word) is a negative number, never the rating 8.
_NEGATIVE = re.compile(r"(?<![\w.])[-−](?=\d)")
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10}
_ONLY_NUMBER = re.compile(r"^\s*(?:rating|score)?\s*[:\-]?\s*" + _NUM + r"\s*(?:/\s*10|out\s+of\s+10)?\s*[.!]?\s*$",
                          re.IGNORECASE)
_OUT_OF_TEN = re.compile(_NUM + r"\s*(?:/|out\s+of)\s*10\b", re.IGNORECASE)
_STATED = re.compile(r"\b(?:rating|score|rate\s+(?:it|this|the\s+fit)(?:\s+(?:a|an|as))?|give\s+(?:it|this)(?:\s+a)?|"
                     r"fit\s+(?:is|of))\s*(?:is|of|would\s+be|:|=|-)?\s*(?:a|an)?\s*" + _NUM + r"(?![\d:])",
                     re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\s*" + _NUM + r"(?![\d:])(?!\s*(?:or|and|to|-|–|,)\s*\d)\s*(?:[.!,;)\-]|$|\s)",
                             re.IGNORECASE)
# Not ratings: the scale itself ("1 to 10", "1-10"), timestamps ("00:10") and times ("3 seconds").
_RANGE = r"\s*(?:-|–|to|through)\s*(?:10|ten)\b"
_SCALE = re.compile(r"\b(?:1|one)" + _RANGE + r"|\bscale\s+of\s+(?:1|one)(?:" + _RANGE + r")?\b|(?<!\d)\d+:\d+|"
                    r"\b\d+(?:\.\d+)?\s*(?:s|sec|secs|seconds?|minutes?|bpm|%|hz)\b", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(?<![\w.])(\d{1,2}(?:\.\d+)?|" + "|".join(_WORDS) + r")(?![\w])", re.IGNORECASE)


def _numbers(tokens: Iterable[str]) -> list[float]:
    return [float(_WORDS[t.lower()]) if t.lower() in _WORDS else float(t) for t in tokens]


def _rating_verdict(values: list[float], how: str) -> Rating | None:
    distinct = sorted(set(values))
    if not distinct:
        return None
    if len(distinct) > 1:
        return Rating(None, f"several different ratings ({', '.join(f'{v:g}' for v in distinct)}) in {how}")
    if not RATING_MIN <= distinct[0] <= RATING_MAX:
        return Rating(None, f"{distinct[0]:g} is outside the 1-10 scale ({how})")
    return Rating(distinct[0], how)


def parse_rating(response: str | None) -> Rating:
    """Read a 1-10 rating from a free-form reply; ``Rating(None, reason)`` when it gives none, several or one off-scale.

    In order: a reply that is only a number ("7", "7/10"); ratings stated as "N/10", "N out of 10",
    "rating: N", "I'd give it N"; a reply that starts with a number; then every other number 1-10
    (digits or words) left after removing the scale ("1 to 10"), timestamps and durations.
    """
    if response is None or not str(response).strip():
        return Rating(None, "empty reply")
    if len(str(response)) > MAX_RATING_REPLY_CHARS:
        return Rating(None, f"reply of {len(str(response))} characters is too long to be a rating "
                            f"(at most {MAX_RATING_REPLY_CHARS})")
    text = _clean(str(response))
    rest = _SCALE.sub(" ", text)  # "N/10" is read in the full text, everything after it without the scale
    negative = _NEGATIVE.search(rest)
    if negative:
        return Rating(None, f"a negative number ({rest[negative.start():negative.end() + 4].strip()!r}...) is "
                            "not a rating on the 1-10 scale")
    m = _ONLY_NUMBER.match(text)
    if m:
        return _rating_verdict([float(m.group(1))], "number only")
    for pattern, source, how in ((_OUT_OF_TEN, text, "'N/10' statement"),
                                 (_STATED, rest, "explicit rating statement")):
        verdict = _rating_verdict([float(x) for x in pattern.findall(source)], how)
        if verdict:
            return verdict
    m = _LEADING_NUMBER.match(rest)
    if m:
        return _rating_verdict([float(m.group(1))], "leading number")
    numbers = _numbers(_ANY_NUMBER.findall(rest))
    return _rating_verdict(numbers, "number mentions") or Rating(None, "no rating from 1 to 10 found")


def pair_outcome(original: float, swapped: float) -> float:
    """An item's score: 1 when the original's rating is higher, 0.5 on a tie, 0 when the swapped one's is."""
    return 1.0 if original > swapped else 0.5 if original == swapped else 0.0


def sign_test_p(wins: int, losses: int) -> float | None:
    """Two-sided exact sign test of wins vs losses (ties left out); None when there are neither."""
    n = wins + losses
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(0, min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def pair_accuracy(items: Iterable[Mapping]) -> dict:
    """Accuracy (ties half), strict accuracy, tie and invalid rates, mean ratings of scored pair items.

    Each item has ``outcome`` (1, 0.5, 0, or None when a rating is invalid: counted as 0, as an
    invalid MC answer counts as wrong) and ``ratings`` ({"original", "swapped"}, None when invalid).
    """
    items = list(items)
    n = len(items)
    valid = [i for i in items if i["outcome"] is not None]
    points = sum(i["outcome"] for i in valid)
    wins = sum(i["outcome"] == 1.0 for i in valid)
    ties = sum(i["outcome"] == 0.5 for i in valid)
    losses = len(valid) - wins - ties
    ci = wilson_interval(points, n)  # the tie-halved score read as a proportion

    def mean(variant: str) -> float | None:
        return _mean([float(i["ratings"][variant]) for i in valid])

    return {
        "accuracy": points / n if n else None, "ci95": list(ci) if ci else None,
        "strict_accuracy": wins / n if n else None, "tie_rate": ties / n if n else None,
        "invalid_rate": (n - len(valid)) / n if n else None,
        "accuracy_valid": points / len(valid) if valid else None,
        "n": n, "wins": wins, "ties": ties, "losses": losses, "invalid": n - len(valid),
        "sign_test_p": sign_test_p(wins, losses), "chance": 0.5,
        "mean_rating": {"original": mean("original"), "swapped": mean("swapped")},
    }
