"""MC bias audit: can HarmonySet-MC be answered without the clip?

The paper's MC options were written by GPT-4o from each item's annotation, which can leave cues a
model exploits without watching or hearing anything: the correct option may be the longest, or
the one the distractors were paraphrased from (so the most similar to the other three), or the
answer letters may not be balanced. This module runs blind baselines that never see the clip:

- ``random``: a seeded random letter (what chance looks like on this many questions);
- ``longest`` / ``shortest``: the option with the most / fewest characters;
- ``centroid``: the option most similar to the other three (mean cosine under the packaged
  MiniLM sentence encoder);
- ``llm`` (optional): a text-only LLM through :mod:`harmonyset_hf.llm`, shown the question and the
  four options only;

and gives each one's accuracy per aspect with a 95 % Wilson interval against the 25 % chance
level. An aspect is flagged when a blind baseline's whole interval lies above chance. It also
reports the distribution of answer letters (chi-square against uniform) and option lengths
(correct vs distractor, rank of the correct option by length).

The judge audit lives in :mod:`harmonyset_hf.audit.judge_robustness`, judge agreement in
:mod:`harmonyset_hf.audit.agreement`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError
from ..evaluation.scoring import CHANCE, mc_accuracy, parse_choice
from ..io import package_versions
from ..judge import sentence_encoder
from ..llm import ChatRequest
from ..models.baselines import LongestOptionBaseline, RandomBaseline
from ..prompting import mc_prompt, option_list
from ..schema import ASPECT_NAMES, ASPECTS, OPTION_LETTERS

log = logging.getLogger(__name__)

BLIND_BASELINES = ("random", "longest", "shortest", "centroid")
DESCRIPTIONS = {
    "random": "seeded random letter (chance on this many questions)",
    "longest": "the option with the most characters",
    "shortest": "the option with the fewest characters",
    "centroid": "the option most similar to the other three (mean MiniLM cosine)",
    "llm": "a text-only LLM shown the question and options, never the clip",
}
LLM_PREFIX = ("You are answering a multiple-choice question about a video and its background music, but you "
              "cannot see or hear the video. Choose the most likely option from the question and the options "
              "alone; always pick one.")
AUDIT_LLM_ENV = "HARMONYSET_AUDIT_LLM"


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------
def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with integer ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:  # e^{-x/2} * sum_{k < df/2} (x/2)^k / k!
        term = total = 1.0
        for k in range(1, df // 2):
            term *= half / k
            total += term
        return min(1.0, math.exp(-half) * total)
    # odd df: erfc(sqrt(x/2)) + e^{-x/2} * sum_{k=1}^{(df-1)/2} (x/2)^{k-1/2} / Gamma(k+1/2)
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(half) / math.gamma(1.5)
    for k in range(1, (df - 1) // 2 + 1):
        if k > 1:
            term *= half / (k - 0.5)
        total += math.exp(-half) * term
    return min(1.0, total)


def letter_uniformity(letters: Sequence[str]) -> dict:
    """Counts of answer letters and the chi-square test against a uniform spread over A-D."""
    counts = Counter(letters)
    n = len(letters)
    out: dict[str, Any] = {"n": n, "counts": {k: counts[k] for k in OPTION_LETTERS}}
    if n == 0:
        return {**out, "chi2": None, "df": len(OPTION_LETTERS) - 1, "p_value": None}
    expected = n / len(OPTION_LETTERS)
    chi2 = sum((counts[k] - expected) ** 2 / expected for k in OPTION_LETTERS)
    return {**out, "shares": {k: counts[k] / n for k in OPTION_LETTERS}, "chi2": chi2,
            "df": len(OPTION_LETTERS) - 1, "p_value": chi2_sf(chi2, len(OPTION_LETTERS) - 1)}


def length_rank(options: Sequence[str], index: int) -> tuple[int, float]:
    """Rank of option ``index`` by length (1 = longest): (1 + number strictly longer, mid-rank among ties)."""
    length = len(options[index])
    longer = sum(len(o) > length for k, o in enumerate(options) if k != index)
    ties = sum(len(o) == length for k, o in enumerate(options) if k != index)
    return 1 + longer, 1 + longer + ties / 2


def length_stats(rows: Sequence[Mapping]) -> dict:
    """Characters of correct vs distractor options and the rank of the correct option by length."""
    correct, distractor, ranks, midranks = [], [], Counter(), []
    for row in rows:
        options = option_list(row["options"])
        idx = OPTION_LETTERS.index(row["answer"])
        correct.append(len(options[idx]))
        distractor.extend(len(o) for k, o in enumerate(options) if k != idx)
        rank, mid = length_rank(options, idx)
        ranks[rank] += 1
        midranks.append(mid)
    n = len(rows)
    if not n:
        return {"n": 0}
    mean_c, mean_d = sum(correct) / n, sum(distractor) / len(distractor)
    return {"n": n, "mean_chars_correct": mean_c, "mean_chars_distractor": mean_d,
            "ratio_correct_to_distractor": mean_c / mean_d if mean_d else None,
            "rank_counts": {str(k): ranks[k] for k in range(1, len(OPTION_LETTERS) + 1)},
            "correct_is_longest": ranks[1] / n, "mean_rank": sum(midranks) / n,
            "mean_rank_if_unbiased": (len(OPTION_LETTERS) + 1) / 2}


# --------------------------------------------------------------------------------------------
# Blind baselines
# --------------------------------------------------------------------------------------------
def _shortest(rows: Sequence[Mapping]) -> list[str]:
    out = []
    for row in rows:
        options = option_list(row["options"])
        out.append(OPTION_LETTERS[min(range(len(options)), key=lambda i: (len(options[i]), i))])
    return out


def centroid_letters(rows: Sequence[Mapping], encoder: Any = None, progress: bool = False) -> list[str]:
    """Per question, the option with the highest mean cosine similarity to the other three."""
    import numpy as np

    if encoder is None:
        encoder = sentence_encoder()
    texts = sorted({o for row in rows for o in option_list(row["options"])})
    if not texts:
        return []
    emb = encoder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=progress,
                         convert_to_numpy=True)
    index = {t: i for i, t in enumerate(texts)}
    out = []
    for row in rows:
        vec = emb[[index[o] for o in option_list(row["options"])]]
        sims = vec @ vec.T
        k = len(vec)
        mean_other = (sims.sum(axis=1) - np.diag(sims)) / (k - 1)
        out.append(OPTION_LETTERS[int(np.argmax(mean_other))])
    return out


def blind_letters(rows: Sequence[Mapping], method: str, seed: int = 0, encoder: Any = None) -> list[str]:
    """The letter a blind baseline picks for each MC row (``random``, ``longest``, ``shortest``, ``centroid``)."""
    rows = list(rows)
    if method == "random":
        return RandomBaseline(seed=seed).generate(rows, [""] * len(rows))
    if method == "longest":
        return LongestOptionBaseline().generate(rows, [""] * len(rows))
    if method == "shortest":
        return _shortest(rows)
    if method == "centroid":
        return centroid_letters(rows, encoder)
    raise ValueError(f"unknown blind baseline {method!r}; expected one of {', '.join(BLIND_BASELINES)}")


def llm_prompt(row: Mapping) -> str:
    """The text-only LLM's prompt: the blind preamble, then the question and options as models see them."""
    return f"{LLM_PREFIX}\n\n{mc_prompt(row)}"


