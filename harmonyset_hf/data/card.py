"""The dataset card of a Hub folder: statistics, figures like the paper's Figure 2, and README.md.

The README is rendered from ``dataset_card.md`` beside this module (a ``string.Template`` shipped inside the
package and read with ``importlib.resources``, so an installed wheel renders it too: YAML header
with license, task categories and the ``configs:`` block, then the text and the citation).
Statistics are computed from the Hub folder's parquet files, never typed in.
"""

from __future__ import annotations

import json
import os
import string
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from .. import schema
from ..errors import HarmonySetError
from ..io import atomic_write_text
from .folder import HubError, config_table, configs_yaml

TEMPLATE = resources.files(__package__) / "dataset_card.md"
DURATION_BINS = (0, 10, 20, 30, 40, 50, 60, 70)
WORD_BINS = (0, 100, 200, 300, 400, 500, 600, 800, 1000)


class CardError(HarmonySetError):
    """A card that cannot be rendered (no template, no data)."""


def _words(column) -> list[int]:
    import pyarrow.compute as pc

    return pc.list_value_length(pc.utf8_split_whitespace(column.fill_null(""))).to_pylist()


def _histogram(values: list[float], edges: tuple[float, ...]) -> dict[str, int]:
    counts = Counter()
    for v in values:
        for lo, hi in zip(edges, edges[1:]):
            if lo <= v < hi:
                counts[f"{lo}-{hi}"] += 1
                break
        else:
            counts[f">={edges[-1]}"] += 1
    return {k: counts[k] for k in [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])] + [f">={edges[-1]}"]}


