"""Signal-level sync: a hand-made clip with known cuts and a known musical change, HarmonySet-mini, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harmonyset_hf.errors import HarmonySetError
from harmonyset_hf.sync import analysis as sync
from harmonyset_hf.sync.evaluate import auc, cohen_kappa, confusion_matrix, summarize

FPS, SR, W, H = 25, 44100, 160, 90


def _music(duration: float, change: float | None, seed: int = 0) -> np.ndarray:
    """Mono pulses: 0.5 s apart, quiet, 440 Hz; after ``change`` 0.3 s apart, 12 dB louder, 660 Hz, opened by a hit."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(duration * SR), np.float32)
    bed = 0.003 * rng.standard_normal(y.size).astype(np.float32)

    def pulses(start: float, end: float, period: float, freq: float, amp: float) -> None:
        n = int(0.2 * SR)
        t = np.arange(n) / SR
        burst = (np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.05) * amp).astype(np.float32)
        for s in np.arange(start, end, period):
            i = int(s * SR)
            y[i:i + n] += burst[: max(0, min(n, int(end * SR) - i))]

    end = change if change is not None else duration
    pulses(0.0, end, 0.5, 440.0, 0.1)
    if change is not None:
        pulses(change, duration, 0.3, 660.0, 0.4)
        n = int(0.6 * SR)
        hit = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.15 * SR)) * 0.5
        y[int(change * SR):int(change * SR) + n] += hit.astype(np.float32)
    return y + bed