def llm_replies(rows: Sequence[Mapping], client: Any, concurrency: int | None = None,
                progress: bool = True) -> list[str | None]:
    """The text-only LLM's reply to each row (None where the call failed for good)."""
    requests = [ChatRequest([{"role": "user", "content": llm_prompt(row)}], {"temperature": 0.0},
                            {"task": "harmonyset_mc_blind"}) for row in rows]
    results = client.complete_many(requests, concurrency=concurrency, progress=progress, desc="blind llm")
    for row, res in zip(rows, results):
        if not res.ok:
            log.warning("%s: text-only LLM call failed: %s", row["question_id"], res.error)
    return [res.text if res.ok else None for res in results]


def score_letters(rows: Sequence[Mapping], letters: Sequence[str | None], replies: Sequence[str | None] | None = None,
                  ) -> dict:
    """Accuracy per aspect / category / overall of one baseline, each aspect flagged when its CI is above chance."""
    items = []
    failed = 0
    for k, (row, letter) in enumerate(zip(rows, letters)):
        if replies is not None and replies[k] is None:
            failed += 1  # no answer at all (the call failed): left out, counted
            continue
        items.append({"aspect": row["aspect"], "category": row.get("category"), "correct": letter == row["answer"],
                      "invalid": letter is None})
    acc = mc_accuracy(items)
    for stats in [*acc["aspects"].values(), acc["overall"]]:
        stats["above_chance"] = bool(stats["ci95"] and stats["ci95"][0] > CHANCE)
    return {**acc, "failed": failed}