def _describe(values: list[float]) -> dict[str, float]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": round(values[0], 2), "mean": round(sum(values) / len(values), 2),
            "median": round(values[len(values) // 2], 2), "max": round(values[-1], 2)}


def compute_stats(hub_dir: str | os.PathLike) -> dict[str, Any]:
    """Statistics of a Hub folder: items per split, taxonomy, durations, words, key timestamps, labels."""
    stats: dict[str, Any] = {"configs": {}}
    durations: list[float] = []
    categories, subcategories = Counter(), Counter()
    labels: dict[str, Counter] = {k: Counter() for k in schema.LABELS}
    words: list[int] = []
    aspect_words: dict[str, list[int]] = {a: [] for a in schema.ASPECTS}
    with_key, items = 0, 0
    for config in schema.CONFIGS:
        try:
            table = config_table(hub_dir, config)
        except HubError:
            continue
        entry: dict[str, Any] = {"split": schema.SPLITS[config], "rows": table.num_rows}
        if config == "mc":
            entry["items"] = len(set(table.column("id").to_pylist()))
            entry["questions_per_aspect"] = dict(Counter(table.column("aspect").to_pylist()))
            entry["answer_letters"] = dict(sorted(Counter(table.column("answer").to_pylist()).items()))
            stats["configs"][config] = entry
            continue
        cats = table.column("category").to_pylist()
        entry["categories"] = dict(Counter(c or "unknown" for c in cats))
        stats["configs"][config] = entry
        items += table.num_rows
        categories.update(c or "unknown" for c in cats)
        subcategories.update(f"{c or 'unknown'}/{s or 'unknown'}"
                             for c, s in zip(cats, table.column("subcategory").to_pylist()))
        durations += [d for d in table.column("duration").to_pylist() if d is not None]
        words += _words(table.column("annotation"))
        for aspect in schema.ASPECTS:
            aspect_words[aspect] += _words(table.column(aspect))
        with_key += sum(1 for p in table.column("sync_points").to_pylist() if p)
        for row in table.column("labels").to_pylist():
            for key, value in (row or {}).items():
                for v in (value if isinstance(value, list) else [value]):
                    if v:
                        labels[key][v] += 1
    if not stats["configs"]:
        why = "no such folder" if not Path(hub_dir).is_dir() else "it holds no config parquet files"
        raise CardError(f"{hub_dir}: {why}; nothing to describe (make a Hub folder with `harmonyset build`)")
    stats.update({
        "items": items,
        "categories": dict(categories.most_common()),
        "subcategories": dict(subcategories.most_common()),
        "duration": {**_describe(durations), "hours": round(sum(durations) / 3600, 2),
                     "histogram": _histogram(durations, DURATION_BINS)},
        "words": {**_describe(words), "histogram": _histogram(words, WORD_BINS),
                  "per_aspect_mean": {a: _describe(v).get("mean") for a, v in aspect_words.items()}},
        "key_timestamp_share": round(with_key / items, 4) if items else None,
        "labels": {k: dict(v.most_common()) for k, v in labels.items() if v},
    })
    return stats


def make_figures(stats: dict[str, Any], out_dir: str | os.PathLike) -> list[str]:
    """PNG figures like the paper's Figure 2 (taxonomy, durations, words, labels); returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    cats = stats["categories"]
    palette = plt.get_cmap("tab10").colors
    color = {c: palette[i % len(palette)] for i, c in enumerate(cats)}
    left.pie(list(cats.values()), labels=[schema.CATEGORY_NAMES.get(c, c) for c in cats], autopct="%1.0f%%",
             colors=[color[c] for c in cats], wedgeprops={"width": 0.45}, pctdistance=0.78)
    left.set_title("Categories")
    subs = list(stats["subcategories"].items())[:30][::-1]  # bars coloured by their category, as in the pie
    right.barh([s.split("/", 1)[1] for s, _ in subs], [n for _, n in subs],
               color=[color.get(s.split("/", 1)[0], "grey") for s, _ in subs])
    right.set_title("Subcategories (top 30)")
    save(fig, "categories.png")
    for key, title, xlabel in (("duration", "Video duration", "seconds"),
                               ("words", "Words per annotation", "words")):
        hist = stats[key]["histogram"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(list(hist), list(hist.values()))
        ax.set_title(f"{title} (mean {stats[key].get('mean', 0)})")
        ax.set_xlabel(xlabel)
        ax.tick_params(axis="x", rotation=45)
        save(fig, f"{key}.png")
    if stats["labels"]:
        keys = list(stats["labels"])
        fig, axes = plt.subplots(3, 3, figsize=(13, 10))
        for ax, key in zip(axes.flat, keys):
            dist = stats["labels"][key]
            ax.barh(list(dist)[::-1], list(dist.values())[::-1])
            ax.set_title(key.replace("_", " "))
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        save(fig, "labels.png")
    return names


def _table(rows: list[tuple], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def render_card(hub_dir: str | os.PathLike, report: dict | None = None,
                template: str | os.PathLike | None = None) -> Path:
    """Compute the statistics and figures of a Hub folder and write its README.md from the template."""
    import yaml

    hub = Path(hub_dir)
    template = Path(template) if template else TEMPLATE
    if not template.is_file():
        raise CardError(f"card template {template} not found")
    if report is None and (hub / "build_report.json").is_file():
        report = json.loads((hub / "build_report.json").read_text(encoding="utf-8"))
    stats = compute_stats(hub)
    figures = make_figures(stats, hub / "figures")
    atomic_write_text(hub / "figures" / "stats.json", json.dumps(stats, indent=2) + "\n")
    annotations_only = bool(report and report.get("annotations_only"))
    configs = [(c, e["split"], e["rows"], e.get("items", e["rows"])) for c, e in stats["configs"].items()]
    durations = stats["duration"]
    values = {
        "configs_yaml": yaml.safe_dump({"configs": configs_yaml(hub)}, sort_keys=False).rstrip(),
        "size_category": _size_category(stats["items"]),
        "media_note": ("This folder holds the annotations only (`video` is the file name the release gives); "
                       "get the videos separately." if annotations_only else
                       "Videos are under `videos/<split>/NNN/` and decode through the `video` column."),
        "configs_table": _table(configs, ("config", "split", "rows", "items")),
        "category_table": _table([(schema.CATEGORY_NAMES.get(c, c), n) for c, n in stats["categories"].items()],
                                 ("category", "items")),
        "duration_summary": (f"{durations.get('n', 0)} videos, {durations.get('min')}-{durations.get('max')} s, "
                             f"mean {durations.get('mean')} s, {durations['hours']} h in all"),
        "words_summary": (f"mean {stats['words'].get('mean')} words per annotation; per aspect: "
                          + ", ".join(f"{schema.ASPECT_NAMES[a]} {m}"
                                      for a, m in stats["words"]["per_aspect_mean"].items())),
        "key_timestamp_share": ("n/a" if stats["key_timestamp_share"] is None
                                else f"{100 * stats['key_timestamp_share']:.1f}%"),
        "labels_table": _table([(k, ", ".join(f"{v} {n}" for v, n in d.items())) for k, d in stats["labels"].items()],
                               ("sub-aspect", "labels")) if stats["labels"] else "No human labels in this build.",
        "figures": "\n".join(f"![{f[:-4]}](figures/{f})" for f in figures),
        "skipped": str(report.get("skipped_count", 0)) if report else "unknown",
    }
    text = string.Template(template.read_text(encoding="utf-8")).safe_substitute(values)
    return atomic_write_text(hub / "README.md", text)
