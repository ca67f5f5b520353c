"""Three annotators -> one consensus per item: majority labels, merged sync points, agreement statistics.

Input is ``annotators.csv`` (columns ``id, annotator, sync`` and the 9 sub-aspects; multi-labels
``|``-separated; one row per annotator and item). Every row is checked against
:mod:`harmonyset_hf.schema`, and every problem is reported with its line, column and the valid
values. Per sub-aspect the consensus is the value given by a majority of the raters (2 of 3);
multi-label sub-aspects compare label *sets*. Items where a sub-aspect (or a sync point's code)
has no majority go to the review queue. The sync points of the raters are merged: points of
different raters within ``tolerance`` seconds are one point, kept when a majority marked it, at
the median time, with the majority code. Agreement per sub-aspect: Fleiss' kappa and the shares
of items that were unanimous, decided by majority, or sent to review (the three add up to 1).
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import schema
from ..errors import HarmonySetError
from ..io import atomic_write_json, atomic_write_text, write_jsonl
from ..text import SyncFormatError, format_sync, parse_sync

LABEL_COLUMNS: tuple[str, ...] = tuple(schema.LABELS)
CSV_COLUMNS: tuple[str, ...] = ("id", "annotator", "sync", *LABEL_COLUMNS)
DEFAULT_TOLERANCE = 2.0  # seconds: two raters' points this close are the same key point
DEFAULT_RATERS = 3
MAX_ERRORS_SHOWN = 30


class SheetError(HarmonySetError, ValueError):
    """A sheet (annotators.csv or a review sheet) with rows that do not fit the schema; lists every one."""

    def __init__(self, path: str, errors: list[str]):
        self.errors = errors
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        super().__init__(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(shown) + more)


def valid_values(column: str) -> str:
    """The valid values of a sheet column, for error messages."""
    if column == "sync":
        return "'0' or up to 3 points 'mm:ss,CODE' separated by ';' (CODE: A, B or C)"
    vocab = ", ".join(schema.LABELS[column])
    if column in schema.OPEN_LABELS:
        return f"one or more of {vocab} (other emotion words allowed), '|'-separated"
    if column in schema.MULTI_LABELS:
        return f"one or more of {vocab}, '|'-separated"
    return vocab


def parse_cell(column: str, value: str) -> Any:
    """A sheet cell as a canonical value (sync string, label, or label list); raises ValueError naming why."""
    value = (value or "").strip()
    if column == "sync":
        try:
            return format_sync(parse_sync(value if value else "0"))
        except SyncFormatError as err:
            raise ValueError(str(err)) from None
    if not value:
        raise ValueError("empty")
    if column in schema.MULTI_LABELS:
        return schema.normalize_label(column, value.replace(",", "|"))
    return schema.normalize_label(column, value)


def value_key(value: Any) -> str:
    """A hashable, order-free key of a label value (label sets compare as sets)."""
    if isinstance(value, list):
        return "|".join(sorted(value))
    return str(value)


def cell_text(value: Any) -> str:
    """A label value as written in a sheet (lists '|'-joined)."""
    if value is None:
        return ""
    return "|".join(value) if isinstance(value, list) else str(value)


@dataclass
class Rating:
    """One annotator's row, validated."""

    id: str
    annotator: str
    sync: str
    labels: dict[str, Any]
    line: int


