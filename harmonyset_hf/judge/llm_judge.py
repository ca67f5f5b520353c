"""The paper's HarmonySet-OE judge (GPT-4o, Fig. 13 prompt), its prompt, reply parsing and result type.

Every judge (this one, the offline proxy in :mod:`.embedding`) follows :class:`.base.Judge`:
``judge.score_items(items) -> list[JudgeResult]`` where an item is ``{"id", "response", "reference"}``
and a result carries four scores (``rhythm``, ``theme``, ``emotion``, ``culture``, each 1-10) or
``failed`` with an ``error``; ``judge.describe()`` says what judged (kind, model, prompt hash, whether
it is a proxy).

:class:`LLMJudge` sends the paper's prompt verbatim, at temperature 0, one call per item, through
:class:`harmonyset_hf.llm.LLMClient` (cached and resumable). Replies are parsed by
:func:`parse_judge_scores`; a reply that cannot be parsed is followed up, as a chat turn that
quotes the required format after the judge's own reply (asking the same prompt again at
temperature 0 would get the same reply); each ask is its own cache entry and, after
``max_attempts`` asks, the item is counted as failed, never scored. Each result records the model
name and ``system_fingerprint`` the API returned (an alias resolves to a dated snapshot).
Decimal scores such as ``7.5`` are accepted (the paper averages scores anyway); anything outside
1-10, or not exactly four scores, is unparsable.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from ..errors import ConfigError, HarmonySetError
from ..llm import ChatRequest, LLMClient
from ..schema import ASPECTS
from .guard import fence_nonce, fence_response

log = logging.getLogger(__name__)

# The paper's judge is GPT-4o; the alias "gpt-4o" moves to newer snapshots over time, so the default is
# the dated snapshot lmms-eval's judges use (docs/judge: why). `--judge-model gpt-4o` still asks for the alias.
DEFAULT_JUDGE_MODEL = "gpt-4o-2024-11-20"
# The follow-up turn after a reply without four valid scores: it quotes the format the paper's prompt asks for.
FOLLOWUP_PROMPT = ("Your reply could not be read ({error}). Please output a single line containing only four "
                   "values indicating the scores for four aspects, respectively: Rhythm and Synchronization, "
                   "Thematic Content, Emotional Impact, Cultural Relevance, each from 1 to 10, separated by a "
                   "comma, for example: 7,5,6,4. Do not output any words other than scores.")
# Prompt modes and their template files (under harmonyset_hf/). "hardened" keeps the paper's
# instructions and fences the response between nonce delimiters (see judge/guard.py).
PROMPT_FILES = {"paper": "prompts/oe_judge.txt", "hardened": "prompts/oe_judge_hardened.txt"}
PROMPT_MODES = tuple(PROMPT_FILES)


class ScoreParseError(HarmonySetError, ValueError):
    """A judge reply that does not hold exactly four scores from 1 to 10."""


@dataclass
class JudgeResult:
    """One item's verdict: four 1-10 scores, or ``failed`` with the reason."""

    id: str
    scores: dict[str, float] | None = None
    failed: bool = False
    error: str | None = None
    raw: str | None = None  # the last reply of the judge (None for the embedding judge)
    attempts: int = 0  # replies asked for (cache hits included)
    cached: bool = False  # every reply came from the cache
    served_model: str | None = None  # the model the API says answered the last ask (None when it did not say)
    system_fingerprint: str | None = None  # the API's system_fingerprint of that reply, when given

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON files."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Prompt and parsing
# --------------------------------------------------------------------------------------------
@functools.cache
def judge_template(mode: str = "paper") -> str:
    """The judge prompt template of ``mode`` (``paper``: Fig. 13 verbatim)."""
    if mode not in PROMPT_FILES:
        raise ConfigError(f"unknown judge prompt mode {mode!r}; expected one of {', '.join(PROMPT_MODES)}")
    return resources.files("harmonyset_hf").joinpath(PROMPT_FILES[mode]).read_text(encoding="utf-8").rstrip("\n")


def prompt_sha256(mode: str = "paper") -> str:
    """sha256 of the judge prompt template, recorded in results."""
    return hashlib.sha256(judge_template(mode).encode("utf-8")).hexdigest()


_SLOT_RE = re.compile(r"\{(response|correct_answer|nonce)\}")


