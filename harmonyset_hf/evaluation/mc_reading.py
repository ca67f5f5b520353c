"""MC answer reading: which option letter a free-form reply chose, and why, or why none.

A false read is worse than an invalid one (it silently moves an accuracy; an invalid answer is
counted and reported), so every rule here would rather give up than guess. In order:

1. The reply is normalised: Unicode compatibility forms (full-width ``Ａ``, ``（Ｂ）``), a
   ``<think>`` block, markdown emphasis and ``\\boxed{}`` go; a letter wrapped in quotes or
   brackets of any kind (``'B'``, ``‘A’``, ``「C」``, ``【D】``, ``<A>``) becomes ``(B)``.
2. A reply that repeats the lettered option list is read without it; if what is left states no
   answer, the one line marked correct (``(correct)``, ``✓``, ``- Yes``) is the answer.
3. A first line that is only a letter, or a reply that is only a letter (``Option D``).
4. Answer statements, in English and other common languages (``The answer is B``, ``I'd pick
   C``, ``答案是B``, ``La respuesta es C``), and conclusions (``..., so A.``, ``In conclusion,
   C``). A statement offering several letters (``B or C``, ``A, B``) makes the reply invalid;
   statements that disagree do too, unless the last word is a conclusion they all lead to.
5. A reply that starts with a letter (``B. The music ...``).
6. Every other mention of an option, by letter or by the option's own text: one option is the
   answer, several make the reply invalid. Not mentions: the article ``A`` before a word, a
   letter in a phrase naming something else (vitamin C, plan B, section B, C major, grade A,
   A+, B-roll), a negated letter (``not A``, ``不是A``) and ranges (``A-D``).

Each result is a :class:`Choice` whose ``reason`` starts with one of :data:`READ_REASONS` or
:data:`INVALID_REASONS` (details may follow in brackets), so reads can be counted by reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..prompting import option_list
from ..schema import OPTION_LETTERS
from ..text import unwrap_letters


class Choice(NamedTuple):
    """An extracted MC answer: the letter (None when invalid) and why."""

    letter: str | None
    reason: str


# Reasons, in the order the rules try them (a reason may be followed by details in brackets).
LETTER_ONLY = "letter only"
LEADING = "leading letter"  # a letter alone on the first line, or starting the reply ("B. The music ...")
VERDICT_LINE = "option list with one line marked correct"
FINAL_STATEMENT = "conclusion"
STATEMENT = "answer statement"
MENTION = "only option mentioned"
READ_REASONS = (LETTER_ONLY, LEADING, VERDICT_LINE, FINAL_STATEMENT, STATEMENT, MENTION)
EMPTY = "empty reply"
OFFERS_SEVERAL = "several letters offered"
STATEMENTS_DISAGREE = "answer statements disagree"
MARKED_SEVERAL = "several options marked correct"
LIST_ONLY = "repeats the options without choosing one"
SEVERAL_MENTIONED = "several different options mentioned"
NONE_FOUND = "no option letter or option text found"
INVALID_REASONS = (EMPTY, OFFERS_SEVERAL, STATEMENTS_DISAGREE, MARKED_SEVERAL, LIST_ONLY, SEVERAL_MENTIONED,
                   NONE_FOUND)


def reason_kind(reason: str) -> str:
    """A reason without its details: ``"several letters offered (B, C)"`` -> ``"several letters offered"``."""
    return reason.split(" (", 1)[0]


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\$*\\(?:boxed|textbf|text|mathrm)\s*\{\s*([A-Da-d])\s*\}\$*")
_EMPHASIS = re.compile(r"\*\*|__|\*|`+|#+(?=\s)")


def normalize_reply(reply: str) -> str:
    """The reply in the form the rules read: NFKC, no reasoning block or emphasis, wrapped letters as ``(X)``."""
    text = unicodedata.normalize("NFKC", reply)  # before the <think> search: full-width brackets too
    answer_part = _THINK.sub(" ", text).strip()
    text = answer_part or re.sub(r"</?think>", " ", text, flags=re.IGNORECASE)  # only a reasoning block: read it
    text = _BOXED.sub(r"(\1)", text)
    text = _EMPHASIS.sub("", text)
    text = unwrap_letters(text)
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()  # runs of blank lines: one (bounded regex work)


# --------------------------------------------------------------------------------------------
# Option lists with a verdict per line
# --------------------------------------------------------------------------------------------
_OPTION_LINE = re.compile(r"^(?:[-*•]\s*)?(?:option\s+)?\(?([A-D])(?:\)|\.|:|\]|\s[-–—]|\s(?=[✓✔✅☑✗✘❌×✖]))\s*(.*)$",
                          re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(?:incorrect|wrong|false|no|not|unlikely|doesn't|don't|isn't|does\s+not|do\s+not|"
                       r"is\s+not)\b|[✗✘❌×✖]", re.IGNORECASE)
_POSITIVE = re.compile(r"\b(?:correct|right|true|yes|best|answer)\b|[✓✔✅☑]", re.IGNORECASE)


def _option_lines(lines: list[str]) -> list[re.Match | None]:
    return [m if m and m.group(1).isupper() else None for m in map(_OPTION_LINE.match, lines)]


def _line_verdict(body: str, option: str | None) -> bool | None:
    """True when a listed option's line marks it correct, False when incorrect, None when it says neither."""
    if option and body.lower().startswith(option.lower()):
        body = body[len(option):]  # the option's own words ("no cultural elements") are no verdict
    if _NEGATIVE.search(body):
        return False
    return True if _POSITIVE.search(body) else None