# --------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------
def audit_mc(rows: Sequence[Mapping], *, baselines: Sequence[str] = BLIND_BASELINES, seed: int = 0,
             llm_client: Any = None, concurrency: int | None = None, encoder: Any = None,
             progress: bool = True) -> tuple[dict, list[dict]]:
    """Blind baselines, answer-letter balance and option lengths of MC rows; ``(results, items)``.

    A baseline that cannot run (e.g. ``centroid`` without the sentence encoder) is recorded as
    skipped with the reason. With ``llm_client`` (an :class:`~harmonyset_hf.llm.LLMClient`) the
    text-only LLM runs too.
    """
    rows = list(rows)
    picks: dict[str, list[str | None]] = {}
    replies: dict[str, list[str | None]] = {}
    skipped: dict[str, str] = {}
    for name in baselines:
        try:
            picks[name] = list(blind_letters(rows, name, seed=seed, encoder=encoder))
        except ConfigError as err:
            skipped[name] = str(err)
            log.warning("blind baseline %s skipped: %s", name, err)
    if llm_client is not None:
        replies["llm"] = llm_replies(rows, llm_client, concurrency=concurrency, progress=progress)
        picks["llm"] = [None if r is None else parse_choice(r, row["options"]).letter
                        for r, row in zip(replies["llm"], rows)]
    results_b = {name: {"description": DESCRIPTIONS[name], **score_letters(rows, letters, replies.get(name))}
                 for name, letters in picks.items()}
    flags = [{"baseline": name, "aspect": aspect, "accuracy": s["accuracy"], "ci95": s["ci95"], "n": s["n"]}
             for name, res in results_b.items() for aspect, s in res["aspects"].items() if s["above_chance"]]
    by_aspect = {a: [r for r in rows if r["aspect"] == a] for a in ASPECTS}
    letters = {"aspects": {a: letter_uniformity([r["answer"] for r in rs]) for a, rs in by_aspect.items()},
               "overall": letter_uniformity([r["answer"] for r in rows])}
    lengths = {"aspects": {a: length_stats(rs) for a, rs in by_aspect.items()}, "overall": length_stats(rows)}
    results = {
        "kind": "audit-mc", "format": 1, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(rows), "chance": CHANCE, "seed": seed,
        "baselines": results_b, "skipped": skipped, "flags": flags,
        "letters": letters, "lengths": lengths,
        "llm": ({"prompt_prefix": LLM_PREFIX, **llm_client.describe(), "usage": llm_client.usage.as_dict()}
                if llm_client is not None else None),
        "package_versions": package_versions(),
    }
    items = []
    for k, row in enumerate(rows):
        options = option_list(row["options"])
        item = {"question_id": row["question_id"], "aspect": row["aspect"], "answer": row["answer"],
                "correct_length_rank": length_rank(options, OPTION_LETTERS.index(row["answer"]))[0],
                "picks": {name: letters_[k] for name, letters_ in picks.items()}}
        if "llm" in replies:
            item["llm_reply"] = replies["llm"][k]
        items.append(item)
    return results, items


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def mc_audit_markdown(res: dict) -> str:
    """The MC audit as markdown: baseline accuracies with flags, letter balance, option lengths."""
    names = list(res["baselines"])
    lines = ["# HarmonySet-MC bias audit", "",
             f"{res['questions']} questions; chance is {_pct(res['chance'])}. Blind baselines never see the clip. "
             "**Flagged** (⚑): the 95 % interval lies wholly above chance, so the options alone give the answer "
             "away more often than guessing.", "",
             "| aspect | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key in [*ASPECTS, "overall"]:
        cells = []
        for name in names:
            s = res["baselines"][name]["overall" if key == "overall" else "aspects"]
            s = s if key == "overall" else s[key]
            ci = s["ci95"]
            span = f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
            cells.append(f"{'⚑ ' if s.get('above_chance') else ''}{_pct(s['accuracy'])}{span}")
        lines.append(f"| {ASPECT_NAMES.get(key, key)} | " + " | ".join(cells) + " |")
    for name, reason in res["skipped"].items():
        lines.append(f"\n{name} skipped: {reason}")
    if res["flags"]:
        lines += ["", "Flagged: " + "; ".join(f"{f['baseline']} on {ASPECT_NAMES[f['aspect']]} "
                                              f"({_pct(f['accuracy'])})" for f in res["flags"])]
    lines += ["", "## Answer letters", "", "| aspect | A | B | C | D | chi-square | p |", "| --- |" + " --- |" * 6]
    for key in [*ASPECTS, "overall"]:
        u = res["letters"]["overall"] if key == "overall" else res["letters"]["aspects"][key]
        chi = "n/a" if u["chi2"] is None else f"{u['chi2']:.2f}"
        p = "n/a" if u["p_value"] is None else f"{u['p_value']:.3g}"
        lines.append(f"| {ASPECT_NAMES.get(key, key)} | " + " | ".join(str(u["counts"][k]) for k in OPTION_LETTERS)
                     + f" | {chi} | {p} |")
    lines += ["", "A small p (below 0.05) means the answer letters are not spread evenly, so a model that "
              "favours one letter gains or loses accuracy for reasons unrelated to the clip.", "",
              "## Option lengths", "",
              "| aspect | correct (chars) | distractor (chars) | correct is longest | mean rank (1 = longest) |",
              "| --- | --- | --- | --- | --- |"]
    for key in [*ASPECTS, "overall"]:
        s = res["lengths"]["overall"] if key == "overall" else res["lengths"]["aspects"][key]
        if not s.get("n"):
            continue
        lines.append(f"| {ASPECT_NAMES.get(key, key)} | {s['mean_chars_correct']:.1f} | "
                     f"{s['mean_chars_distractor']:.1f} | {_pct(s['correct_is_longest'])} | "
                     f"{s['mean_rank']:.2f} (unbiased 2.50) |")
    lines += ["", "Without a length cue the correct option is the longest about 25 % of the time and its mean "
              "rank is 2.5.", ""]
    return "\n".join(lines)
