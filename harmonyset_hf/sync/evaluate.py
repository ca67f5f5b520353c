"""How well signal-level sync (:mod:`harmonyset_hf.sync`) agrees with HarmonySet's human sync labels.

Over the rows of a HarmonySet dataset (``oe`` and/or ``instruct``): the predicted A/B/C code of every
human key timestamp against the human code (accuracy, Cohen's kappa, confusion matrix), and the
alignment score of every clip against the human ``rhythm_alignment`` label (mean per label, Spearman
correlation with the label order, AUC of "precise" against "irrelevant"/"mismatch"), plus a chart.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..data.hub import local_cache_dir
from ..data.video_folder import with_videos
from ..errors import HarmonySetError
from ..io import append_jsonl, atomic_write_json, package_versions, write_jsonl
from ..schema import SYNC_CODES
from .analysis import SyncParams, analyze, warm_up

CODES = tuple(SYNC_CODES)
# The order of the human rhythm-alignment label, best to worst (for Spearman's rho).
RHYTHM_ORDER = {"precise": 3, "appropriate": 2, "irrelevant": 1, "mismatch": 0}
POSITIVE, NEGATIVE = ("precise",), ("irrelevant", "mismatch")


# --------------------------------------------------------------------------------------------
# Agreement statistics
# --------------------------------------------------------------------------------------------
def confusion_matrix(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = CODES) -> list[list[int]]:
    """Counts ``m[i][j]`` of items labelled ``labels[i]`` by humans and predicted ``labels[j]``."""
    index = {c: i for i, c in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted):
        m[index[t]][index[p]] += 1
    return m


def cohen_kappa(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = CODES) -> float | None:
    """Cohen's kappa: (observed - chance agreement) / (1 - chance); None without items, 1.0 if both are constant."""
    m = np.asarray(confusion_matrix(truth, predicted, labels), dtype=float)
    n = m.sum()
    if n == 0:
        return None
    observed = np.trace(m) / n
    chance = float((m.sum(axis=1) * m.sum(axis=0)).sum() / n**2)
    if chance >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return float((observed - chance) / (1 - chance))


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Area under the ROC curve: P(a positive scores above a negative), ties counting half (Mann-Whitney)."""
    if not positives or not negatives:
        return None
    pos, neg = np.asarray(positives, float)[:, None], np.asarray(negatives, float)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, float | None]:
    """Spearman's rho and its p-value (None with fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"rho": None, "p": None}
    res = spearmanr(x, y)
    return {"rho": float(res.statistic), "p": float(res.pvalue)}


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------
def _video_value(value: Any, data: str | os.PathLike) -> Any:
    """The row's video as a path or bytes; with a local ``data`` folder, its own copy under ``videos/`` wins."""
    if not isinstance(value, dict):
        return value
    path, blob = value.get("path"), value.get("bytes")
    if blob:
        return blob
    if path and os.path.isdir(data):
        # datasets caches by content: the cached rows may name the videos of a byte-identical Hub folder
        # built elsewhere (and since deleted or changed), so re-root the path under this folder.
        parts = Path(path).parts
        if "videos" in parts:
            local = Path(data).joinpath(*parts[len(parts) - parts[::-1].index("videos") - 1:])
            if local.exists():
                return str(local)
    return path


def load_rows(data: str | os.PathLike, configs: Sequence[str] = ("oe",),
              video_dir: str | os.PathLike | None = None) -> list[tuple[str, Any]]:
    """``(config, dataset)`` of every split of the given configs, the video column left undecoded.

    An annotations-only folder takes its videos from ``video_dir`` (else ``$HARMONYSET_VIDEO_DIR``);
    rows whose video is not there are left out, with a warning that counts and names them.
    """
    from datasets import Video, load_dataset

    out = []
    for config in configs:
        try:
            # A cache private to this folder's contents: datasets 5.2 would share one between same-named folders.
            ds = load_dataset(str(data), config, cache_dir=local_cache_dir(data))
        except Exception as err:  # the message names what is missing; wrap it with the dataset and config
            raise HarmonySetError(f"{data}: cannot load config {config!r} ({type(err).__name__}: {err})") from err
        # An annotations-only folder takes the files of a download folder (with_videos).
        out += [(config, with_videos(ds[split], video_dir).cast_column("video", Video(decode=False))) for split in ds]
    return out


# --------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------
def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


