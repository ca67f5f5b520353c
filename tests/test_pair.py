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
from harmonyset_hf.evaluation.predict import load_split
from harmonyset_hf.evaluation.scoring import pair_accuracy, parse_rating, sign_test_p, wilson_interval
from harmonyset_hf.io import write_jsonl
from harmonyset_hf.prompting import PAIR_RATING_PROMPT, prompt_for
from harmonyset_hf.sync.swap import (
    PairError,
    derive_swap,
    fit_length,
    load_pair,
    pair_row_id,
    swap_assignment,
)


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


def test_swap_assignment_avoids_music_that_would_loop_where_it_can():
    ids = [f"v{i}" for i in range(40)]
    cats = [f"c{i % 5}" for i in range(40)]
    durations = [3.0 + (7 * i) % 40 for i in range(40)]  # 40 different lengths, 3-42 s
    longest = ids[durations.index(max(durations))]

    def loops(sources: dict[str, str]) -> int:
        return sum(durations[ids.index(s)] < durations[ids.index(i)] for i, s in sources.items())

    for seed in range(5):
        with_durations = swap_assignment(ids, cats, seed=seed, durations=durations)
        without = swap_assignment(ids, cats, seed=seed)
        assert all(cats[ids.index(i)] != cats[ids.index(s)] for i, s in with_durations.items())
        assert all(i != s for i, s in with_durations.items())
        assert 1 <= loops(with_durations) < loops(without)
        assert durations[ids.index(with_durations[longest])] < max(durations)  # the longest video always loops
    with pytest.raises(PairError, match="durations"):
        swap_assignment(ids, cats, durations=durations[:3])


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
        assert r["id"] == pair_row_id(r["pair_id"], r["variant"], r["music_source_id"])
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


def test_predictions_of_another_pairing_are_unknown_not_scored(swap_dir, hub_dir, tmp_path):
    from harmonyset_hf.evaluation import evaluate_pair

    other = tmp_path / "seed1"
    derive_swap(hub_dir, other, seed=1, limit=3)
    old_rows = [r for r in load_split(swap_dir, "pair") if r["pair_id"] in {x["pair_id"] for x in
                                                                            load_split(other, "pair")}]
    new_rows = load_split(other, "pair")
    old_swapped = {r["pair_id"]: r["id"] for r in old_rows if r["variant"] == "swapped"}
    new_swapped = {r["pair_id"]: r["id"] for r in new_rows if r["variant"] == "swapped"}
    changed = [i for i in new_swapped if new_swapped[i] != old_swapped[i]]
    assert changed  # seed 1 gives at least one of these items other music
    stale = {r["id"]: "7" for r in old_rows}  # predictions made on the seed-0 folder
    results, items = evaluate_pair(new_rows, stale, known_ids=[r["id"] for r in new_rows])
    assert sorted(results["unknown_prediction_ids"]) == sorted(old_swapped[i] for i in changed)
    by_id = {i["id"]: i for i in items}
    for pair_id in changed:
        assert by_id[pair_id]["status"] == "missing" and by_id[pair_id]["missing"] == [new_swapped[pair_id]]


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
def _predict_and_eval(swap_dir: Path, tmp_path: Path, model: str, *extra: str,
                      predict_args: tuple[str, ...] = ()) -> tuple[dict, list[dict]]:
    preds = tmp_path / f"{model}.jsonl"
    assert harmonyset_main(["predict", "--data", str(swap_dir), "--config", "pair", "--model", model,
                            "--out", str(preds), *extra, *predict_args]) == 0
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
    # `harmonyset report` takes pair results beside MC/OE ones.
    assert harmonyset_main(["report", str(tmp_path / "baseline-frames-eval"), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "pairs.csv").read_text().splitlines()
    assert table[1].startswith("baseline-frames,0.5000,") and (tmp_path / "report" / "pairs.md").is_file()


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
    preds = tmp_path / "pair.jsonl"
    write_jsonl(preds, [{"id": "a:original", "response": "5"}])
    assert harmonyset_main(["eval", "pair", "--data", str(hub_dir), "--predictions", str(preds),
                            "--out", str(tmp_path / "e")]) == 2
    assert "harmonyset derive swap" in capsys.readouterr().err  # a Hub folder without the pair config
    missing = tmp_path / "no_such_swap"  # a typo'd folder: one line, not datasets' ConnectionError traceback
    assert harmonyset_main(["predict", "--data", str(missing), "--config", "pair", "--model", "baseline-frames",
                            "--out", str(tmp_path / "p.jsonl")]) == 2
    assert f"cannot load config 'pair' of {missing}: no such folder" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The harness task `harmonyset_pair` (lm-eval and lmms-eval), as tests/test_harness.py runs them
# --------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def _harness_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARMONYSET_JUDGE", "HARMONYSET_DATA",
                                                                    "HARMONYSET_PAIR_DATA"))}
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false", HF_DATASETS_CACHE=str(tmp_path / "hf-datasets"))
    env.update(extra)
    return env