def _read_verdicts(matches: list[re.Match], options: list[str]) -> Choice | None:
    marked = sorted({m.group(1) for m in matches
                     if _line_verdict(m.group(2), _option_text(m.group(1), options))})
    if len(marked) == 1:
        return Choice(marked[0], VERDICT_LINE)
    if len(marked) > 1:
        return Choice(None, f"{MARKED_SEVERAL} ({', '.join(marked)})")
    return None


def _option_text(letter: str, options: list[str]) -> str | None:
    index = OPTION_LETTERS.index(letter)
    return options[index] if index < len(options) else None


# --------------------------------------------------------------------------------------------
# Answer statements
# --------------------------------------------------------------------------------------------
_LETTER = r"\(?(?:([A-D])\b|([a-d])(?=\s*(?:[).:,;!?\n]|$)))\)?"
# After a statement the letters it offers: "B", "(B)", "B or C", "A, B", "B/C", "A and B".
_GROUP_TAIL = re.compile(r"\s*(?:,|/|\bor\b|\band\b|&|或|和|、)\s*(?:option\s+|choice\s+)?"
                         r"\(?([A-D])(?![A-Za-z0-9'’+\-])\)?")
_ANSWER_WORD = (r"(?:answers?|respuesta|r[ée]ponse|antwort|resposta|risposta|ответ|antwoord|odpowied[źz])")
_ADJ = r"(?:(?:final|correct|right|best|most\s+(?:appropriate|suitable|accurate|fitting|likely)|correcta|bonne|" \
       r"richtige|correta|corretta|juste|правильный)\s+)?"