def _item(config: str, row: dict, params: SyncParams) -> dict:
    points = sorted(row.get("sync_points") or [], key=lambda p: p["time"])
    key_times = [float(p["time"]) for p in points]
    human = [str(p["code"]).upper() for p in points]
    label = (row.get("labels") or {}).get("rhythm_alignment")
    out: dict[str, Any] = {"id": row["id"], "config": config, "rhythm_alignment": label, "human_codes": human}
    try:
        a = analyze(row["video"], key_times=key_times or None, params=params, human_codes=human or None)
    except HarmonySetError as err:
        return {**out, "error": f"{row['id']}: {err}", "error_type": type(err).__name__}
    except Exception as err:  # a broken file must not stop the batch: record it with the reason
        return {**out, "error": f"{row['id']}: {type(err).__name__}: {err}", "error_type": type(err).__name__}
    d = a.to_dict()
    return {**out, "predicted_codes": a.codes, "score": d["score"], "key_score": d["key_score"],
            "key_points": d["key_points"], "cuts": [c["time"] for c in d["cuts"]],
            "music_changes": [{"time": c["time"], "kind": c["kind"]} for c in d["music_changes"]],
            "matches": d["matches"], "tempo_bpm": d["tempo_bpm"], "beat_hit_rate": d["beat_hit_rate"],
            "beat_hit_chance": d["beat_hit_chance"], "duration": d["duration"], "seconds": d["timings"]["total_s"]}


def _majority(codes: Sequence[str], code: str) -> bool:
    return bool(codes) and codes.count(code) > len(codes) / 2


def summarize(items: list[dict]) -> dict:
    """The agreement numbers of analysed items (see the module docstring)."""
    ok = [it for it in items if "error" not in it]
    # Items without human key points carry codes of their detected cuts: only human points are compared.
    pairs = [(h, p) for it in ok if it["human_codes"] for h, p in zip(it["human_codes"], it["predicted_codes"])]
    truth, pred = [h for h, _ in pairs], [p for _, p in pairs]
    codes: dict[str, Any] = {"n_points": len(truth), "labels": list(CODES)}
    if truth:
        m = confusion_matrix(truth, pred)
        codes.update(accuracy=float(np.mean([t == p for t, p in zip(truth, pred)])), kappa=cohen_kappa(truth, pred),
                     confusion=m, human_counts=dict(Counter(truth)), predicted_counts=dict(Counter(pred)),
                     recall={c: (m[i][i] / sum(m[i]) if sum(m[i]) else None) for i, c in enumerate(CODES)})
    separation = {}
    for key in ("score", "key_score"):
        mostly_a = [it[key] for it in ok if _majority(it["human_codes"], "A") and it[key] is not None]
        mostly_c = [it[key] for it in ok if _majority(it["human_codes"], "C") and it[key] is not None]
        separation[key] = {"n_mostly_a": len(mostly_a), "n_mostly_c": len(mostly_c), "auc": auc(mostly_a, mostly_c),
                           "mean_mostly_a": _mean(mostly_a), "mean_mostly_c": _mean(mostly_c)}
    rhythm = {}
    for key in ("score", "key_score"):
        pairs = [(it["rhythm_alignment"], it[key]) for it in ok
                 if it[key] is not None and it["rhythm_alignment"] in RHYTHM_ORDER]
        per_label = {lab: {"n": sum(1 for lb, _ in pairs if lb == lab),
                           "mean": _mean(s for lb, s in pairs if lb == lab)} for lab in RHYTHM_ORDER}
        rhythm[key] = {"n": len(pairs), "per_label": per_label,
                       "spearman": spearman([RHYTHM_ORDER[lb] for lb, _ in pairs], [s for _, s in pairs]),
                       "auc_precise_vs_irrelevant_mismatch": auc([s for lb, s in pairs if lb in POSITIVE],
                                                                 [s for lb, s in pairs if lb in NEGATIVE])}
    errors = Counter(it["error_type"] for it in items if "error" in it)
    return {"counts": {"items": len(items), "analysed": len(ok), "skipped": len(items) - len(ok),
                       "skipped_by_reason": dict(errors), "with_key_points": sum(1 for it in ok if it["human_codes"])},
            "codes": codes, "separation": separation, "rhythm_alignment": rhythm,
            "seconds_per_item": _mean(it.get("seconds") for it in ok)}


def chart(results: dict, items: list[dict], path: str | os.PathLike) -> Path:
    """A PNG: the code confusion matrix and the alignment score per human rhythm-alignment label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    m = np.asarray(results["codes"].get("confusion") or np.zeros((3, 3)), dtype=float)
    ax1.imshow(m, cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax1.text(j, i, str(int(m[i, j])), ha="center", va="center",
                     color="white" if m[i, j] > 0.6 * max(1.0, m.max()) else "black")
    ax1.set_xticks(range(len(CODES)), CODES)
    ax1.set_yticks(range(len(CODES)), CODES)
    ax1.set_xlabel("predicted code (signal)")
    ax1.set_ylabel("human code")
    acc, kappa = results["codes"].get("accuracy"), results["codes"].get("kappa")
    ax1.set_title("sync codes" + ("" if acc is None else f": acc {acc:.2f}, kappa {kappa:.2f}"))
    labels = list(RHYTHM_ORDER)
    ok = [it for it in items if "error" not in it and it.get("score") is not None]
    for x, lab in enumerate(labels):
        ys = [it["score"] for it in ok if it["rhythm_alignment"] == lab]
        if ys:
            jitter = np.linspace(-0.15, 0.15, len(ys)) if len(ys) > 1 else [0.0]
            ax2.scatter(np.asarray(jitter) + x, ys, alpha=0.6)
            ax2.hlines(np.mean(ys), x - 0.3, x + 0.3, color="k")
    ax2.set_xticks(range(len(labels)), labels)
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("alignment score (detected cuts)")
    ax2.set_title("score by human rhythm alignment")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def params_key(params: SyncParams) -> str:
    """A short hash of the analysis parameters: items made with other parameters are not reused."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode()).hexdigest()[:12]


