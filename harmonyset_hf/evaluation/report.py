"""Reports: the paper's Table 2 (OE, categories x aspects + Overall) and Table 5 (MC accuracy) layouts.

Several ``results.json`` files go side by side, in markdown and CSV, with PNG charts; the paper's
own numbers can be added as labelled reference rows: every cell of Table 2 and Table 5, and the
paper's Table 4 (automated vs HarmonySet annotations) and Table 6 (16/32/64 frames) beside OE
results. MC accuracies always carry their 95 % interval and invalid-answer rate, and the 25 %
chance level is shown beside them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import HarmonySetError
from ..io import atomic_write_bytes, atomic_write_text
from ..schema import ASPECT_NAMES, ASPECTS, CATEGORIES, CATEGORY_NAMES
from .paper_tables import TABLE2_OE, TABLE4_OE, TABLE5_MC, TABLE6_FRAMES
from .scoring import CHANCE

# Reference numbers from the HarmonySet paper (paper_tables.py): data, not results of this toolkit.
# OE Overall (Tables 2 and 6; judge GPT-4o, 1-10) and MC accuracy (Table 5, fractions), R&S / T / E / C.
PAPER_REFERENCE: dict[str, dict[str, dict[str, float]]] = {
    "oe": {**{name: cells["overall"] for name, cells in TABLE2_OE.items()},
           **{f"VideoLLaMA2+HarmonySet ({n} frames)": s for n, s in TABLE6_FRAMES.items() if n != 16}},
    "mc": TABLE5_MC,
}
PAPER_LABEL = "paper: "
SHORT = {"rhythm": "R&S", "theme": "T&C", "emotion": "Emo", "culture": "Cult"}


class ReportError(HarmonySetError):
    """Results that cannot be reported (missing file, not a results.json)."""


def load_results(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Read results.json files (a folder means its results.json); labels made unique by their folder."""
    out = []
    for p in paths:
        path = Path(p)
        path = path / "results.json" if path.is_dir() else path
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReportError(f"results file not found: {path}") from None
        except json.JSONDecodeError as err:  # e.g. a predictions .jsonl given instead of its results
            raise ReportError(f"{path}: not a HarmonySet results.json (not JSON: {err.msg}); give the folder "
                              "`harmonyset eval --out` wrote") from None
        if not isinstance(results, dict) or results.get("config") not in ("mc", "oe", "pair"):
            config = results.get("config") if isinstance(results, dict) else None
            raise ReportError(f"{path}: not a HarmonySet results.json (config {config!r}); give the folder "
                              "`harmonyset eval --out` wrote")
        results["_label"] = str(results.get("model") or path.parent.name)
        results["_path"] = str(path)
        out.append(results)
    seen: dict[str, int] = {}
    for results in out:
        seen[results["_label"]] = seen.get(results["_label"], 0) + 1
    for results in out:
        if seen[results["_label"]] > 1:
            results["_label"] = f"{results['_label']} ({Path(results['_path']).parent.name})"
    return out


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell or "–" for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _judge_name(results: dict) -> str:
    judge = results.get("judge") or {}
    name = str(judge.get("model") or judge.get("name") or judge.get("kind") or "")
    if judge.get("proxy"):
        return f"{judge.get('kind', 'proxy')} proxy ({name.rsplit('/', 1)[-1]})"
    return name


def oe_table(results: list[dict], paper: bool = False) -> tuple[list[str], list[list[str]]]:
    """Table 2 layout: one row per model; columns category x aspect, then Overall x aspect."""
    groups = [*CATEGORIES, "overall"]
    header = ["Model", "Judge"] + [f"{CATEGORY_NAMES.get(g, 'Overall')} {SHORT[a]}" for g in groups for a in ASPECTS]
    header += ["Items", "Failed", "Missing"]
    rows = []
    for r in (r for r in results if r["config"] == "oe"):
        row = [r["_label"], _judge_name(r)]
        for g in groups:
            cell = r["overall"] if g == "overall" else r["categories"].get(g, {})
            row += [_num(cell.get(a)) for a in ASPECTS]
        row += [str(r["counts"].get("scored", "")), str(r["counts"].get("failed", "")),
                str(r["counts"].get("missing", ""))]
        rows.append(row)
    if paper:
        rows += _paper_oe_rows(TABLE2_OE)
    return header, rows