def read_sheet_text(path: str | os.PathLike) -> str:
    """A CSV sheet's text; a missing or unreadable file is one error naming it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise HarmonySetError(f"{path}: cannot read the sheet ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise HarmonySetError(f"{path}: not a UTF-8 CSV file ({err.reason} at byte {err.start})") from None


def cell_count_problem(raw: dict, header: list[str]) -> str | None:
    """Why a csv.DictReader row has more or fewer cells than the header (None when it fits)."""
    extra, short = raw.get(None) or [], sum(v is None for k, v in raw.items() if k is not None)
    if not extra and not short:
        return None
    hint = ("; a value with commas (a sync such as 00:10,A; 00:20,B) must be in double quotes"
            if extra else "")
    return f"{len(header) + len(extra) - short} cell(s), the header has {len(header)}{hint}"


def read_annotator_rows(path: str | os.PathLike, text: str | None = None) -> list[Rating]:
    """Every row of an annotators.csv, validated; raises :class:`SheetError` listing each bad cell."""
    path = str(path)
    text = read_sheet_text(path) if text is None else text
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise SheetError(path, [f"header: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}"])
    errors: list[str] = []
    rows: list[Rating] = []
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for number, raw in enumerate(reader, start=2):  # line 1 is the header
        shape = cell_count_problem(raw, header)
        raw = {(k or "").strip(): (v or "") for k, v in raw.items() if k is not None}
        item_id, annotator = raw.get("id", "").strip(), raw.get("annotator", "").strip()
        where = f"line {number} (id {item_id or '?'}, annotator {annotator or '?'})"
        if shape:  # the cells are shifted: one problem for the row, not one per column
            errors.append(f"{where}: {shape}")
            continue
        if item_id and annotator:
            seen[(item_id, annotator)].append(number)
        if not item_id:
            errors.append(f"{where}, column id: empty; every row needs the item id")
        if not annotator:
            errors.append(f"{where}, column annotator: empty; every row needs the annotator's name")
        values: dict[str, Any] = {}
        for column in ("sync", *LABEL_COLUMNS):
            try:
                values[column] = parse_cell(column, raw.get(column, ""))
            except (ValueError, schema.SchemaError) as err:
                errors.append(f"{where}, column {column}: {raw.get(column, '')!r} is not valid ({err}); "
                              f"valid: {valid_values(column)}")
        if item_id and annotator and len(values) == 1 + len(LABEL_COLUMNS):
            rows.append(Rating(item_id, annotator, values.pop("sync"), values, number))
    for (item_id, name), lines in seen.items():
        if len(lines) > 1:
            errors.append(f"lines {', '.join(map(str, lines))} (id {item_id}), column annotator: {name!r} rated this "
                          f"item {len(lines)} times")
    if errors:
        raise SheetError(path, errors)
    return rows


# --------------------------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------------------------
def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa of an items x categories count table (each row sums to the same number of raters).

    Returns None when it is undefined (fewer than 2 raters, no items, or chance agreement of 1,
    i.e. every rating fell into one category).
    """
    rows = [list(map(int, r)) for r in table]
    if not rows:
        return None
    n = sum(rows[0])
    if n < 2 or any(sum(r) != n for r in rows):
        raise ValueError("every item needs the same number (>= 2) of ratings for Fleiss' kappa")
    big_n = len(rows)
    k = max(len(r) for r in rows)
    p_bar = sum((sum(c * c for c in r) - n) / (n * (n - 1)) for r in rows) / big_n
    p_j = [sum(r[j] if j < len(r) else 0 for r in rows) / (big_n * n) for j in range(k)]
    p_e = sum(p * p for p in p_j)
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def count_table(votes: Iterable[Sequence[str]]) -> list[list[int]]:
    """Items x categories counts from each item's list of rater answers (keys)."""
    votes = [list(v) for v in votes]
    categories = sorted({v for vs in votes for v in vs})
    index = {c: i for i, c in enumerate(categories)}
    table = []
    for vs in votes:
        row = [0] * len(categories)
        for v in vs:
            row[index[v]] += 1
        table.append(row)
    return table


def majority(values: Sequence[Any], need: int) -> tuple[Any, str]:
    """(the majority value or None, 'unanimous' | 'majority' | 'none') of raters' values."""
    counts = Counter(value_key(v) for v in values)
    key, count = counts.most_common(1)[0]
    if count < need:
        return None, "none"
    winner = next(v for v in values if value_key(v) == key)
    return winner, "unanimous" if count == len(values) else "majority"


# --------------------------------------------------------------------------------------------
# Sync points
# --------------------------------------------------------------------------------------------
def merge_sync(strings: Sequence[str], tolerance: float = DEFAULT_TOLERANCE, need: int | None = None
               ) -> dict[str, Any]:
    """Merge raters' sync strings: clusters of points within ``tolerance`` s, kept with majority support.

    Returns ``{"sync", "points", "status", "problems", "clusters"}``; status is ``unanimous``
    (every rater marked every kept point with the same code, and nobody marked another),
    ``majority`` or ``none`` (a kept point's code has no majority, or too many points were kept).
    """
    raters = len(strings)
    need = need or raters // 2 + 1
    marks = sorted(((p.time, p.code, r) for r, s in enumerate(strings) for p in parse_sync(s)),
                   key=lambda m: (m[0], m[2]))
    clusters: list[list[tuple[float, str, int]]] = []
    for mark in marks:
        current = clusters[-1] if clusters else None
        if current and mark[0] - current[0][0] <= tolerance and all(m[2] != mark[2] for m in current):
            current.append(mark)
        else:
            clusters.append([mark])
    kept, problems, unanimous = [], [], True
    dropped = [c for c in clusters if len(c) < need]
    if dropped:
        unanimous = False
    for c in clusters:
        if len(c) < need:
            continue
        time = float(round(statistics.median(m[0] for m in c)))
        codes = Counter(m[1] for m in c)
        code, count = codes.most_common(1)[0]
        if count < need:
            problems.append(f"key point near {format_sync([{'time': time, 'code': 'A'}])[:-2]}: codes "
                            f"{'/'.join(sorted(m[1] for m in c))} have no majority")
            code = "B"  # provisional: the reviewer decides
        if len(c) < raters or count < raters:
            unanimous = False
        kept.append({"time": time, "code": code, "support": len(c)})
    if len(kept) > schema.MAX_SYNC_POINTS:
        problems.append(f"{len(kept)} key points have majority support; at most {schema.MAX_SYNC_POINTS} allowed")
        kept = sorted(sorted(kept, key=lambda p: -p["support"])[: schema.MAX_SYNC_POINTS], key=lambda p: p["time"])
    points = [{"time": p["time"], "code": p["code"]} for p in kept]
    status = "none" if problems else ("unanimous" if unanimous else "majority")
    return {"sync": format_sync(points), "points": points, "status": status, "problems": problems,
            "clusters": [[{"time": m[0], "code": m[1], "rater": m[2]} for m in c] for c in clusters]}