def _finished(path: Path, key: str) -> dict[tuple[str, str], dict]:
    """Items of an earlier run with the same parameters (failed ones are tried again; torn lines skipped)."""
    import json

    done: dict[tuple[str, str], dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                it = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a killed run
            if isinstance(it, dict) and it.get("params_key") == key and "error" not in it:
                done[(it.get("config"), it.get("id"))] = it
    return done


def _item_job(job: tuple[str, dict, SyncParams]) -> dict:
    return _item(*job)


def _run(jobs: list[tuple[str, dict, SyncParams]], workers: int) -> Iterator[dict]:
    """Items of the jobs in order: in this process, or in ``workers`` processes (each imports librosa once)."""
    if workers <= 1 or len(jobs) < 2:
        yield from map(_item_job, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    warm_up(jobs[0][2])  # the workers then load compiled code instead of compiling it side by side
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_item_job, jobs, chunksize=4)


def evaluate_sync(data: str | os.PathLike, out_dir: str | os.PathLike, configs: Sequence[str] = ("oe",),
                  params: SyncParams | None = None, limit: int | None = None, progress: bool = True,
                  resume: bool = True, workers: int = 1, video_dir: str | os.PathLike | None = None) -> dict:
    """Analyse every clip of ``data`` and write results.json, items.jsonl and sync.png to ``out_dir``.

    Each item is appended to items.jsonl as soon as it is analysed, so a rerun (``resume``) analyses
    only the clips not yet done with the same parameters; items.jsonl is rewritten in row order at the end.
    """
    from tqdm.auto import tqdm

    params = params or SyncParams()
    key = params_key(params)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items_path = out / "items.jsonl"
    done = _finished(items_path, key) if resume else {}
    if not resume:
        items_path.unlink(missing_ok=True)
    order: list[tuple[str, str]] = []
    found: dict[tuple[str, str], dict] = {}
    pending: list[tuple[str, dict, SyncParams]] = []
    for config, part in load_rows(data, configs, video_dir=video_dir):
        for row in part:
            if limit is not None and len(order) >= limit:
                break
            order.append((config, row["id"]))
            if (config, row["id"]) in done:
                found[order[-1]] = done[order[-1]]
            else:
                keep = {k: row.get(k) for k in ("id", "sync_points", "labels")}
                pending.append((config, {**keep, "video": _video_value(row["video"], data)}, params))
    resumed = len(found)
    bar = tqdm(total=len(order), initial=resumed, desc="sync", unit="clip", disable=not progress)
    skipped = 0
    for item in _run(pending, workers):
        item["params_key"] = key
        append_jsonl(items_path, [item])
        found[(item["config"], item["id"])] = item
        skipped += "error" in item
        bar.update()
        bar.set_postfix(skipped=skipped, resumed=resumed)
    bar.close()
    items = [found[k] for k in order]
    results = {"task": "sync", "data": str(data), "configs": list(configs), "params": asdict(params),
               "params_key": key, **summarize(items), "seconds": round(time.perf_counter() - started, 2),
               "versions": package_versions()}
    results["counts"]["resumed"] = resumed
    write_jsonl(items_path, items)
    results["chart"] = str(chart(results, items, out / "sync.png"))
    atomic_write_json(out / "results.json", results)
    return results


def summary_line(results: dict) -> str:
    """One line: counts, code agreement and score separation."""
    c, codes = results["counts"], results["codes"]

    def f(x: float | None) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    rho = results["rhythm_alignment"]["score"]["spearman"]["rho"]
    return (f"sync: {c['analysed']}/{c['items']} clips analysed ({c['skipped']} skipped, "
            f"{c.get('resumed', 0)} from an earlier run), "
            f"{codes['n_points']} key points: accuracy {f(codes.get('accuracy'))}, kappa {f(codes.get('kappa'))}; "
            f"score AUC mostly-A vs mostly-C {f(results['separation']['score']['auc'])}; "
            f"Spearman vs rhythm alignment {f(rho)}")