def _paper_oe_rows(table: dict[str, dict[str, dict[str, float]]]) -> list[list[str]]:
    """Rows of a paper table in the Table 2 layout (every category x aspect cell, then Overall)."""
    return [[PAPER_LABEL + name, "GPT-4o (paper)"]
            + [_num(cells[g][a]) for g in (*CATEGORIES, "overall") for a in ASPECTS] + ["", "", ""]
            for name, cells in table.items()]


def paper_table4() -> tuple[list[str], list[list[str]]]:
    """The paper's Table 4 in the Table 2 layout: VideoLLaMA2 on 10k automated vs 10k HarmonySet annotations."""
    header, _ = oe_table([])
    return header, _paper_oe_rows(TABLE4_OE)


def paper_table6() -> tuple[list[str], list[list[str]]]:
    """The paper's Table 6: VideoLLaMA2 trained on HarmonySet with 16, 32 and 64 frames (Overall, 1-10)."""
    header = ["Model", "Frames", *[ASPECT_NAMES[a] for a in ASPECTS]]
    return header, [[PAPER_LABEL + "VideoLLaMA2+HarmonySet", str(n), *[_num(s[a]) for a in ASPECTS]]
                    for n, s in TABLE6_FRAMES.items()]


def oe_overall_table(results: list[dict], paper: bool = False) -> tuple[list[str], list[list[str]]]:
    """The Overall columns of Table 2 alone (models x aspects), easy to read in a terminal."""
    header = ["Model", "Judge", *[ASPECT_NAMES[a] for a in ASPECTS], "Items", "Failed"]
    rows = [[r["_label"], _judge_name(r), *[_num(r["overall"].get(a)) for a in ASPECTS],
             str(r["counts"].get("scored", "")), str(r["counts"].get("failed", ""))]
            for r in results if r["config"] == "oe"]
    if paper:
        rows += [[PAPER_LABEL + name, "GPT-4o (paper)", *[_num(s[a]) for a in ASPECTS], "", ""]
                 for name, s in PAPER_REFERENCE["oe"].items()]
    return header, rows


def mc_table(results: list[dict], paper: bool = False, markdown: bool = True) -> tuple[list[str], list[list[str]]]:
    """Table 5 layout: accuracy (%) per aspect with its 95 % interval and invalid rate; chance row."""
    header = ["Model"]
    for a in ASPECTS:
        header += ([f"{ASPECT_NAMES[a]} acc % [95% CI]", f"{SHORT[a]} invalid %"] if markdown else
                   [f"{a}_accuracy", f"{a}_ci_low", f"{a}_ci_high", f"{a}_invalid_rate", f"{a}_n"])
    header += ["Overall acc %", "Overall invalid %", "Circular acc %", "Questions", "Missing"] if markdown else \
        ["overall_accuracy", "overall_invalid_rate", "circular_accuracy", "questions", "missing"]
    rows = []
    for r in (r for r in results if r["config"] == "mc"):
        row = [r["_label"]]
        for a in ASPECTS:
            s = r["aspects"][a]
            ci = s.get("ci95") or [None, None]
            if markdown:
                acc = _pct(s["accuracy"])
                row += [f"{acc} [{_pct(ci[0])}, {_pct(ci[1])}]" if acc else "", _pct(s["invalid_rate"])]
            else:
                row += [_num(s["accuracy"], 4), _num(ci[0], 4), _num(ci[1], 4), _num(s["invalid_rate"], 4), str(s["n"])]
        circ = (r.get("circular") or {}).get("overall", {}).get("accuracy")
        o = r["overall"]
        fmt = _pct if markdown else (lambda v: _num(v, 4))
        row += [fmt(o["accuracy"]), fmt(o["invalid_rate"]), fmt(circ), str(r["counts"]["scored"]),
                str(r["counts"]["missing"])]
        rows.append(row)
    width = 2 if markdown else 5
    rows.append(["chance (4 options)"] + [x for _ in ASPECTS for x in ([_pct(CHANCE) if markdown else _num(CHANCE, 4)]
                                                                       + [""] * (width - 1))] + [""] * 5)
    if paper:
        for name, s in PAPER_REFERENCE["mc"].items():
            row = [PAPER_LABEL + name]
            for a in ASPECTS:
                row += [_pct(s[a]) if markdown else _num(s[a], 4)] + [""] * (width - 1)
            rows.append(row + [""] * 5)
    return header, rows


