"""The reviewer's pass over the consensus: a sheet out, fixes and a Low/Medium/High rating back in.

:func:`export_sheet` writes one row per item (or only the review queue): the consensus value of
every column (empty where the raters had no majority), what each rater said, and the reasons for
review. The reviewer corrects any cell, fills the undecided ones and rates how well the
consensus reflects the video (``Low``, ``Medium``, ``High``; the paper's Table 3: 3% / 5% / 92%).
:func:`apply_sheet` reads it back, checks every cell against the schema (errors name the line,
the column and the valid values), and writes the reviewed records and the Table 3 figures.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, atomic_write_text, read_jsonl, write_jsonl
from ..text import parse_sync
from .consensus import (
    LABEL_COLUMNS,
    SheetError,
    cell_count_problem,
    cell_text,
    parse_cell,
    read_sheet_text,
    valid_values,
    value_key,
)

RATINGS: tuple[str, ...] = ("Low", "Medium", "High")
PAPER_TABLE3: dict[str, float] = {"Low": 0.03, "Medium": 0.05, "High": 0.92}
COLUMNS = ("sync", *LABEL_COLUMNS)


def sheet_columns() -> list[str]:
    """The reviewer sheet's header."""
    cols = ["id", "needs_review", "rating"]
    for c in COLUMNS:
        cols += [c, f"{c}_votes"]
    return [*cols, "comment"]


def export_sheet(consensus_path: str | os.PathLike, sheet_path: str | os.PathLike, queue_only: bool = False) -> int:
    """Write the reviewer sheet (CSV) of a consensus.jsonl; returns the number of rows."""
    records = list(read_jsonl(consensus_path))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=sheet_columns(), lineterminator="\n")
    writer.writeheader()
    n = 0
    for r in records:
        if queue_only and not r["review"]:
            continue
        row = {"id": r["id"], "needs_review": "; ".join(r["review"]), "rating": "", "comment": "",
               "sync": r["sync"],
               "sync_votes": " / ".join(r["votes"]["sync"])}
        for c in LABEL_COLUMNS:
            row[c] = cell_text(r["labels"][c])
            row[f"{c}_votes"] = " / ".join(cell_text(v) for v in r["votes"][c])
        writer.writerow(row)
        n += 1
    atomic_write_text(sheet_path, buf.getvalue())
    return n


def read_sheet(sheet_path: str | os.PathLike, known_ids: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """The reviewer's rows by id (rating, values of every column), validated; raises SheetError listing problems."""
    path = str(sheet_path)
    reader = csv.DictReader(io.StringIO(read_sheet_text(path)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("id", "rating", *COLUMNS) if c not in header]
    if missing:
        raise SheetError(path, [f"header: missing column(s) {', '.join(missing)}"])
    errors, out = [], {}
    for number, raw in enumerate(reader, start=2):
        shape = cell_count_problem(raw, header)
        raw = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        item_id = raw.get("id", "")
        where = f"line {number} (id {item_id or '?'})"
        if shape:  # the cells are shifted: one problem for the row, not one per column
            errors.append(f"{where}: {shape}")
            continue
        if not item_id:
            errors.append(f"{where}, column id: empty")
            continue
        if known_ids is not None and item_id not in known_ids:
            errors.append(f"{where}, column id: {item_id!r} is not in the consensus")
            continue
        if item_id in out:
            errors.append(f"{where}, column id: {item_id!r} appears twice (first on line {out[item_id]['line']})")
            continue
        rating = raw.get("rating", "")
        match = next((r for r in RATINGS if r.lower() == rating.lower()), None)
        if rating and match is None:
            errors.append(f"{where}, column rating: {rating!r} is not valid; valid: {', '.join(RATINGS)} "
                          "(or empty when not rated)")
        values: dict[str, Any] = {}
        for column in COLUMNS:
            cell = raw.get(column, "")
            if column != "sync" and not cell:
                votes = raw.get(f"{column}_votes", "")
                errors.append(f"{where}, column {column}: empty (no majority{': ' + votes if votes else ''}); "
                              f"a value is required; valid: {valid_values(column)}")
                continue
            try:
                values[column] = parse_cell(column, cell)
            except Exception as err:  # ValueError or SchemaError: both name the reason
                errors.append(f"{where}, column {column}: {cell!r} is not valid ({err}); valid: {valid_values(column)}")
        out[item_id] = {"line": number, "rating": match, "values": values, "comment": raw.get("comment", "")}
    if errors:
        raise SheetError(path, errors)
    return out


def table3(ratings: list[str | None]) -> dict[str, Any]:
    """Counts and shares of Low/Medium/High over the rated items, beside the paper's figures."""
    counts = Counter(r for r in ratings if r)
    rated = sum(counts.values())
    return {"rated": rated, "unrated": len(ratings) - rated,
            "counts": {r: counts[r] for r in RATINGS},
            "shares": {r: round(counts[r] / rated, 4) if rated else None for r in RATINGS},
            "paper": dict(PAPER_TABLE3)}


def apply_sheet(consensus_path: str | os.PathLike, sheet_path: str | os.PathLike,
                out_dir: str | os.PathLike) -> dict[str, Any]:
    """Apply a filled reviewer sheet: ``out_dir/reviewed.jsonl`` and ``review_summary.json`` (Table 3)."""
    records = list(read_jsonl(consensus_path))
    sheet = read_sheet(sheet_path, {r["id"] for r in records})
    unreviewed = [r["id"] for r in records if r["review"] and r["id"] not in sheet]
    if unreviewed:
        raise SheetError(str(sheet_path), [f"id {i}: in the review queue but not in the sheet" for i in unreviewed])
    fixes: Counter = Counter()
    reviewed = []
    for r in records:
        row = sheet.get(r["id"])
        rec = {**r, "rating": None, "fixes": {}}
        if row is not None:
            rec["rating"] = row["rating"]
            for column, value in row["values"].items():
                old = r["sync"] if column == "sync" else r["labels"][column]
                if old is None or value_key(value) != value_key(old):
                    rec["fixes"][column] = {"from": old, "to": value}
                    fixes[column] += 1
                    if column == "sync":
                        rec["sync"] = value
                        rec["sync_points"] = [p.as_dict() for p in parse_sync(value)]
                    else:
                        rec["labels"] = {**rec["labels"], column: value}
            if row["comment"]:
                rec["comment"] = row["comment"]
            rec["review"] = []
        reviewed.append(rec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "reviewed.jsonl", reviewed)
    summary = {"consensus": str(consensus_path), "sheet": str(sheet_path), "items": len(records),
               "reviewed": len(sheet), "items_fixed": sum(1 for r in reviewed if r["fixes"]),
               "fixes_by_column": dict(fixes), "table3": table3([sheet[i]["rating"] for i in sheet])}
    atomic_write_json(out / "review_summary.json", summary)
    return summary
