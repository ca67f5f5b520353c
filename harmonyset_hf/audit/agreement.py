"""Judge agreement: how two OE judges (or two runs of one) agree, per aspect, on the same items.

Reads two ``items.jsonl`` files written by ``eval oe``, joins them by id, leaves out (and counts)
items that either run failed, did not judge or does not hold, and gives per aspect and for the
item mean: Pearson and Spearman correlations, the mean absolute difference, the mean difference
(B - A, a judge's leniency), exact and within-one-point agreement, and Krippendorff's alpha with
the interval metric. Alpha is the one to read first: it is 1 for perfect agreement, 0 for
agreement no better than chance pairing of the pooled scores, and it penalises a constant offset
between the judges, which correlations ignore.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import HarmonySetError
from ..io import read_jsonl
from ..schema import ASPECT_NAMES, ASPECTS

MAX_LISTED = 20


class AgreementError(HarmonySetError):
    """Items files that cannot be compared (missing, not eval-oe items, nothing in common)."""


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------
def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r of two equal-length series; None with fewer than 2 points or a constant series."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"series of different lengths ({n} and {len(y)})")
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson's r of the tie-averaged ranks); None where Pearson's would be."""
    if len(x) != len(y):
        raise ValueError(f"series of different lengths ({len(x)} and {len(y)})")
    return pearson(ranks(x), ranks(y))


def _interval(a: float, b: float) -> float:
    return (a - b) ** 2


def _nominal(a: float, b: float) -> float:
    return float(a != b)


ALPHA_METRICS: dict[str, Callable[[float, float], float]] = {"interval": _interval, "nominal": _nominal}


def krippendorff_alpha(units: Sequence[Sequence[float | None]], metric: str = "interval") -> float | None:
    """Krippendorff's alpha of units (each: the values its coders gave; None = not coded).

    Units with fewer than two values are not pairable and are left out. ``metric`` is ``interval``
    (squared difference, the one for 1-10 scores) or ``nominal``. None when no pairs remain or
    every pairable value is the same (no expected disagreement).
    """
    delta = ALPHA_METRICS[metric]
    pairable = [[float(v) for v in unit if v is not None] for unit in units]
    pairable = [u for u in pairable if len(u) >= 2]
    values = [v for u in pairable for v in u]
    n = len(values)
    if n < 2:
        return None
    observed = sum(sum(delta(a, b) for i, a in enumerate(u) for j, b in enumerate(u) if i != j) / (len(u) - 1)
                   for u in pairable) / n
    # Expected disagreement over all pairs of pairable values: grouped by distinct value for speed.
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    distinct = list(counts.items())
    expected = sum(ca * cb * delta(a, b) for a, ca in distinct for b, cb in distinct) / (n * (n - 1))
    if expected == 0:
        return None
    return 1 - observed / expected


def compare_scores(a: Sequence[float], b: Sequence[float]) -> dict:
    """Agreement of two judges' scores on the same items: correlations, differences, alpha."""
    n = len(a)
    diffs = [y - x for x, y in zip(a, b)]
    return {
        "n": n,
        "mean_a": sum(a) / n if n else None,
        "mean_b": sum(b) / n if n else None,
        "mean_difference": sum(diffs) / n if n else None,
        "mean_abs_difference": sum(abs(d) for d in diffs) / n if n else None,
        "exact_agreement": sum(abs(d) < 1e-9 for d in diffs) / n if n else None,
        "within_1": sum(abs(d) <= 1 + 1e-9 for d in diffs) / n if n else None,
        "pearson": pearson(a, b),
        "spearman": spearman(a, b),
        "krippendorff_alpha": krippendorff_alpha(list(zip(a, b)), "interval"),
    }


# --------------------------------------------------------------------------------------------
# Items files
# --------------------------------------------------------------------------------------------
def _items_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / "items.jsonl" if path.is_dir() else path