def pair_table(results: list[dict], markdown: bool = True) -> tuple[list[str], list[list[str]]]:
    """Swap pairs (``eval pair``): accuracy with ties half [95 % CI], strict accuracy, tie and invalid rates."""
    header = (["Model", "Acc % [95% CI]", "Strict %", "Ties %", "Invalid %", "Mean rating orig / swap",
               "Sign test p", "Items", "Missing"] if markdown else
              ["model", "accuracy", "ci_low", "ci_high", "strict_accuracy", "tie_rate", "invalid_rate",
               "mean_rating_original", "mean_rating_swapped", "sign_test_p", "items", "missing"])
    rows = []
    for r in (r for r in results if r["config"] == "pair"):
        o, ci = r["overall"], r["overall"].get("ci95") or [None, None]
        means = o.get("mean_rating") or {}
        if markdown:
            acc = _pct(o["accuracy"])
            rows.append([r["_label"], f"{acc} [{_pct(ci[0])}, {_pct(ci[1])}]" if acc else "",
                         _pct(o["strict_accuracy"]), _pct(o["tie_rate"]), _pct(o["invalid_rate"]),
                         f"{_num(means.get('original'))} / {_num(means.get('swapped'))}"
                         if means.get("original") is not None else "", _num(o.get("sign_test_p"), 3),
                         str(o["n"]), str(r["counts"]["missing"])])
        else:
            rows.append([r["_label"], *[_num(v, 4) for v in (o["accuracy"], ci[0], ci[1], o["strict_accuracy"],
                                                             o["tie_rate"], o["invalid_rate"], means.get("original"),
                                                             means.get("swapped"), o.get("sign_test_p"))],
                         str(o["n"]), str(r["counts"]["missing"])])
    rows.append(["chance (or a model that ignores the audio)", _pct(0.5) if markdown else _num(0.5, 4)]
                + [""] * (len(header) - 2))
    return header, rows


def _bar_chart(path: Path, title: str, ylabel: str, labels: list[str], series: dict[str, list[float | None]],
               hline: float | None = None, ylim: tuple[float, float] | None = None,
               errors: dict[str, list[tuple[float, float] | None]] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(labels) * max(1, len(series)) / 2), 4.0))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        heights = [v if v is not None else 0.0 for v in values]
        yerr = None
        if errors and name in errors:  # asymmetric 95 % intervals around each bar
            cis = [ci or (h, h) for ci, h in zip(errors[name], heights)]
            yerr = [[h - lo for (lo, _), h in zip(cis, heights)], [hi - h for (_, hi), h in zip(cis, heights)]]
        ax.bar(xs, heights, width, label=name, yerr=yerr, capsize=2,
               hatch="//" if name.startswith(PAPER_LABEL) else None, alpha=0.6 if name.startswith(PAPER_LABEL) else 1)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def charts(results: list[dict], out_dir: Path, paper: bool = False) -> list[Path]:
    """PNG charts: OE Overall per aspect, MC accuracy per aspect (chance line) and MC invalid rates."""
    out = []
    labels = [SHORT[a] for a in ASPECTS]
    oe = {r["_label"]: [r["overall"].get(a) for a in ASPECTS] for r in results if r["config"] == "oe"}
    if oe:
        if paper:
            oe.update({PAPER_LABEL + n: [s[a] for a in ASPECTS] for n, s in PAPER_REFERENCE["oe"].items()})
        out.append(_bar_chart(out_dir / "oe_overall.png", "HarmonySet-OE Overall (judge score 1-10)", "score",
                              labels, oe, ylim=(0, 10)))
    mc = [r for r in results if r["config"] == "mc"]
    if mc:
        acc = {r["_label"]: [_scale(r["aspects"][a]["accuracy"]) for a in ASPECTS] for r in mc}
        if paper:
            acc.update({PAPER_LABEL + n: [100 * s[a] for a in ASPECTS] for n, s in PAPER_REFERENCE["mc"].items()})
        cis = {r["_label"]: [tuple(100 * x for x in r["aspects"][a]["ci95"]) if r["aspects"][a].get("ci95") else None
                             for a in ASPECTS] for r in mc}
        out.append(_bar_chart(out_dir / "mc_accuracy.png", "HarmonySet-MC accuracy (95% CI)", "accuracy (%)", labels,
                              acc, hline=100 * CHANCE, ylim=(0, 100), errors=cis))
        inv = {r["_label"]: [_scale(r["aspects"][a]["invalid_rate"]) for a in ASPECTS] for r in mc}
        out.append(_bar_chart(out_dir / "mc_invalid.png", "HarmonySet-MC invalid-answer rate", "invalid (%)",
                              labels, inv, ylim=(0, 100)))
    return out