_COPULA = r"(?:\s*(?:is|are|would\s+be|should\s+be|must\s+be|es|est|ist|é|è|:|=|-|–|—))?"
_HEDGE_ADV = r"(?:\s+(?:probably|likely|clearly|definitely|therefore|thus|then|indeed|most\s+likely|certainly))?"
_ARTICLE = r"(?:\s*(?:la|le|die|l'|the|option|choice|opción|opcion|opção|opzione|variante|letter))*"
_OPTION_WORD = r"(?:option|choice|opción|opcion|opção|opzione|variante)"
_STATEMENTS = [
    # "The (final/correct/best) answer is (probably) B", "Answer: B", "La respuesta correcta es la B"
    re.compile(rf"(?i:\b{_ADJ}{_ANSWER_WORD}{_ADJ}(?:\s+here)?{_COPULA}{_HEDGE_ADV}\s*{_ARTICLE}\s*){_LETTER}"),
    # "the correct option is C", "best choice: B", "most appropriate option here would be (A)"
    re.compile(rf"(?i:\b(?:correct|right|best|most\s+(?:appropriate|suitable|accurate|fitting|likely)|bonne|"
               rf"correcta|richtige)\s+(?:{_OPTION_WORD}|fit|match|description)(?:\s+here)?{_COPULA}"
               rf"{_HEDGE_ADV}\s*{_ARTICLE}\s*){_LETTER}"),
    # "I (would) choose / pick / select / go with / opt for / say C", "Je choisis l'option A", "elijo B"
    re.compile(rf"(?i:\b(?:choose|chose|pick|select|go\s+with|opt\s+for|i(?:'d|\s+would|\s+will)?\s+say|choisis|choisirais|elijo|escolho|"
               rf"scelgo|w[äa]hle){_ARTICLE}\s*){_LETTER}"),
    # "B is the best answer", "Option A is correct", "C is the one", "B matches best", "D fits best"
    re.compile(rf"(?:\b(?i:{_OPTION_WORD})\s*)?\(?\b([A-D])\b\)?\s*(?:(?:is|seems|would\s+be)\s+(?:the\s+)?"
               r"(?:most\s+)?(?:correct|right|best|most\s+appropriate|most\s+accurate|most\s+fitting|answer|one)\b|"
               r"(?:matches|fits|works|describes\s+it)\s+best\b)"),
    # "which makes A the answer", "making (B) the best answer"
    re.compile(r"(?i:\b(?:makes?|making)\s+(?:option\s+)?)\(?([A-D])\b\)?\s+(?i:the\s+(?:\w+\s+)?(?:answer|choice|option))"),
    # Chinese, Japanese, Korean: 答案是B, 正确答案为 C, 最佳答案:(B), 选B, 选择D, 选项C最符合, 答えはB, 정답은 A
    re.compile(r"(?:(?:正确|正確|最佳|最终|最終)?(?:答案|选项|選項|答)\s*(?:应该|應該|应|應)?\s*(?:是|为|為|:|选|選)?"
               r"|(?:选择|選擇|选|選)(?:项|項)?|而是|应该是|應該是|答えは|正解は|正解:|정답은|답은|답:)\s*\(?([A-Da-d])(?![A-Za-z])"),
]
# Conclusions: a reasoning paragraph's last word. "so A.", "Thus A.", "Hence, option B.", "In conclusion, C",
# "Conclusion: C", "Overall, I'd say D" (the letter must end its sentence, so "so A man ..." is no answer).
_CONCLUSION = re.compile(
    r"(?i:\b(?:so|thus|hence|therefore|consequently|ultimately|overall|in\s+conclusion|conclusion|in\s+summary|"
    r"to\s+conclude|所以|因此|故)(?![a-z])[\s,:]*(?:(?:the\s+)?(?:final\s+|correct\s+|best\s+|right\s+)?"
    r"(?:answer|option|choice)\s*(?:is|would\s+be|must\s+be|:)?\s*|i(?:'d|\s+would|\s+will)?\s+(?:say|pick|choose|go\s+with|"
    r"select)\s+|(?:it|this)\s+(?:is|must\s+be)\s+|(?:option|choice)\s+)?)"
    r"\(?([A-D])\)?(?=\s*(?:[.!;\n]|$|is\s+the\b|,?\s*(?:because|since|as)\b))")
_FINAL_ANSWER = re.compile(r"(?i:\bfinal\s+answer\b)")


def _group(text: str, end: int, first: str) -> list[str]:
    """The letters a statement offers: its first letter and every ``, X`` / ``or X`` / ``and X`` after it."""
    letters = [first]
    while True:
        m = _GROUP_TAIL.match(text, end)
        if not m:
            return letters
        letters.append(m.group(1))
        end = m.end()


class _Statement(NamedTuple):
    start: int
    letters: tuple[str, ...]
    final: bool


def _statements(text: str) -> list[_Statement]:
    found: dict[int, _Statement] = {}
    for pattern, final in [(p, False) for p in _STATEMENTS] + [(_CONCLUSION, True)]:
        for m in pattern.finditer(text):
            index = next(i for i in range(1, (m.lastindex or 0) + 1) if m.group(i))
            letter_start = m.start(index)
            if _negated(text, letter_start) or _names_something_else(text, letter_start, m.end(index)):
                continue
            letters = tuple(dict.fromkeys(_group(text, m.end(), m.group(index).upper())))
            final = final or bool(_FINAL_ANSWER.search(m.group(0)))
            old = found.get(letter_start)
            found[letter_start] = _Statement(letter_start, letters, final or bool(old and old.final))
    return sorted(found.values())


def _decide(statements: list[_Statement], how: str) -> Choice | None:
    if not statements:
        return None
    several = [s for s in statements if len(s.letters) > 1]
    if several:
        return Choice(None, f"{OFFERS_SEVERAL} ({', '.join(several[0].letters)})")
    letters = sorted({s.letters[0] for s in statements})
    if len(letters) > 1:
        return Choice(None, f"{STATEMENTS_DISAGREE} ({', '.join(letters)})")
    return Choice(letters[0], how)