def build_judge_prompt(response: str, reference: str, mode: str = "paper") -> str:
    """The judge prompt for one item: the template with its slots filled in one pass.

    In ``hardened`` mode the response is escaped and fenced by delimiters carrying the item's nonce.
    """
    values = {"response": response, "correct_answer": reference}
    if mode == "hardened":
        nonce = fence_nonce(response, reference)
        values.update(response=fence_response(response, nonce), nonce=nonce)
    # One pass, so braces or a literal "{correct_answer}" inside the response stay as written.
    return _SLOT_RE.sub(lambda m: values[m.group(1)], judge_template(mode))


# Every pattern here starts only where a number or word starts, and a label is at most 40 characters,
# so parsing is linear in the reply's length (an unbounded lazy label made a 16 KB reply take 40 s).
_NUM = r"(?<![\d.])\d+(?:\.\d+)?"
_SIGNED_NUM = rf"(?:(?<![\w.])[-−])?{_NUM}"  # "-8" is a negative score (refused), "7-8" two numbers
_LABELLED_RE = re.compile(rf"(?<![A-Za-z])(?P<label>[A-Za-z][A-Za-z &/\-]{{0,40}}?)\s{{0,8}}(?:score)?\s{{0,8}}"
                          rf"[:=\-–]\s{{0,8}}(?P<num>{_SIGNED_NUM})", re.I)
MAX_JUDGE_REPLY_CHARS = 20_000  # four scores, maybe with labels or a sentence: far more is not a score reply
_LABEL_KEYS = (("rhythm", ("rhythm", "sync")), ("theme", ("them", "content")), ("emotion", ("emotion",)),
               ("culture", ("cultur",)))


def _label_aspect(label: str) -> str | None:
    low = label.lower()
    for aspect, keys in _LABEL_KEYS:
        if any(k in low for k in keys):
            return aspect
    return None


def parse_judge_scores(text: str) -> dict[str, float]:
    """The four aspect scores of a judge reply; raises :class:`ScoreParseError` saying why not.

    Accepts ``7,6,8,5``, spaces or semicolons as separators, ``7/10``, markdown, list numbering,
    and labels before numbers (``Rhythm: 7, Theme: 6, ...``, in any order). Refuses anything that
    does not give exactly four scores from 1 to 10.
    """
    if text is None or not str(text).strip():
        raise ScoreParseError("empty reply")
    if len(str(text)) > MAX_JUDGE_REPLY_CHARS:
        raise ScoreParseError(f"reply of {len(str(text))} characters is too long to be four scores "
                              f"(at most {MAX_JUDGE_REPLY_CHARS}): {_clip(text)!r}")
    t = str(text).replace("，", ",").replace("；", ";")
    t = re.sub(r"[*_`#>\[\]()]", " ", t)
    t = re.sub(rf"({_NUM})\s*(?:/|out\s+of)\s*10(?:\.0+)?(?!\d)", r"\1", t, flags=re.I)
    scores: dict[str, float] | None = None
    labelled: dict[str, list[float]] = {}
    for m in _LABELLED_RE.finditer(t):
        aspect = _label_aspect(m.group("label"))
        if aspect:
            labelled.setdefault(aspect, []).append(float(m.group("num").replace("−", "-")))
    if labelled and set(labelled) == set(ASPECTS) and all(len(v) == 1 for v in labelled.values()):
        scores = {a: labelled[a][0] for a in ASPECTS}
    else:
        bare = re.sub(r"(?m)^[ \t]*\d+[ \t]*[.)]\s*(?=[A-Za-z])", " ", t)  # "1. Rhythm ..." list numbering
        numbers = [float(n.replace("−", "-")) for n in re.findall(_SIGNED_NUM, bare)]
        if len(numbers) != 4:
            raise ScoreParseError(f"expected 4 scores, found {len(numbers)} number(s) in {_clip(text)!r}")
        scores = dict(zip(ASPECTS, numbers))
    bad = {a: s for a, s in scores.items() if not 1 <= s <= 10}
    if bad:
        raise ScoreParseError(f"scores out of range 1-10 ({', '.join(f'{a}={s:g}' for a, s in bad.items())}) "
                              f"in {_clip(text)!r}")
    return scores


def _clip(text: str, n: int = 120) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + "..."


def check_item(item: dict) -> str | None:
    """Why an item cannot be judged, or None."""
    if not isinstance(item.get("response"), str):
        return "no response (missing or not text)"
    if not isinstance(item.get("reference"), str) or not item["reference"].strip():
        return "empty reference annotation"
    return None


def summarize(results: list[JudgeResult]) -> str:
    """A one-line summary of judged items."""
    failed = sum(r.failed for r in results)
    cached = sum(r.cached for r in results)
    return f"judged {len(results)} item(s): {len(results) - failed} scored, {failed} failed, {cached} fully from cache"