def make_clip(path: Path, duration: float, cuts: list[float], change: float | None, audio: bool = True,
              dissolve: float = 0.0) -> Path:
    """An h264 (+ AAC) mp4: a flat colour per shot (a cut, or a ``dissolve`` s cross-fade, at each time in
    ``cuts``) and :func:`_music`."""
    import av

    colours = [(200, 40, 40), (40, 160, 220), (240, 220, 60), (60, 200, 90), (150, 60, 200)]
    bounds = [0.0, *cuts]
    y = _music(duration, change)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=Fraction(FPS))
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = out.add_stream("aac", rate=SR, layout="mono") if audio else None
        xx = np.arange(W)[None, :, None]
        for i in range(int(duration * FPS)):
            t = i / FPS
            shot = sum(1 for b in bounds if b <= t + 1e-9) - 1
            frame = np.empty((H, W, 3), np.float64)
            frame[:] = colours[shot % len(colours)]
            for n, b in enumerate(cuts, start=1):  # inside a dissolve: blend the two shots' colours
                if dissolve and abs(t - b) < dissolve / 2:
                    w = (t - (b - dissolve / 2)) / dissolve
                    frame[:] = (1 - w) * np.array(colours[(n - 1) % 5]) + w * np.array(colours[n % 5])
            frame = np.clip(frame + ((xx + 2 * i) % 40 < 20) * 20, 0, 255).astype(np.uint8)  # slow motion in-shot
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
        if a is not None:
            for s in range(0, y.size, 1024):
                af = av.AudioFrame.from_ndarray(y[None, s:s + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = SR, s
                out.mux(a.encode(af))
            out.mux(a.encode())
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """8 s: cuts at 2.0 and 5.0 s, the music changes at 5.0 s (so 5.0 is A, 4.0 is B, 2.0 is C)."""
    return make_clip(tmp_path_factory.mktemp("sync") / "clip.mp4", 8.0, [2.0, 5.0], 5.0)


def test_hand_made_clip_cuts_change_and_codes(clip):
    a = sync.analyze(clip, key_times=[2.0, 5.0, 4.0])
    # 25 fps analysed at 15 fps: a cut is placed between the last old and the first new frame seen
    assert len(a.cuts) == 2 and all(abs(c.time - t) <= 1 / 15 for c, t in zip(a.cuts, [2.0, 5.0]))
    every_frame = sync.analyze(clip, fps=30)
    assert every_frame.cuts[0].time == pytest.approx(2.0, abs=1e-6)  # every frame analysed: exact
    assert every_frame.codes == ["C", "A"] and every_frame.key_score is None  # no key times: one code per cut
    assert len(a.music_changes) == 1
    assert abs(a.music_changes[0].time - 5.0) <= 0.05
    assert a.codes == ["C", "A", "B"]
    assert len(a.matches) == 1 and a.matches[0].cut == pytest.approx(5.0, abs=0.07) and a.matches[0].code == "A"
    assert a.score == pytest.approx(0.5)  # one of the two cuts meets a change
    # onsets: the pulses, 0.5 s then 0.3 s apart
    assert 8 <= len(a.onsets) <= 40
    d = a.to_dict()
    assert json.loads(json.dumps(d))["codes"] == ["C", "A", "B"]
    assert {e["kind"] for e in a.music_events} >= {"change", "onset"}


def test_steady_music_gives_no_change_and_code_c(tmp_path):
    path = make_clip(tmp_path / "steady.mp4", 7.0, [3.0], None)
    a = sync.analyze(path, key_times=[3.0])
    assert len(a.cuts) == 1 and a.music_changes == []
    assert a.codes == ["C"] and a.score == 0.0 and a.matches == []
    assert a.key_points[0].nearest_change is None
    assert sync.analyze(path).codes == ["C"]


def test_a_dissolve_is_one_gradual_transition_at_its_centre(tmp_path):
    path = make_clip(tmp_path / "dissolve.mp4", 7.0, [3.5], None, dissolve=1.0)
    cuts = sync.analyze(path).cuts
    assert [c.kind for c in cuts] == ["transition"] and abs(cuts[0].time - 3.5) <= 0.1


def test_clip_without_audio_or_not_media_is_a_clear_error(tmp_path):
    silent = make_clip(tmp_path / "silent.mp4", 3.0, [1.5], None, audio=False)
    with pytest.raises(sync.SyncError, match="silent.mp4: no audio"):
        sync.analyze(silent)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 10)
    with pytest.raises(HarmonySetError, match="junk.mp4"):
        sync.analyze(junk)


def test_code_and_credit_thresholds():
    p = sync.SyncParams()
    assert [sync.code_for(d, p) for d in (0.0, 0.35, 0.36, 1.8, 1.81, None)] == ["A", "A", "B", "B", "C", "C"]
    assert sync.credit(0.2, p) == 1.0 and sync.credit(1.8, p) == 0.0 and sync.credit(None, p) == 0.0
    assert sync.credit((p.tol_a + p.tol_b) / 2, p) == pytest.approx(0.5)
    wide = sync.SyncParams(tol_a=1.0, tol_b=3.0)
    assert sync.code_for(0.8, wide) == "A" and sync.code_for(2.5, wide) == "B"


def test_matching_is_one_to_one_closest_first():
    assert sync.match_events([1.0, 1.25, 9.0], [1.2, 5.0], tolerance=1.0) == [(1.25, 1.2)]
    assert sync.match_events([1.0, 3.0], [1.1, 2.8], tolerance=0.5) == [(1.0, 1.1), (3.0, 2.8)]
    assert sync.match_events([], [1.0], tolerance=1.0) == []


def test_agreement_statistics_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    truth = list(rng.choice(list("ABC"), 60))
    pred = [t if rng.random() < 0.6 else str(rng.choice(list("ABC"))) for t in truth]
    assert cohen_kappa(truth, pred) == pytest.approx(metrics.cohen_kappa_score(truth, pred))
    assert confusion_matrix(truth, pred) == metrics.confusion_matrix(truth, pred, labels=list("ABC")).tolist()
    pos, neg = list(rng.random(20) + 0.3), list(rng.random(25))
    expected = metrics.roc_auc_score([1] * 20 + [0] * 25, pos + neg)
    assert auc(pos, neg) == pytest.approx(expected)
    assert cohen_kappa([], []) is None and auc([], [1.0]) is None


def _majority(codes: list[str], code: str) -> bool:
    return bool(codes) and codes.count(code) > len(codes) / 2


def test_mini_codes_agree_with_planted_truth_and_score_separates(mini_dir):
    truth = json.loads((mini_dir / "truth.json").read_text())["items"]
    agree, total, cut_hits, n_cuts, change_hits, n_changes = 0, 0, 0, 0, 0, 0
    mostly_a, mostly_c = [], []
    for item_id, t in truth.items():
        points = t["sync_points"]
        a = sync.analyze(mini_dir / "videos" / f"{item_id}.mp4", key_times=[p["time"] for p in points] or None)
        human = [p["code"] for p in points]
        agree += sum(p == h for p, h in zip(a.codes, human))
        total += len(human)
        found = np.array([c.time for c in a.cuts])
        cut_hits += sum(1 for c in t["cuts"] if found.size and np.abs(found - c).min() <= 0.1)
        n_cuts += len(t["cuts"])
        changes = np.array([c.time for c in a.music_changes])
        change_hits += sum(1 for c in t["music_changes"] if changes.size and np.abs(changes - c).min() <= 0.2)
        n_changes += len(t["music_changes"])
        if _majority(human, "A"):
            mostly_a.append(a.score)
        elif _majority(human, "C"):
            mostly_c.append(a.score)
    assert total >= 10 and agree / total >= 0.9, f"codes agree on {agree}/{total} key timestamps"
    assert cut_hits / n_cuts >= 0.9, f"{cut_hits}/{n_cuts} planted cuts found"
    assert change_hits / n_changes >= 0.9, f"{change_hits}/{n_changes} planted music changes found"
    assert len(mostly_a) >= 3 and len(mostly_c) >= 3
    assert auc(mostly_a, mostly_c) >= 0.95, (mostly_a, mostly_c)


def test_sync_cli_prints_codes_and_json(clip, capsys):
    from harmonyset_hf.cli import main

    assert main(["sync", str(clip), "--key-times", "00:02,C; 00:05,A"]) == 0
    out = capsys.readouterr().out
    assert "key 5.00: A (human A)" in out and "key 2.00: C (human C)" in out
    assert main(["sync", str(clip), "--json", "--key-times", "2, 4.0"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["codes"] == ["C", "B"] and len(d["cuts"]) == 2 and d["params"]["tol_a"] == 0.35
    assert main(["sync", str(clip), "--tol-a", "2", "--tol-b", "1"]) == 2  # a clear error, no traceback
    assert "--tol-a" in capsys.readouterr().err
    assert main(["sync", str(clip), "--key-times", "2, 99"]) == 2  # past the 8 s clip: not silently coded C
    assert "--key-times 99 s: outside the clip" in capsys.readouterr().err


def test_eval_sync_over_the_hub_folder(hub_dir, tmp_path):
    from harmonyset_hf.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "sync", "--data", str(hub_dir), "--out", str(out), "--config", "all"]) == 0
    results = json.loads((out / "results.json").read_text())
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert results["counts"]["items"] == len(items) == 24 and results["counts"]["skipped"] == 0
    assert results["codes"]["accuracy"] >= 0.9 and results["codes"]["kappa"] >= 0.8
    assert sum(map(sum, results["codes"]["confusion"])) == results["codes"]["n_points"]
    assert results["separation"]["score"]["auc"] >= 0.95
    per_label = results["rhythm_alignment"]["score"]["per_label"]
    assert per_label["precise"]["mean"] > per_label["irrelevant"]["mean"]
    assert (out / "sync.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A rerun reuses what is done (a torn line from a killed run is ignored); other parameters reuse nothing.
    with (out / "items.jsonl").open("a") as fh:
        fh.write('{"id": "hs0000')
    assert main(["eval", "sync", "--data", str(hub_dir), "--out", str(out), "--config", "all"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["counts"]["resumed"] == 24 and again["codes"] == results["codes"]
    assert len((out / "items.jsonl").read_text().splitlines()) == 24
    assert main(["eval", "sync", "--data", str(hub_dir), "--out", str(out), "--limit", "2", "--tol-a", "0.3"]) == 0
    assert json.loads((out / "results.json").read_text())["counts"]["resumed"] == 0


def test_a_broken_video_is_skipped_and_counted():
    from harmonyset_hf.sync.evaluate import _item

    row = {"id": "broken", "video": b"\x00\x00\x00\x18ftypmp42 truncated", "sync_points": [{"time": 3.0, "code": "A"}],
           "labels": {"rhythm_alignment": "precise"}}
    item = _item("oe", row, sync.SyncParams())
    assert item["error"].startswith("broken: ") and "predicted_codes" not in item
    summary = summarize([item])
    assert summary["counts"] == {"items": 1, "analysed": 0, "skipped": 1,
                                 "skipped_by_reason": {item["error_type"]: 1}, "with_key_points": 0}
    assert summary["codes"]["n_points"] == 0


@pytest.mark.slow
def test_eval_sync_in_two_processes_gives_the_same_items(hub_dir, tmp_path):
    from harmonyset_hf.sync.evaluate import evaluate_sync

    one = evaluate_sync(hub_dir, tmp_path / "one", configs=("oe",), limit=3, progress=False)
    two = evaluate_sync(hub_dir, tmp_path / "two", configs=("oe",), limit=3, progress=False, workers=2)
    items = [[json.loads(line) for line in (tmp_path / d / "items.jsonl").read_text().splitlines()]
             for d in ("one", "two")]
    assert [(i["id"], i["predicted_codes"], i["score"]) for i in items[0]] == \
        [(i["id"], i["predicted_codes"], i["score"]) for i in items[1]]
    assert one["codes"] == two["codes"] and one["counts"]["items"] == 3


def test_warm_up_writes_numba_cache_before_workers_start(tmp_path):
    """Workers spawned by `eval sync --workers N` find librosa's compiled code on disk instead of compiling it
    side by side (concurrent compiles corrupted numba's cache and librosa then segfaulted)."""
    cache = tmp_path / "numba"
    code = "from harmonyset_hf.sync.analysis import warm_up; warm_up()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600,
                   env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    written = {p.suffix for p in cache.rglob("*")}
    assert {".nbi", ".nbc"} <= written, sorted(str(p) for p in cache.rglob("*"))[:10]