# --------------------------------------------------------------------------------------------
# Mentions
# --------------------------------------------------------------------------------------------
_MENTION = re.compile(r"(?<![A-Za-z0-9'’+\-\\.])([A-D])(?![A-Za-z0-9'’+\-])")
# Words after which a capital "A" is still an option letter rather than the article.
_AFTER_LETTER = {"and", "or", "is", "was", "seems", "fits", "because", "since", "would", "best", "matches",
                 "describes", "captures", "nor", "but", "vs", "versus", "as", "also", "could", "might", "fit",
                 "match", "works", "better", "instead", "only"}
# Words right before a letter that make it a name, not an option: vitamin C, plan B, section B, grade A, high C,
# in the key of D. (Sets of the last words, not regexes ending in "$": those are tried at every position.)
_NAME_WORDS = frozenset(
    "vitamin vitamins plan part section side track type grade exhibit class level size group team row column seat "
    "gate zone platform block building floor wing unit chapter act phase version model series tier category camera "
    "cam scene high low point note chord string pitch batch league division movement disc sample hepatitis cup "
    "shot roll".split())
_NAME_PAIRS = frozenset({("key", "of"), ("blood", "type")})
# Music keys and notes after a letter: "C major", "B minor", "C sharp", "A♭".
_NAMED_AFTER = re.compile(r"(?i)^\s*(?:major|minor|sharp|flat|[#♯♭]|natural|chord|note|string|key)\b|^[#♯♭]")
# Right before a letter: "rather than A", "unlike (B)", "except option C"; anywhere earlier in its clause: "not",
# "n't", "不是".
_NEGATING_WORDS = frozenset({"except", "unlike", "exclude", "excluding", "eliminate"})
_NEGATING_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("rule", "out"), ("ruled", "out")})
_NEGATOR = re.compile(r"(?i)\b(?:not|never|hardly|neither|nor|cannot|no\s+es|n'est\s+pas|nicht)\b|n['’]t\b|"
                      r"不是|并非|並非|排除|不选|不選")
# After these a capital "A" is the letter even before a word: "option A best fits", "makes A the answer".
_LETTER_CONTEXT = frozenset({"option", "choice", "answer", "choose", "chose", "pick", "select", "say", "make", "makes",
                             "making"})
_CLAUSE_END = re.compile(r"[.;!?\n:,。；，！？]|\b(?:but|so|thus|hence|therefore|however|yet|then)\b", re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"(?i)^\)?\s*(?:is|are|seems|would\s+be|was)\s+(?:not|wrong|incorrect|less|unlikely|"
                            r"ruled\s+out|eliminated|too)\b|^\)?\s*(?:can\s+be\s+ruled\s+out|is\s+out)")
# Ranges and lists of all letters are not answers: "A-D", "A to D", "(A, B, C or D)".
_RANGES = re.compile(r"\b[A-D]\s*(?:-|–|to|through)\s*[A-D]\b|\bA\s*,\s*B\s*,\s*C\s*,?\s*(?:or|and)\s*D\b")


def _last_words(before: str, brackets: bool = False) -> list[str]:
    """The last three words before a letter, lower-cased; none when anything but spaces (or "(") follows them."""
    tail = before[-40:]
    tail = tail.rstrip().rstrip("(").rstrip() if brackets else tail.rstrip()
    words = tail.split()[-3:]
    return [w.lower() for w in words] if words and words[-1].isalpha() else []


def _ends_with(words: list[str], singles: frozenset[str], pairs: frozenset[tuple[str, str]]) -> bool:
    return bool(words) and (words[-1] in singles or tuple(words[-2:]) in pairs)


def _negated(text: str, start: int) -> bool:
    """Whether the letter at ``start`` is denied: "not A", "rather than A", "I don't think it's A", "not A or B"."""
    before = text[max(0, start - 80):start]
    words = _last_words(before, brackets=True)
    if words and words[-1] in ("option", "choice"):
        words = words[:-1]
    if _ends_with(words, _NEGATING_WORDS, _NEGATING_PAIRS):
        return True
    return bool(_NEGATOR.search(_CLAUSE_END.split(before)[-1]))  # a negation earlier in the same clause


def _names_something_else(text: str, start: int, end: int) -> bool:
    """A letter that is no option: the article ("A slow piano", "A 120 BPM beat") or a name (vitamin C, C major)."""
    before, after = text[max(0, start - 40):start], text[end:]
    if before.endswith("(") and after.startswith(")"):
        return False  # "(A)": a wrapped letter is a letter
    words = _last_words(before)
    if _ends_with(words, _NAME_WORDS, _NAME_PAIRS) or _NAMED_AFTER.match(after):
        return True
    if text[start:end] != "A" or (words and words[-1] in _LETTER_CONTEXT):
        return False  # "option A best captures ...", "the answer is A because"
    word = re.match(r" ([^\s.,;:!?)]+)", after)
    return bool(word) and word.group(1).lower() not in _AFTER_LETTER