# --------------------------------------------------------------------------------------------
# The paper's judge
# --------------------------------------------------------------------------------------------
class LLMJudge:
    """The paper's OE judge: one call per item to an OpenAI-compatible model, temperature 0."""

    kind = "llm"

    def __init__(
        self,
        client: LLMClient | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        env_prefix: str = "HARMONYSET_JUDGE",
        cache_dir: str | None = None,
        mode: str = "paper",
        temperature: float = 0.0,
        max_tokens: int | None = None,
        max_attempts: int = 3,
        **client_kwargs: Any,
    ) -> None:
        self.client = client or LLMClient(model=model, base_url=base_url, api_key=api_key, env_prefix=env_prefix,
                                          default_model=DEFAULT_JUDGE_MODEL, cache_dir=cache_dir, **client_kwargs)
        judge_template(mode)  # fail early on a bad mode
        self.mode = mode
        self.params: dict[str, Any] = {"temperature": temperature}
        if max_tokens is not None:
            self.params["max_tokens"] = max_tokens
        self.max_attempts = max(1, max_attempts)

    def request_for(self, response: str, reference: str, attempt: int = 0) -> ChatRequest:
        """The chat request judging one item; ``attempt`` only changes the cache key."""
        prompt = build_judge_prompt(response, reference, self.mode)
        return ChatRequest([{"role": "user", "content": prompt}], dict(self.params),
                           {"task": "harmonyset_oe_judge", "mode": self.mode, "attempt": attempt})

    def followup_for(self, response: str, reference: str, reply: str, error: str, attempt: int) -> ChatRequest:
        """The follow-up of an unreadable reply: the first ask, the judge's reply, and a turn quoting the format."""
        first = self.request_for(response, reference, attempt)
        first.messages += [{"role": "assistant", "content": reply},
                           {"role": "user", "content": FOLLOWUP_PROMPT.format(error=_clip(error, 80))}]
        return first

    def describe(self) -> dict[str, Any]:
        """What judged: kind, model, prompt hash and mode, parameters; never a secret."""
        return {"kind": self.kind, "proxy": False, **self.client.endpoint.describe(),
                "requested_model": self.client.model, "prompt_mode": self.mode,
                "prompt_sha256": prompt_sha256(self.mode), "params": dict(self.params),
                "max_attempts": self.max_attempts}

    @property
    def usage(self) -> dict[str, int]:
        """Token and call totals of this judge's client."""
        return self.client.usage.as_dict()

    def score_items(
        self, items: list[dict], concurrency: int | None = None, progress: bool = True
    ) -> list[JudgeResult]:
        """Judge every item (in order); unparsable replies are re-asked, then the item fails."""
        results = [JudgeResult(id=str(it.get("id"))) for it in items]
        pending: list[int] = []
        for i, item in enumerate(items):
            problem = check_item(item)
            if problem:
                results[i].failed, results[i].error = True, problem
            else:
                pending.append(i)
        all_cached = dict.fromkeys(pending, True)
        unread: dict[int, tuple[str, str]] = {}  # item -> (its last unreadable reply, why)
        for attempt in range(self.max_attempts):
            if not pending:
                break
            requests = [self.request_for(items[i]["response"], items[i]["reference"], attempt) if i not in unread
                        else self.followup_for(items[i]["response"], items[i]["reference"], *unread[i], attempt)
                        for i in pending]
            desc = "judge" if attempt == 0 else f"judge follow-up {attempt}"
            replies = self.client.complete_many(requests, concurrency=concurrency, progress=progress, desc=desc)
            still: list[int] = []
            for i, reply in zip(pending, replies):
                res = results[i]
                res.attempts = attempt + 1
                all_cached[i] = all_cached[i] and reply.cached
                if not reply.ok:  # the call itself failed for good (after retries): not re-asked
                    res.failed, res.error, res.scores = True, f"judge call failed: {reply.error}", None
                    continue
                res.raw, res.served_model, res.system_fingerprint = reply.text, reply.served_model, \
                    reply.system_fingerprint
                try:
                    res.scores, res.failed, res.error = parse_judge_scores(reply.text or ""), False, None
                except ScoreParseError as err:
                    res.failed, res.error = True, f"unparsable judge reply after {attempt + 1} ask(s): {err}"
                    unread[i] = (reply.text or "", str(err))
                    still.append(i)
            pending = still
        for i, cached in all_cached.items():
            results[i].cached = cached
        for r in results:
            if r.failed:
                log.warning("item %s not scored: %s", r.id, r.error)
        log.info("%s", summarize(results))
        return results

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()
