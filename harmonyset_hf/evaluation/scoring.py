"""Scoring: MC answer extraction and accuracy (with intervals and invalid rates), OE aggregation.

Free-form replies to a multiple-choice question are read in order of how explicit they are:
a reply that is only a letter; an explicit statement ("The answer is B", "I would choose (C)",
"D is correct"); a reply that starts with a letter ("B. The music ..."); then every other
mention of an option, by letter or by the option's own text. If those mentions name one
option it is the answer; several different ones, or none, make the reply invalid, which counts
as wrong and is reported separately (the paper's scores under the 25 % chance level suggest its
parser failed on free-form replies). The English words "A" and "I" are not taken for letters, nor
negated letters ("not A"), key names ("C major") or ranges ("A-D"); a reply that repeats the
lettered option list is read without it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from ..prompting import option_list
from ..schema import ASPECTS, CATEGORIES, OPTION_LETTERS

CHANCE = 1 / len(OPTION_LETTERS)
Z95 = 1.959963984540054


# --------------------------------------------------------------------------------------------
# MC answer extraction
# --------------------------------------------------------------------------------------------
class Choice(NamedTuple):
    """An extracted MC answer: the letter (None when invalid) and why."""

    letter: str | None
    reason: str


_L = r"[A-D]"
# A reply that is nothing but a letter, maybe bracketed or followed by punctuation: "B", "(b)", "C.".
_ONLY_LETTER = re.compile(r"^\s*(?:option|choice)?\s*[(\[]?\s*([A-Da-d])\s*[)\].:]?\s*$", re.IGNORECASE)
# Explicit statements. Lower-case letters are accepted here only when punctuation or the end follows,
# so that "the answer is a tricky one" does not read as A.
_LETTER_TAIL = r"[(\[]?\s*(?:([A-D])\b|([a-d])(?=\s*(?:[).:,;\]]|$)))"
_EXPLICIT = [
    re.compile(r"(?i:\b(?:final\s+|correct\s+|right\s+|best\s+)?answer\s*(?:is|would\s+be|should\s+be|:|-)?\s*"
               r"(?:is\s*)?(?:probably\s+|likely\s+|clearly\s+)?(?:option\s*|choice\s*)?)" + _LETTER_TAIL),
    re.compile(r"(?i:\b(?:correct|right|best|most\s+appropriate|most\s+suitable|most\s+accurate)\s+"
               r"(?:option|choice|fit|match|description)\s*(?:here\s+)?(?:is|would\s+be|:)?\s*)" + _LETTER_TAIL),
    re.compile(r"(?i:\b(?:i\s+(?:would\s+|will\s+|'d\s+)?)?(?:choose|chose|pick|select|go\s+with|opt\s+for)\s+"
               r"(?:option\s*|choice\s*)?)" + _LETTER_TAIL),
    re.compile(r"(?:\b(?:[Oo]ption|[Cc]hoice)\s*)?[(\[]?\b([A-D])\b[)\]]?\s*(?:is|seems|would\s+be)\s+(?:the\s+)?"
               r"(?:most\s+)?(?:correct|right|best|most\s+appropriate|most\s+accurate|most\s+fitting|answer)\b"),
]
# A reply that starts with a letter followed by punctuation: "B. ...", "(C) ...", "D: ...", "b) ...".
_LEADING = re.compile(r"^\s*(?:\(([A-Da-d])\)|\[([A-Da-d])\]|([A-D])\s*[.:)\-]|([a-d])\))(?!\w)")
_LEADING_LINE = re.compile(r"^\s*(?:\*\*|__)?\s*[(\[]?([A-Da-d])[)\].:]?\s*(?:\*\*|__)?[ \t]*\n")
_OPTION_LINE = re.compile(r"^\s*(?:[-*]\s*)?[(\[]?([A-D])[).:\]]\s+\S")
# Ranges and lists of all letters are not answers: "A-D", "A to D", "(A, B, C or D)".
_RANGES = re.compile(r"\b[A-D]\s*(?:-|–|to|through)\s*[A-D]\b|\bA\s*,\s*B\s*,\s*C\s*,?\s*(?:or|and)\s*D\b")
_MENTION = re.compile(r"(?<![\w'’-])([A-D])(?![\w'’-])")
# Words after which a capital "A" is still an option letter rather than the article.
_AFTER_LETTER = {"and", "or", "is", "was", "seems", "fits", "because", "since", "would", "best", "matches",
                 "describes", "captures", "nor", "but", "vs", "versus", "as", "also", "could", "might"}
_MUSIC_NAMES = re.compile(r"\s*(?:major|minor|sharp|flat|#|♯|♭)\b", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(r"(?i)\b(?:not|isn't|isn’t|rather\s+than|instead\s+of|except|unlike)\s+"
                             r"(?:option\s+|choice\s+)?[(\[]?$")
_NEGATED_AFTER = re.compile(r"(?i)^[)\]]?\s*(?:is|are|seems|would\s+be)\s+(?:not|wrong|incorrect|less|unlikely)\b")


def _normalize_text(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _clean(response: str) -> str:
    text = re.sub(r"[*_`]+", "", response)  # markdown emphasis around letters
    return re.sub(r"\s+", " ", text).strip()


def _letters(matches: Iterable[re.Match]) -> list[str]:
    return [next(g for g in m.groups() if g).upper() for m in matches]


def _verdict(letters: Sequence[str], how: str) -> Choice | None:
    distinct = sorted(set(letters))
    if len(distinct) == 1:
        return Choice(distinct[0], how)
    if len(distinct) > 1:
        return Choice(None, f"several different letters ({', '.join(distinct)}) in {how}")
    return None


def _mentions(text: str) -> list[str]:
    """Capital letters that stand as option letters: not the article "A", not negated, not a key name."""
    found = []
    for m in _MENTION.finditer(text):
        letter, before, after = m.group(1), text[: m.start()], text[m.end():]
        if letter == "A" and re.match(r"\s+[a-z]", after):
            word = re.match(r"\s+([a-z]+)", after)
            if not word or word.group(1) not in _AFTER_LETTER:
                continue  # "A good choice ..." is the article
        if _MUSIC_NAMES.match(after) or _NEGATED_BEFORE.search(before) or _NEGATED_AFTER.match(after):
            continue
        found.append(letter)
    return found


def _option_texts(text: str, options: list[str]) -> list[str]:
    """Letters of the options whose whole text the reply contains (a shorter one inside a longer one is dropped)."""
    norm = f" {_normalize_text(text)} "
    hits = {}
    for letter, option in zip(OPTION_LETTERS, options):
        opt = _normalize_text(option)
        if opt and f" {opt} " in norm:
            hits[letter] = opt
    return [letter for letter, opt in hits.items()
            if not any(opt != other and f" {opt} " in f" {other} " for other in hits.values())]


def parse_choice(response: str | None, options: Sequence[str] | Mapping[str, str] | None = None) -> Choice:
    """Read the chosen option letter from a free-form reply; ``Choice(None, reason)`` when invalid."""
    if response is None or not str(response).strip():
        return Choice(None, "empty reply")
    lines = str(response).splitlines()
    markers = [_OPTION_LINE.match(line) for line in lines]
    if len({m.group(1) for m in markers if m}) >= 3:  # the reply repeats the option list: read what is left
        rest = "\n".join(line for line, m in zip(lines, markers) if not m).strip()
        if not rest:
            return Choice(None, "repeats the options without choosing one")
        return parse_choice(rest, options)
    m = _LEADING_LINE.match(str(response))
    if m:  # "B\n\nthe music ..." (a letter alone on the first line)
        return Choice(m.group(1).upper(), "leading letter")
    text = _clean(str(response))
    opts = option_list(options) if options is not None else []
    m = _ONLY_LETTER.match(text)
    if m:
        return Choice(m.group(1).upper(), "letter only")
    text = _RANGES.sub(" ", text)
    explicit = _letters(m for pattern in _EXPLICIT for m in pattern.finditer(text)
                        if not _NEGATED_BEFORE.search(text[: m.start(m.lastindex or 1)]))
    verdict = _verdict(explicit, "explicit answer statement")
    if verdict:
        return verdict
    m = _LEADING.match(text)
    if m:
        return Choice(_letters([m])[0], "leading letter")
    verdict = _verdict(_mentions(text) + _option_texts(text, opts), "letter or option-text mentions")
    if verdict:
        return verdict
    return Choice(None, "no option letter or option text found")


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