def _mentions(text: str) -> list[str]:
    """Capital letters standing as option letters: not the article, not a name, not negated."""
    return [m.group(1) for m in _MENTION.finditer(text)
            if not _names_something_else(text, m.start(), m.end()) and not _negated(text, m.start())
            and not _NEGATED_AFTER.match(text[m.end():])]


def _normalize_words(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _option_texts(text: str, options: list[str]) -> list[str]:
    """Letters of the options whose whole text the reply contains (a shorter one inside a longer one is dropped)."""
    norm = f" {_normalize_words(text)} "
    hits = {}
    for letter, option in zip(OPTION_LETTERS, options):
        opt = _normalize_words(option)
        if opt and f" {opt} " in norm:
            hits[letter] = opt
    return [letter for letter, opt in hits.items()
            if not any(opt != other and f" {opt} " in f" {other} " for other in hits.values())]


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------
_ONLY_LETTER = re.compile(r"^(?:(?:the\s+)?(?:answer|option|choice|opción|opcion|opção|opzione|选项|選項|答案)"
                          r"\s*[:\-]?\s*)?"
                          r"\(?([A-Da-d])\)?\s*[.:!)]?$", re.IGNORECASE)
_FIRST_LINE_LETTER = re.compile(r"^\(?([A-Da-d])\)?[.:)]?\s*\n")
_LEADING = re.compile(r"^(?:\(([A-Da-d])\)|([A-D])\s*(?:[.:)]|\s[-–—])|([a-d])\))(?![A-Za-z0-9])")


def read_choice(reply: str | None, options: Sequence[str] | Mapping[str, str] | None = None) -> Choice:
    """Read the chosen option letter from a free-form reply; ``Choice(None, reason)`` when invalid."""
    if reply is None or not str(reply).strip():
        return Choice(None, EMPTY)
    opts = option_list(options) if options is not None else []
    text = normalize_reply(str(reply))
    if not text:
        return Choice(None, EMPTY)
    lines = text.splitlines()
    listed = _option_lines(lines)
    if len({m.group(1) for m in listed if m}) >= 3:  # the reply repeats the option list
        rest = "\n".join(line for line, m in zip(lines, listed) if not m).strip()
        stated = _read_text(rest, opts) if rest else None
        verdict = _read_verdicts([m for m in listed if m], opts)
        if stated and stated.letter and verdict and verdict.letter and stated.letter != verdict.letter:
            detail = f"the list marks {verdict.letter}, the text says {stated.letter}"
            return Choice(None, f"{STATEMENTS_DISAGREE} ({detail})")
        if stated and (stated.letter or reason_kind(stated.reason) != NONE_FOUND):
            return stated
        return verdict or Choice(None, LIST_ONLY)
    m = _FIRST_LINE_LETTER.match(text)
    if m:  # "B\n\nthe music ..." (a letter alone on the first line)
        return Choice(m.group(1).upper(), LEADING)
    return _read_text(text, opts)


def _read_text(text: str, opts: list[str]) -> Choice:
    flat = re.sub(r"\s+", " ", text).strip()
    m = _ONLY_LETTER.match(flat)
    if m:
        return Choice(m.group(1).upper(), LETTER_ONLY)
    flat = _RANGES.sub(" ", flat)
    spaced = _RANGES.sub(" ", text)  # conclusions may end a line: keep the line breaks for them
    statements = _statements(spaced)
    finals = [s for s in statements if s.final]
    if finals and finals[-1].start == statements[-1].start:  # the reply ends on its conclusion
        choice = _decide(finals, FINAL_STATEMENT)
        if choice and choice.letter:
            return choice
    choice = _decide(statements, STATEMENT)
    if choice:
        return choice
    m = _LEADING.match(flat)
    if m:
        return Choice(next(g for g in m.groups() if g).upper(), LEADING)
    letters = sorted(set(_mentions(flat)) | set(_option_texts(flat, opts)))
    if len(letters) == 1:
        return Choice(letters[0], MENTION)
    if letters:
        return Choice(None, f"{SEVERAL_MENTIONED} ({', '.join(letters)})")
    return Choice(None, NONE_FOUND)