def _scale(value: float | None) -> float | None:
    return None if value is None else 100 * value


def write_report(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, paper: bool = False) -> dict:
    """Write report.md, the CSV tables and the PNG charts of the given results; returns what was written."""
    results = load_results(paths)
    if not results:
        raise ReportError("no results given")
    out_dir = Path(out_dir)
    written: list[Path] = []
    parts = ["# HarmonySet report\n"]
    short: list[str] = []
    if any(r["config"] == "oe" for r in results):
        header, rows = oe_overall_table(results, paper)
        parts += ["## HarmonySet-OE, Overall (mean over items; judge score 1-10)\n", _markdown(header, rows)]
        short += parts[-2:]
        header, rows = oe_table(results, paper)
        table = _markdown(header, rows)
        parts += ["## HarmonySet-OE by category (Table 2 layout)\n", table]
        written.append(atomic_write_text(out_dir / "table2_oe.csv", _csv(header, rows)))
        written.append(atomic_write_text(out_dir / "table2_oe.md", table))
    if any(r["config"] == "mc" for r in results):
        table = _markdown(*mc_table(results, paper))
        parts += ["## HarmonySet-MC accuracy (Table 5 layout; invalid answers count as wrong)\n", table]
        short += parts[-2:]
        written.append(atomic_write_text(out_dir / "table5_mc.md", table))
        header, rows = mc_table(results, paper, markdown=False)
        written.append(atomic_write_text(out_dir / "table5_mc.csv", _csv(header, rows)))
    if any(r["config"] == "pair" for r in results):
        table = _markdown(*pair_table(results))
        parts += ["## Swap pairs: is the original music rated higher? (ties count half; invalid as wrong)\n", table]
        short += parts[-2:]
        written.append(atomic_write_text(out_dir / "pairs.md", table))
        header, rows = pair_table(results, markdown=False)
        written.append(atomic_write_text(out_dir / "pairs.csv", _csv(header, rows)))
    if paper and any(r["config"] == "oe" for r in results):
        for name, title, (header, rows) in (
                ("table4_oe", "Paper's Table 4: VideoLLaMA2 trained on 10k fully automated (F.A.) vs 10k HarmonySet "
                              "annotations (HarmonySet-OE, Table 2 layout)", paper_table4()),
                ("table6_oe", "Paper's Table 6: VideoLLaMA2 trained on HarmonySet with 16, 32 and 64 frames "
                              "(HarmonySet-OE Overall)", paper_table6())):
            table = _markdown(header, rows)
            parts += [f"## {title}\n", table]
            written.append(atomic_write_text(out_dir / f"{name}.md", table))
            written.append(atomic_write_text(out_dir / f"{name}.csv", _csv(header, rows)))
    notes = []
    if paper:
        notes.append("Rows marked `paper:` are the numbers published in the HarmonySet paper (arXiv 2503.01725), "
                     "for reference; they were not produced by this toolkit.\n")
    if any(r["config"] == "oe" and "embedding" in _judge_name(r).lower() + json.dumps(r.get("judge") or {})
           for r in results):
        notes.append("The `embedding` judge is an offline proxy: its scores are not comparable with the paper's "
                     "GPT-4o judge.\n")
    text = "\n".join(parts + notes)
    written.append(atomic_write_text(out_dir / "report.md", text))
    written += charts(results, out_dir, paper)
    summary = "\n".join(short + notes)
    if any(r["config"] == "oe" for r in results):
        summary += f"\nPer-category OE scores (Table 2 layout): {out_dir / 'table2_oe.md'}\n"
    return {"markdown": text, "summary": summary, "files": written}