# --------------------------------------------------------------------------------------------
# Consensus
# --------------------------------------------------------------------------------------------
def consensus_records(rows: Sequence[Rating], raters: int = DEFAULT_RATERS,
                      tolerance: float = DEFAULT_TOLERANCE) -> list[dict[str, Any]]:
    """One consensus record per item (in order of first appearance); raises SheetError on a wrong rater count."""
    by_item: dict[str, list[Rating]] = {}
    for r in rows:
        by_item.setdefault(r.id, []).append(r)
    wrong = [f"id {i} (lines {', '.join(str(r.line) for r in rs)}): {len(rs)} rating(s), expected {raters}"
             for i, rs in by_item.items() if len(rs) != raters]
    if wrong:
        raise SheetError("annotators", wrong)
    need = raters // 2 + 1
    out = []
    for item_id, ratings in by_item.items():
        labels, votes, status, review = {}, {}, {}, []
        for column in LABEL_COLUMNS:
            values = [r.labels[column] for r in ratings]
            value, state = majority(values, need)
            labels[column], votes[column], status[column] = value, values, state
            if state == "none":
                review.append(f"{column}: no majority ({' / '.join(cell_text(v) for v in values)})")
        merged = merge_sync([r.sync for r in ratings], tolerance, need)
        status["sync"] = merged["status"]
        review += [f"sync: {p}" for p in merged["problems"]]
        out.append({"id": item_id, "annotators": [r.annotator for r in ratings], "sync": merged["sync"],
                    "sync_points": merged["points"], "labels": labels,
                    "votes": {"sync": [r.sync for r in ratings], **votes}, "status": status, "review": review})
    return out


def agreement(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per sub-aspect (and sync): Fleiss' kappa, shares unanimous / majority / to review, counts."""
    out: dict[str, Any] = {}
    n = len(records)
    for column in (*LABEL_COLUMNS, "sync"):
        states = Counter(r["status"][column] for r in records)
        if column == "sync":  # kappa of "has key points" (yes/no) across raters
            votes = [["points" if parse_sync(s) else "0" for s in r["votes"]["sync"]] for r in records]
        else:
            votes = [[value_key(v) for v in r["votes"][column]] for r in records]
        kappa = fleiss_kappa(count_table(votes)) if records else None
        out[column] = {
            "fleiss_kappa": None if kappa is None else round(kappa, 4),
            "unanimous": round(states["unanimous"] / n, 4) if n else None,
            "majority": round(states["majority"] / n, 4) if n else None,
            "review": round(states["none"] / n, 4) if n else None,
            "counts": {"unanimous": states["unanimous"], "majority": states["majority"], "review": states["none"]},
        }
    out["sync"]["kappa_of"] = "whether the rater marked key points at all (yes/no)"
    return {"items": n, "items_to_review": sum(1 for r in records if r["review"]), "sub_aspects": out}


def review_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The review queue as flat rows: id, reasons, and each rater's answers of the undecided columns."""
    rows = []
    for r in records:
        if not r["review"]:
            continue
        rows.append({"id": r["id"], "reasons": "; ".join(r["review"]), "annotators": "|".join(r["annotators"])})
    return rows


def run_consensus(input_csv: str | os.PathLike, out_dir: str | os.PathLike, raters: int = DEFAULT_RATERS,
                  tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """annotators.csv -> ``out_dir/consensus.jsonl``, ``review.csv``, ``agreement.json``; returns a summary."""
    if not tolerance >= 0:
        raise HarmonySetError(f"--tolerance must be >= 0 seconds, got {tolerance}")
    if raters < 1:
        raise HarmonySetError(f"--raters must be >= 1, got {raters}")
    rows = read_annotator_rows(input_csv)
    records = consensus_records(rows, raters=raters, tolerance=tolerance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "consensus.jsonl", records)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=("id", "reasons", "annotators"), lineterminator="\n")
    writer.writeheader()
    writer.writerows(review_rows(records))
    atomic_write_text(out / "review.csv", buf.getvalue())
    stats = {"input": str(input_csv), "raters": raters, "tolerance_s": tolerance, **agreement(records)}
    atomic_write_json(out / "agreement.json", stats)
    return {"items": len(records), "rows": len(rows), "to_review": stats["items_to_review"],
            "agreement": stats, "out_dir": str(out)}
