"""The swap variant and the pair task: derive on HarmonySet-mini, check the media, predict, evaluate.

The derived videos are checked at the stream level (the video packets are the source's, byte for
byte) and by ear (the decoded music matches its source's spectral fingerprint better than any
other item's). A model that ignores the audio (`baseline-frames`) must score exactly 50 %, and a
model that listens (`baseline-sync`) must not tie everywhere.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harmonyset_hf.cli import main as harmonyset_main
from harmonyset_hf.evaluation import evaluate_pair, read_predictions
from harmonyset_hf.io import write_jsonl
from harmonyset_hf.pair import PairError, derive_swap, fit_length, load_pair, pair_row_id, swap_assignment
from harmonyset_hf.predict import load_split
from harmonyset_hf.prompting import PAIR_RATING_PROMPT, prompt_for
from harmonyset_hf.scoring import pair_accuracy, parse_rating, sign_test_p, wilson_interval


@pytest.fixture(scope="module")
def swap_dir(hub_dir, tmp_path_factory) -> Path:
    """HarmonySet-mini's test videos, each with its own music and with another item's."""
    out = tmp_path_factory.mktemp("swap") / "HarmonySet-mini-swap"
    derive_swap(hub_dir, out, seed=0)
    return out


def _video_packets(path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def _fingerprint(audio: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """Log energies in 24 log-spaced bands per 100 ms frame of the first ``seconds``, mean-removed per band."""
    hop = sr // 10
    frames = audio[: int(seconds * sr) // hop * hop].reshape(-1, hop)
    spec = np.abs(np.fft.rfft(frames * np.hanning(hop), axis=1)) ** 2
    edges = np.unique(np.geomspace(3, spec.shape[1] - 1, 25).astype(int))
    bands = np.log(np.stack([spec[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1) + 1e-9)
    return (bands - bands.mean(axis=0)).ravel()


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


# --------------------------------------------------------------------------------------------
# Who gets whose music; fitting the music to the video
# --------------------------------------------------------------------------------------------
def test_swap_assignment_is_a_seeded_derangement_across_categories():
    ids = [f"v{i}" for i in range(12)]
    cats = ["a", "a", "a", "b", "b", "b", "c", "c", "d", "e", "f", "f"]
    seen = set()
    for seed in range(30):
        sources = swap_assignment(ids, cats, seed=seed)
        assert sorted(sources.values()) == sorted(ids)  # a permutation: every music is used once
        assert all(item != src for item, src in sources.items())
        category = dict(zip(ids, cats))
        assert all(category[item] != category[src] for item, src in sources.items())
        assert swap_assignment(ids, cats, seed=seed) == sources
        seen.add(tuple(sorted(sources.items())))
    assert len(seen) > 20  # the seed matters


def test_swap_assignment_when_categories_cannot_all_differ():
    ids, cats = ["a1", "a2", "a3", "b1"], ["a", "a", "a", "b"]
    sources = swap_assignment(ids, cats, seed=3)
    assert all(item != src for item, src in sources.items())
    same = sum(cats[ids.index(i)] == cats[ids.index(s)] for i, s in sources.items())
    assert same == 2  # b1 can take one a's music and give its own to one a: the other two a's swap among a's
    assert swap_assignment(["x", "y"], ["c", "c"], seed=0) == {"x": "y", "y": "x"}
    with pytest.raises(PairError, match="at least 2"):
        swap_assignment(["x"], ["c"])
    with pytest.raises(PairError, match="unique"):
        swap_assignment(["x", "x"], ["c", "d"])


def test_fit_length_trims_and_loops_with_a_crossfade():
    music = np.stack([np.arange(100, dtype=np.float32), -np.arange(100, dtype=np.float32)])
    trimmed, how = fit_length(music, 60, fade=10)
    assert how == "trimmed" and np.array_equal(trimmed, music[:, :60])
    same, how = fit_length(music, 100, fade=10)
    assert how == "exact" and np.array_equal(same, music)
    looped, how = fit_length(music, 250, fade=10)
    assert how == "looped" and looped.shape == (2, 250)
    assert np.array_equal(looped[:, :90], music[:, :90])
    ramp = np.linspace(0, 1, 10, dtype=np.float32)
    assert np.allclose(looped[0, 90:100], music[0, 90:] * (1 - ramp) + music[0, :10] * ramp)
    assert np.array_equal(looped[:, 100:180], music[:, 10:90])  # after the seam the music goes on from 10 samples in


# --------------------------------------------------------------------------------------------
# The derived folder
# --------------------------------------------------------------------------------------------
def test_derived_folder_loads_with_datasets(swap_dir, hub_dir):
    import datasets

    ds = load_pair(swap_dir)
    assert isinstance(ds.features["video"], datasets.Video)
    oe_ids = [r["id"] for r in load_split(hub_dir, "oe")]
    assert len(ds) == 2 * len(oe_ids)
    rows = ds.remove_columns("video").to_list()
    assert Counter(r["variant"] for r in rows) == {"original": len(oe_ids), "swapped": len(oe_ids)}
    assert sorted({r["pair_id"] for r in rows}) == sorted(oe_ids)
    for r in rows:
        assert r["id"] == pair_row_id(r["pair_id"], r["variant"])
        assert (r["music_source_id"] == r["pair_id"]) == (r["variant"] == "original")
    report = json.loads((swap_dir / "derive_report.json").read_text())
    assert report["items"] == len(oe_ids) and report["same_category_pairs"] == 0
    swapped = {r["pair_id"]: r["music_source_id"] for r in rows if r["variant"] == "swapped"}
    assert swapped == report["sources"]
    # File names do not tell the versions apart.
    names = [p.name for p in (swap_dir / "videos").rglob("*.mp4")]
    assert len(names) == len(rows) and not any("orig" in n or "swap" in n for n in names)
    # The decoded Video column works (torchcodec), not only the file paths.
    first = ds[0]["video"]
    assert first.metadata.duration_seconds == pytest.approx(rows[0]["duration"], abs=0.05)


def test_swapped_videos_keep_the_video_stream_and_carry_the_other_items_music(swap_dir, hub_dir):
    from harmonyset_hf.media import load_clip

    pairs = load_split(swap_dir, "pair", media=True)
    sources = {r["id"]: r["video"] for r in load_split(hub_dir, "oe", media=True)}
    source_clips = {i: load_clip(v, num_frames=4) for i, v in sources.items()}
    for row in pairs:
        derived = row["video"]["path"]
        source_path = sources[row["pair_id"]]["path"]
        assert _video_packets(derived) == _video_packets(source_path), f"{row['id']}: video packets changed"
        clip = load_clip(row["video"], num_frames=4)
        assert clip.duration == pytest.approx(source_clips[row["pair_id"]].duration, abs=1e-3)
        assert abs(len(clip.audio) / clip.sample_rate - clip.duration) < 0.1  # trimmed/looped to the video
        seconds = min(min(len(c.audio) for c in source_clips.values()) / 16000, 5.0)
        mine = _fingerprint(clip.audio, 16000, seconds)
        scores = {i: _similarity(mine, _fingerprint(c.audio, 16000, seconds)) for i, c in source_clips.items()}
        best = max(scores, key=scores.get)
        assert best == row["music_source_id"], f"{row['id']}: music closest to {best}, not {row['music_source_id']}"
        assert scores[best] > 0.9
        if row["variant"] == "swapped":
            assert scores[row["pair_id"]] < 0.8  # not its own music


def test_derive_is_deterministic(swap_dir, hub_dir, tmp_path):
    again = tmp_path / "again"
    derive_swap(hub_dir, again, seed=0, limit=2)  # two items: the originals are made as in the full run
    originals = [r for r in load_split(again, "pair", media=True) if r["variant"] == "original"]
    assert len(originals) == 2
    for row in originals:
        path = Path(row["video"]["path"])
        assert path.read_bytes() == (swap_dir / path.relative_to(again)).read_bytes(), row["id"]


# --------------------------------------------------------------------------------------------
# Ratings and the pair metric
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reply, value", [
    ("7", 7), ("7/10", 7), ("**8**", 8), ("Rating: 6.", 6), ("8 out of 10", 8), ("7.5/10", 7.5),
    ("I would rate it a 7 on a scale of 1 to 10.", 7), ("On a scale of 1-10, I give it 9.", 9),
    ("9. The beat matches the cuts at 00:10.", 9), ("The music fits well. Score: 5/10", 5), ("I think seven.", 7),
    ("2 seconds in the music changes; overall 7", 7), ("the tempo is 120 bpm, I give it 6", 6),
    ("3 or 4", None), ("6-7", None), ("11", None), ("0", None), ("", None), (None, None),
    ("The music fits the video very well.", None), ("ratings 7 and 8", None),
])
def test_parse_rating(reply, value):
    rating = parse_rating(reply)
    assert rating.value == value, rating
    assert rating.reason


def test_pair_prompt_is_the_same_for_both_versions():
    assert prompt_for("pair", {"variant": "original"}) == prompt_for("pair", {"variant": "swapped"})
    assert prompt_for("pair", {}) == PAIR_RATING_PROMPT and "1" in PAIR_RATING_PROMPT and "10" in PAIR_RATING_PROMPT


def _rows(*items: tuple[str, str]) -> list[dict]:
    return [{"id": pair_row_id(i, v), "pair_id": i, "variant": v, "category": cat, "music_source_id": i}
            for i, cat in items for v in ("original", "swapped")]


def test_evaluate_pair_counts_ties_as_half_and_invalid_as_wrong():
    rows = _rows(("w", "knowledge"), ("t", "knowledge"), ("l", "life_emotion"), ("i", "life_emotion"),
                 ("m", "knowledge"))
    preds = {"w:original": "8", "w:swapped": "3", "t:original": "5", "t:swapped": "5/10", "l:original": "2",
             "l:swapped": "9", "i:original": "great fit", "i:swapped": "4", "m:original": "7", "stray:original": "1"}
    results, items = evaluate_pair(rows, preds, model="hand")
    o = results["overall"]
    assert (o["n"], o["wins"], o["ties"], o["losses"], o["invalid"]) == (4, 1, 1, 1, 1)
    assert o["accuracy"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert o["strict_accuracy"] == pytest.approx(1 / 4) and o["tie_rate"] == pytest.approx(1 / 4)
    assert o["invalid_rate"] == pytest.approx(1 / 4) and o["accuracy_valid"] == pytest.approx(1.5 / 3)
    assert o["ci95"] == pytest.approx(list(wilson_interval(1.5, 4)))
    assert o["mean_rating"] == {"original": pytest.approx(5.0), "swapped": pytest.approx(17 / 3)}
    assert results["categories"]["knowledge"]["accuracy"] == pytest.approx(0.75)
    assert results["categories"]["life_emotion"]["accuracy"] == 0.0
    assert results["counts"] == {"items": 5, "scored": 4, "missing": 1, "invalid": 1, "unknown_predictions": 1}
    assert results["unknown_prediction_ids"] == ["stray:original"]
    by_id = {i["id"]: i for i in items}
    assert by_id["m"]["status"] == "missing" and by_id["m"]["missing"] == ["m:swapped"]
    assert by_id["t"]["outcome"] == 0.5 and by_id["i"]["invalid"] and by_id["i"]["outcome"] is None


def test_evaluate_pair_refuses_rows_without_both_versions():
    from harmonyset_hf.evaluation import EvaluationError

    rows = [r for r in _rows(("a", "knowledge")) if r["variant"] == "original"]
    with pytest.raises(EvaluationError, match="item a"):
        evaluate_pair(rows, {})


def test_sign_test_and_pair_accuracy_edges():
    assert sign_test_p(0, 0) is None
    assert sign_test_p(5, 5) == 1.0
    assert sign_test_p(10, 0) == pytest.approx(2 / 2 ** 10)
    assert pair_accuracy([])["accuracy"] is None


# --------------------------------------------------------------------------------------------
# End to end: predict + eval pair through the CLI
# --------------------------------------------------------------------------------------------
def _predict_and_eval(swap_dir: Path, tmp_path: Path, model: str, *extra: str) -> tuple[dict, list[dict]]:
    preds = tmp_path / f"{model}.jsonl"
    assert harmonyset_main(["predict", "--data", str(swap_dir), "--config", "pair", "--model", model,
                            "--out", str(preds), *extra]) == 0
    out = tmp_path / f"{model}-eval"
    assert harmonyset_main(["eval", "pair", "--data", str(swap_dir), "--predictions", str(preds),
                            "--out", str(out), *extra]) == 0
    results = json.loads((out / "results.json").read_text())
    return results, [json.loads(line) for line in preds.read_text().splitlines()]


def test_a_model_that_ignores_the_audio_scores_exactly_50_percent(swap_dir, tmp_path, capsys):
    results, preds = _predict_and_eval(swap_dir, tmp_path, "baseline-frames")
    o = results["overall"]
    n = len(preds) // 2
    assert results["config"] == "pair" and results["counts"]["scored"] == n
    assert o["accuracy"] == 0.5 and o["tie_rate"] == 1.0 and o["strict_accuracy"] == 0.0 and o["invalid"] == 0
    assert o["sign_test_p"] is None
    # Not a constant: the ratings follow the frames, and the frames of both versions are the same.
    assert len({p["response"] for p in preds}) > 1
    assert "accuracy 50.0%" in capsys.readouterr().out


@pytest.mark.slow
def test_a_model_that_listens_does_not_always_tie(swap_dir, tmp_path):
    results, preds = _predict_and_eval(swap_dir, tmp_path, "baseline-sync")
    o = results["overall"]
    assert o["invalid"] == 0 and o["n"] == len(preds) // 2
    assert o["tie_rate"] < 1.0 and o["wins"] + o["losses"] > 0
    assert o["accuracy"] == pytest.approx((o["wins"] + 0.5 * o["ties"]) / o["n"])


@pytest.mark.slow
def test_tiny_model_end_to_end(swap_dir, tmp_path):
    results, preds = _predict_and_eval(swap_dir, tmp_path, "tiny", "--limit", "2")
    assert len(preds) == 4 and {p["model"] for p in preds} == {"tiny"}
    assert results["counts"]["items"] == 2 and results["counts"]["scored"] == 2
    o = results["overall"]
    assert o["n"] == 2 and o["wins"] + o["ties"] + o["losses"] + o["invalid"] == 2
    facts = read_predictions(tmp_path / "tiny.jsonl", "pair")[1]
    assert facts["model"] == "tiny"


def test_cli_derive_swap_and_errors(hub_dir, tmp_path, capsys):
    out = tmp_path / "cli-swap"
    assert harmonyset_main(["derive", "swap", "--data", str(hub_dir), "--out", str(out), "--seed", "1",
                            "--limit", "2"]) == 0
    assert "2 items x 2 versions" in capsys.readouterr().out
    assert len(load_split(out, "pair")) == 4
    assert harmonyset_main(["derive", "swap", "--data", str(hub_dir), "--out", str(tmp_path / "x"),
                            "--limit", "1"]) == 2
    assert "at least 2 test items" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    preds = tmp_path / "mc.jsonl"
    write_jsonl(preds, [{"question_id": "a:rhythm", "response": "A"}])
    assert harmonyset_main(["eval", "pair", "--data", str(out), "--predictions", str(preds),
                            "--out", str(tmp_path / "e")]) == 2
    assert "'id'" in capsys.readouterr().err