def read_oe_items(path: str | os.PathLike) -> tuple[dict[str, dict | None], dict]:
    """Scores keyed by id from an ``eval oe`` items.jsonl (None for failed/missing items), and its judge."""
    path = _items_path(path)
    if not path.exists():
        raise AgreementError(f"items file not found: {path}")
    try:
        records = list(read_jsonl(path))
    except ValueError as err:
        raise AgreementError(f"{path}: {err}") from None
    scores: dict[str, dict | None] = {}
    for number, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or "id" not in rec or "status" not in rec or "question_id" in rec:
            raise AgreementError(f"{path}: line {number} is not an item of `harmonyset eval oe` "
                                 f"(needs 'id' and 'status'; MC items cannot be compared)")
        s = rec.get("scores")
        ok = rec["status"] == "scored" and isinstance(s, dict) and all(a in s for a in ASPECTS)
        scores[str(rec["id"])] = {a: float(s[a]) for a in ASPECTS} if ok else None
    judge = None
    results_path = path.parent / "results.json"
    if results_path.exists():
        try:
            judge = json.loads(results_path.read_text(encoding="utf-8")).get("judge")
        except (json.JSONDecodeError, AttributeError):
            judge = None
    return scores, {"path": str(path), "items": len(scores), "judge": judge}


def judge_agreement(path_a: str | os.PathLike, path_b: str | os.PathLike) -> dict:
    """Per-aspect agreement of two eval-oe items files joined by id (unscored items excluded, counted)."""
    a, facts_a = read_oe_items(path_a)
    b, facts_b = read_oe_items(path_b)
    common = sorted(set(a) & set(b))
    joined = [i for i in common if a[i] is not None and b[i] is not None]
    if not common:
        raise AgreementError(f"{facts_a['path']} and {facts_b['path']} have no item id in common")
    excluded = {
        "only_in_a": len(set(a) - set(b)),
        "only_in_b": len(set(b) - set(a)),
        "unscored_in_a": sum(a[i] is None for i in common),
        "unscored_in_b": sum(b[i] is None for i in common),
        "unscored_in_both": sum(a[i] is None and b[i] is None for i in common),
    }
    excluded["unscored_ids"] = [i for i in common if a[i] is None or b[i] is None][:MAX_LISTED]
    aspects = {asp: compare_scores([a[i][asp] for i in joined], [b[i][asp] for i in joined]) for asp in ASPECTS}
    mean = compare_scores([sum(a[i].values()) / 4 for i in joined], [sum(b[i].values()) / 4 for i in joined])
    return {"kind": "audit-agreement", "a": facts_a, "b": facts_b, "joined": len(joined), "excluded": excluded,
            "aspects": aspects, "item_mean": mean}


def _f(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def agreement_markdown(res: dict) -> str:
    """A markdown table of an agreement result, with how to read it."""
    def label(facts: dict) -> str:
        j = facts.get("judge") or {}
        extra = f" ({j.get('model')}, {j.get('prompt_mode', j.get('kind'))})" if j else ""
        return f"`{facts['path']}`{extra}"

    ex = res["excluded"]
    lines = ["# Judge agreement", "", f"A: {label(res['a'])}  ", f"B: {label(res['b'])}", "",
             f"{res['joined']} items scored by both; excluded: {ex['unscored_in_a']} unscored in A, "
             f"{ex['unscored_in_b']} unscored in B, {ex['only_in_a']} only in A, {ex['only_in_b']} only in B.", "",
             "| aspect | alpha (interval) | Pearson | Spearman | mean abs diff | mean B-A | exact | within 1 "
             "| mean A | mean B |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = [(ASPECT_NAMES[a], res["aspects"][a]) for a in ASPECTS] + [("item mean", res["item_mean"])]
    for name, r in rows:
        lines.append(f"| {name} | {_f(r['krippendorff_alpha'])} | {_f(r['pearson'])} | {_f(r['spearman'])} | "
                     f"{_f(r['mean_abs_difference'], '.2f')} | {_f(r['mean_difference'], '+.2f')} | "
                     f"{_f(r['exact_agreement'], '.0%')} | {_f(r['within_1'], '.0%')} | {_f(r['mean_a'], '.2f')} | "
                     f"{_f(r['mean_b'], '.2f')} |")
    lines += ["", "Alpha near 1: B can stand in for A on that aspect; below about 0.67 the two judges rank and "
              "place items differently enough that their numbers should not be mixed. A large mean B-A with a "
              "high Pearson is a constant offset (one judge is more lenient): rankings agree, levels do not.", ""]
    return "\n".join(lines)