def _run_harness(argv: list, env: dict) -> None:
    import subprocess

    proc = subprocess.run([str(a) for a in argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def _one_file(paths: list[Path]) -> Path:
    assert len(paths) == 1, [str(p) for p in paths]
    return paths[0]


def _check_harness_numbers(task_results: dict, swap_dir: Path, replies: dict[str, str], tmp_path: Path) -> dict:
    """The harness's pair metrics equal `harmonyset eval pair` on the replies it logged."""
    preds = tmp_path / "harness-pair.jsonl"
    write_jsonl(preds, [{"id": k, "response": v, "model": "harness"} for k, v in replies.items()])
    assert harmonyset_main(["eval", "pair", "--data", str(swap_dir), "--predictions", str(preds),
                            "--out", str(tmp_path / "harness-eval")]) == 0
    ours = json.loads((tmp_path / "harness-eval" / "results.json").read_text())
    assert ours["counts"]["scored"] == len(replies) // 2
    for metric in ("accuracy", "strict_accuracy", "tie_rate", "invalid_rate"):
        assert task_results[f"{metric},none"] == pytest.approx(ours["overall"][metric], abs=1e-12), metric
    return ours


@pytest.mark.slow
def test_lm_eval_pair_task_with_the_baseline(swap_dir, hub_dir, tmp_path):
    """harmonyset-lm-eval: `harmonyset-baseline` rates swap pairs from the frames (50 %) next to an MC task."""
    import sys

    out = tmp_path / "lm-eval"
    metadata = {"data": str(hub_dir), "pair_data": str(swap_dir)}
    _run_harness([Path(sys.executable).parent / "harmonyset-lm-eval", "--model", "harmonyset-baseline",
                  "--include_path", REPO / "tasks" / "lm_eval", "--tasks", "harmonyset_pair,harmonyset_mc_rhythm",
                  "--metadata", json.dumps(metadata), "--log_samples", "--output_path", out], _harness_env(tmp_path))
    results = json.loads(_one_file(sorted(out.rglob("results_*.json"))).read_text())
    rows = {r["id"]: r for r in load_split(swap_dir, "pair", media=True)}
    replies = {}
    for s in (json.loads(x) for x in _one_file(sorted(out.rglob("samples_harmonyset_pair_*.jsonl"))).read_text()
              .splitlines() if x.strip()):
        row = rows[s["doc"]["id"]]
        args = s["arguments"]["gen_args_0"]
        assert args["arg_0"] == PAIR_RATING_PROMPT and args["arg_2"]["visual"] == [row["video"]["path"]]
        assert s["target"] == row["variant"]
        replies[row["id"]] = s["filtered_resps"][0]
    assert sorted(replies) == sorted(rows)
    ours = _check_harness_numbers(results["results"]["harmonyset_pair"], swap_dir, replies, tmp_path)
    assert ours["overall"]["accuracy"] == 0.5 and ours["overall"]["tie_rate"] == 1.0
    assert "harmonyset_mc_rhythm" in results["results"]  # MC on the Hub folder in the same run


@pytest.mark.slow
def test_lmms_eval_pair_task_with_the_tiny_model(swap_dir, tmp_path):
    """lmms-eval: the tiny Qwen2.5-Omni (real frames + music) on the first 2 items' 4 docs; numbers as `eval pair`."""
    import sys

    out = tmp_path / "lmms-eval"
    _run_harness([Path(sys.executable).parent / "lmms-eval", "--model", "harmonyset-tiny", "--model_args", "frames=2",
                  "--include_path", REPO / "tasks" / "lmms_eval", "--tasks", "harmonyset_pair", "--limit", "4",
                  "--log_samples", "--output_path", out],
                 _harness_env(tmp_path, HARMONYSET_DATA="/nonexistent-main-hub", HARMONYSET_PAIR_DATA=str(swap_dir)))
    results = json.loads(_one_file(sorted(out.rglob("*_results.json"))).read_text())
    rows = load_split(swap_dir, "pair")
    replies = {}
    for s in (json.loads(x) for x in _one_file(sorted(out.rglob("*_samples_harmonyset_pair.jsonl"))).read_text()
              .splitlines() if x.strip()):
        row = rows[s["doc_id"]]
        assert s["target"] == row["variant"]
        reply = s["filtered_resps"]
        replies[row["id"]] = reply[0] if isinstance(reply, list) else reply
    assert len(replies) == 4 and {r.split(":")[0] for r in replies} == {r["pair_id"] for r in rows[:4]}
    _check_harness_numbers(results["results"]["harmonyset_pair"], swap_dir, replies, tmp_path)


def test_pair_harness_pieces_match_evaluation(swap_dir, monkeypatch):
    """Docs, prompt, per-doc items and aggregations in-process; the dispatcher routes pair docs to the pair model."""
    from harmonyset_hf.errors import HarmonySetError
    from harmonyset_hf.harness import pair_tasks
    from harmonyset_hf.harness.adapter import HarnessRequest, RegistryDispatcher, doc_config

    monkeypatch.delenv("HARMONYSET_PAIR_DATA", raising=False)
    monkeypatch.setenv("HARMONYSET_DATA", "/main/hub")
    assert pair_tasks.pair_data_source({}) == "/main/hub"
    assert pair_tasks.pair_data_source({"data": "/main/hub", "pair_data": "/swap"}) == "/swap"
    monkeypatch.setenv("HARMONYSET_PAIR_DATA", "/swap-env")
    assert pair_tasks.pair_data_source({}) == "/swap-env"
    docs = pair_tasks.load_pair_docs("pair", data="/main/hub", pair_data=str(swap_dir))["test"].to_list()
    assert all(Path(d["video_path"]).is_file() for d in docs) and doc_config(docs[0]) == "pair"
    assert pair_tasks.pair_doc_to_text(docs[0], {"pre_prompt": "<p>", "post_prompt": "</p>"}) == \
        f"<p>{PAIR_RATING_PROMPT}</p>"
    pattern = ["7", "3", "5", "5/10", "2", "8", "no idea", "4"]  # (original, swapped): win, tie, loss, invalid
    assert [d["variant"] for d in docs[:2]] == ["original", "swapped"]
    replies = {d["id"]: pattern[i % len(pattern)] for i, d in enumerate(docs)}
    items = [pair_tasks.pair_process_results(d, [replies[d["id"]]])["accuracy"] for d in docs]
    ours, _ = evaluate_pair(load_split(swap_dir, "pair"), replies)
    assert pair_tasks.pair_accuracy(items) == pytest.approx(ours["overall"]["accuracy"])
    assert pair_tasks.pair_invalid_rate(items) == pytest.approx(ours["overall"]["invalid_rate"])
    assert min(ours["overall"][k] for k in ("wins", "ties", "losses", "invalid")) > 0
    assert pair_tasks.pair_tie_rate(items[:3]) == pytest.approx(  # the lone third doc is left out
        evaluate_pair(load_split(swap_dir, "pair")[:2], replies)[0]["overall"]["tie_rate"])
    dispatcher = RegistryDispatcher(mc="baseline-longest", oe="baseline-generic", pair="baseline-frames")
    got = dispatcher.generate([HarnessRequest(PAIR_RATING_PROMPT, d, [d["video_path"]], []) for d in docs[:2]])
    assert got[0] == got[1] and parse_rating(got[0]).value is not None  # same frames, same rating
    with pytest.raises(HarmonySetError, match="not 'pair'"):
        RegistryDispatcher(model="baseline-generic").generate([HarnessRequest("p", docs[0], [], [])])


def test_an_unreadable_video_leaves_its_item_out_and_the_rest_goes_on(hub_dir, tmp_path):
    import shutil

    broken_hub = tmp_path / "hub-broken"
    shutil.copytree(hub_dir, broken_hub)  # copies: the session's videos stay intact
    rows = load_split(broken_hub, "oe", media=True, limit=3)
    victim = Path(rows[1]["video"]["path"])
    data = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(data[: len(data) // 3])  # truncated: the moov atom (faststart) survives, the media not
    report = derive_swap(broken_hub, tmp_path / "swap", seed=0, limit=3)
    skipped = {s["id"] for s in report["skipped"]}
    # The victim is left out, and so is the item that was to get its music.
    assert rows[1]["id"] in skipped and len(skipped) == 2
    assert any(rows[1]["id"] in s["reason"] for s in report["skipped"])
    kept = load_split(tmp_path / "swap", "pair")
    assert len(kept) == 2 and {r["pair_id"] for r in kept} == {r["id"] for r in rows} - skipped
    assert len(list((tmp_path / "swap" / "videos").rglob("*.mp4"))) == 2
    assert not list((tmp_path / "swap").rglob(".*.tmp.mp4"))


def _media_rater(body: dict) -> str:
    """A chat 'model' at the network edge whose rating is a function of every image and audio part it is sent."""
    import hashlib

    digest = hashlib.sha256()
    for msg in body.get("messages", []):
        for part in msg.get("content") if isinstance(msg.get("content"), list) else []:
            if part.get("type") == "image_url":
                digest.update(part["image_url"]["url"].encode())
            elif part.get("type") == "input_audio":
                digest.update(part["input_audio"]["data"].encode())
    return f"I would rate the fit {1 + digest.digest()[0] % 10}/10."


@pytest.mark.parametrize("audio", [False, True])
def test_an_api_model_without_the_audio_ties_and_with_it_does_not(swap_dir, tmp_path, monkeypatch, audio):
    """openai-api through a local server: frames only (audio=false) gives identical requests, so 50 %."""
    from openai_server import FakeOpenAIServer

    monkeypatch.setenv("HARMONYSET_API_API_KEY", "test-key")
    with FakeOpenAIServer(reply=_media_rater) as server:
        args = f"base_url={server.base_url},model=rater,audio={str(audio).lower()},cache_dir={tmp_path / 'cache'}"
        results, preds = _predict_and_eval(swap_dir, tmp_path, "openai-api",
                                           predict_args=("--model-args", args, "--frames", "4"))
        served = server.total_served
    o = results["overall"]
    assert o["invalid"] == 0 and o["n"] == len(preds) // 2 and served >= o["n"]
    if audio:
        assert o["tie_rate"] < 1.0
    else:
        assert o["accuracy"] == 0.5 and o["tie_rate"] == 1.0
