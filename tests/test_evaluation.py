"""predict (resumable), eval mc / eval oe end to end on the Hub folder, report outputs, evaluate modules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harmonyset_hf.cli import main
from harmonyset_hf.evaluation.predict import load_split
from harmonyset_hf.io import read_jsonl
from harmonyset_hf.schema import ASPECTS, OPTION_LETTERS

REPO = Path(__file__).resolve().parents[1]


def _cli(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def mc_rows(hub_dir):
    return load_split(hub_dir, "mc")


@pytest.fixture(scope="module")
def oe_rows(hub_dir):
    return load_split(hub_dir, "oe")


def test_prompts_built_from_rows(mc_rows, oe_rows):
    from harmonyset_hf.prompting import mc_prompt, oe_prompt

    prompt = mc_prompt(mc_rows[0])
    assert mc_rows[0]["question"].strip() in prompt
    for letter, option in zip(OPTION_LETTERS, mc_rows[0]["options"]):
        assert f"{letter}. {option}" in prompt
    assert "<video>" not in oe_prompt(oe_rows[0]) and oe_prompt(oe_rows[0])


def test_predict_resumes_without_duplicates(hub_dir, tmp_path, mc_rows):
    out = tmp_path / "p.jsonl"
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", out,
                "--limit", 5, "--seed", 3) == 0
    first = list(read_jsonl(out))
    assert len(first) == 5
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", out,
                "--limit", 12, "--seed", 3) == 0
    again = list(read_jsonl(out))
    ids = [r["question_id"] for r in again]
    assert len(ids) == 12 == len(set(ids))
    assert again[:5] == first  # earlier lines untouched
    assert ids == [r["question_id"] for r in mc_rows[:12]]
    # a full rerun adds only what is missing; the random letters do not depend on how the run was split
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", out,
                "--seed", 3) == 0
    full = list(read_jsonl(out))
    assert len(full) == len(mc_rows) == len({r["question_id"] for r in full})
    one_shot = tmp_path / "one.jsonl"
    _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", one_shot, "--seed", 3)
    assert {r["question_id"]: r["response"] for r in read_jsonl(one_shot)} == \
        {r["question_id"]: r["response"] for r in full}
    # an MC-only model is refused on OE before anything runs
    assert _cli("predict", "--data", hub_dir, "--config", "oe", "--model", "baseline-random", "--out",
                tmp_path / "oe.jsonl") == 2
    assert not (tmp_path / "oe.jsonl").exists()
    # another model's predictions are not mixed into the same file
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-longest", "--out", out) == 2


def test_eval_mc_end_to_end(hub_dir, tmp_path, mc_rows):
    preds = tmp_path / "longest.jsonl"
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-longest", "--out", preds,
                "--circular") == 0
    assert len(list(read_jsonl(preds))) == 4 * len(mc_rows)
    # drop one question's predictions entirely and add one for an id that is not in the data
    dropped = mc_rows[0]["question_id"]
    kept = [r for r in read_jsonl(preds) if not r["question_id"].startswith(dropped + "#")]
    kept.append({"question_id": "nope:rhythm", "response": "A"})
    preds.write_text("".join(json.dumps(r) + "\n" for r in kept))
    out = tmp_path / "mc"
    assert _cli("eval", "mc", "--data", hub_dir, "--predictions", preds, "--out", out, "--circular") == 0
    results = json.loads((out / "results.json").read_text())
    items = list(read_jsonl(out / "items.jsonl"))
    assert results["config"] == "mc" and results["model"] == "baseline-longest"
    assert results["counts"]["missing"] == 1 and results["counts"]["unknown_predictions"] == 1
    assert results["unknown_prediction_ids"] == ["nope:rhythm"]
    assert len(items) == len(mc_rows)
    # independent computation: the longest option against the published answer
    expected = {a: [] for a in ASPECTS}
    for row in mc_rows[1:]:
        lengths = [len(o) for o in row["options"]]
        expected[row["aspect"]].append(OPTION_LETTERS[lengths.index(max(lengths))] == row["answer"])
    for aspect in ASPECTS:
        stats = results["aspects"][aspect]
        assert stats["n"] == len(expected[aspect])
        if expected[aspect]:
            assert stats["accuracy"] == pytest.approx(sum(expected[aspect]) / len(expected[aspect]))
            assert stats["ci95"][0] <= stats["accuracy"] <= stats["ci95"][1]
        assert stats["invalid_rate"] == 0 and stats["chance"] == 0.25
    # a unique longest option is the same text in every rotation: circular-correct exactly when correct
    by_qid = {r["question_id"]: r for r in mc_rows}
    unique = 0
    for item in items[1:]:
        lengths = sorted((len(o) for o in by_qid[item["question_id"]]["options"]), reverse=True)
        if lengths[0] > lengths[1]:
            unique += 1
            assert item["circular"]["correct"] == item["correct"]
    assert unique > 0
    assert results["circular"]["overall"]["accuracy"] <= results["overall"]["accuracy"]
    assert results["circular"]["missing"] == 1
    assert "package_versions" in results and results["judge"] is None


def test_eval_mc_random_circular_is_harder(hub_dir, tmp_path, mc_rows):
    preds = tmp_path / "random.jsonl"
    _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", preds, "--circular")
    out = tmp_path / "mc_random"
    assert _cli("eval", "mc", "--data", hub_dir, "--predictions", preds, "--out", out, "--circular") == 0
    results = json.loads((out / "results.json").read_text())
    items = {i["question_id"]: i for i in read_jsonl(out / "items.jsonl")}
    for item in items.values():
        if item["circular"]["correct"]:
            assert item["correct"]  # right every time implies right on r0
    assert results["circular"]["overall"]["accuracy"] <= results["overall"]["accuracy"]
    assert sum(results["letters"]["predicted"].values()) == len(mc_rows)
    # --limit evaluates the first rows; predictions of the other rows are not "unknown"
    assert _cli("eval", "mc", "--data", hub_dir, "--predictions", preds, "--out", tmp_path / "lim", "--limit", 8) == 0
    limited = json.loads((tmp_path / "lim" / "results.json").read_text())
    assert limited["counts"]["questions"] == 8 and limited["counts"]["unknown_predictions"] == 0


def _oe_predictions(path: Path, rows: list[dict]) -> None:
    # a real model's answers are not available offline: one reply per item that echoes half of its
    # reference and the generic baseline's for the rest, so that judged scores differ between items
    from harmonyset_hf.models.baselines import GENERIC_ANSWER

    lines = [{"id": r["id"], "response": r["annotation"] if i % 2 else GENERIC_ANSWER, "model": "half-echo"}
             for i, r in enumerate(rows)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines[1:]))  # the first item is missing


def test_eval_oe_embedding_end_to_end(hub_dir, tmp_path, oe_rows):
    preds = tmp_path / "oe.jsonl"
    _oe_predictions(preds, oe_rows)
    out = tmp_path / "oe"
    assert _cli("eval", "oe", "--data", hub_dir, "--predictions", preds, "--judge", "embedding", "--out", out) == 0
    results = json.loads((out / "results.json").read_text())
    items = list(read_jsonl(out / "items.jsonl"))
    scored = [i for i in items if i["status"] == "scored"]
    assert results["counts"] == {"items": len(oe_rows), "scored": len(oe_rows) - 1, "failed": 0, "missing": 1,
                                 "unknown_predictions": 0}
    assert results["judge"]["kind"] == "embedding" and results["judge"]["proxy"] is True
    for aspect in ASPECTS:  # Overall is the mean over items
        assert results["overall"][aspect] == pytest.approx(sum(i["scores"][aspect] for i in scored) / len(scored))
    echoed = [i for i in scored if i["response"] != scored[0]["response"]] or scored
    assert max(i["scores"]["theme"] for i in echoed) == pytest.approx(10.0)  # an echo of the reference
    cats = {i["category"] for i in scored}
    assert set(results["categories"]) == cats


def test_eval_oe_openai_judge_against_local_server(hub_dir, tmp_path, oe_rows):
    from openai_server import FakeOpenAIServer

    from harmonyset_hf.judge import prompt_sha256

    preds = tmp_path / "oe.jsonl"
    _oe_predictions(preds, oe_rows)
    out = tmp_path / "oe_llm"
    with FakeOpenAIServer() as server:
        server.inject("reply", times=1, text="I think it deserves a seven.")  # unparsable, then re-asked
        args = ["eval", "oe", "--data", hub_dir, "--predictions", preds, "--judge", "openai", "--judge-model",
                "judge-test", "--judge-base-url", server.base_url, "--cache", tmp_path / "cache", "--out", out]
        assert _cli(*args) == 0
        served = server.total_served
        results = json.loads((out / "results.json").read_text())
        assert results["counts"]["scored"] == len(oe_rows) - 1 and results["counts"]["failed"] == 0
        assert results["judge"]["prompt_sha256"] == prompt_sha256()
        assert results["judge"]["model"] == "judge-test"
        assert served == len(oe_rows)  # one call per item plus one re-ask
        assert _cli(*args) == 0  # a rerun is answered from the cache
        assert server.total_served == served
    again = json.loads((out / "results.json").read_text())
    assert again["overall"] == results["overall"]


def test_eval_oe_exits_1_when_the_judge_scored_nothing(hub_dir, tmp_path, oe_rows, capsys):
    from openai_server import FakeOpenAIServer

    preds = tmp_path / "oe.jsonl"
    _oe_predictions(preds, oe_rows)
    with FakeOpenAIServer() as server:
        server.inject("400", times=100)  # every call refused
        args = ["eval", "oe", "--data", hub_dir, "--predictions", preds, "--judge-model", "judge-test",
                "--judge-base-url", server.base_url, "--cache", tmp_path / "cache", "--out", tmp_path / "r"]
        assert _cli(*args) == 1
        assert "harmonyset: error: the judge scored none of the" in capsys.readouterr().err
        server.clear_faults()
        assert _cli(*args) == 0  # failed calls were not cached: the rerun scores them


def test_report_outputs(hub_dir, tmp_path, mc_rows, oe_rows):
    preds = tmp_path / "r.jsonl"
    _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", preds)
    _cli("eval", "mc", "--data", hub_dir, "--predictions", preds, "--out", tmp_path / "mc")
    oe_preds = tmp_path / "g.jsonl"
    _cli("predict", "--data", hub_dir, "--config", "oe", "--model", "baseline-generic", "--out", oe_preds)
    _cli("eval", "oe", "--data", hub_dir, "--predictions", oe_preds, "--judge", "embedding", "--out", tmp_path / "oe")
    out = tmp_path / "report"
    assert _cli("report", tmp_path / "mc", tmp_path / "oe" / "results.json", "--out", out, "--compare-paper") == 0
    for name in ("report.md", "table2_oe.csv", "table2_oe.md", "table5_mc.csv", "table5_mc.md",
                 "oe_overall.png", "mc_accuracy.png", "mc_invalid.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "mc_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    assert "paper: Gemini-1.5 Pro" in text and "41.84" in text and "5.43" in text and "chance" in text
    mc = list(csv.DictReader((out / "table5_mc.csv").open()))
    assert mc[0]["Model"] == "baseline-random"
    mc_results = json.loads((tmp_path / "mc" / "results.json").read_text())
    assert float(mc[0]["rhythm_accuracy"]) == pytest.approx(mc_results["aspects"]["rhythm"]["accuracy"], abs=1e-4)
    assert float(mc[0]["rhythm_invalid_rate"]) == 0.0
    assert any(r["Model"] == "paper: Human" and r["culture_accuracy"] == "0.9381" for r in mc)
    oe = list(csv.DictReader((out / "table2_oe.csv").open()))
    assert oe[0]["Model"] == "baseline-generic" and oe[0]["Overall R&S"]
    assert any(r["Model"] == "paper: VideoLLaMA2" and r["Overall Cult"] == "3.05" for r in oe)
    # a predictions file (JSON Lines) or other JSON given instead of results: one line naming what to give
    (tmp_path / "list.json").write_text("[1, 2]")
    for wrong in (preds, tmp_path / "list.json"):
        assert _cli("report", wrong, "--out", tmp_path / "r2") == 2


def test_evaluate_modules_offline_give_the_same_numbers(hub_dir, mc_rows):
    import evaluate

    from harmonyset_hf.evaluation import evaluate_mc
    from harmonyset_hf.models import get_model
    from harmonyset_hf.prompting import mc_prompt

    model = get_model("baseline-random", seed=5)
    replies = model.generate(mc_rows, [mc_prompt(r) for r in mc_rows])
    replies = [f"The answer is {r}." if i % 3 else "no idea" for i, r in enumerate(replies)]
    metric = evaluate.load(str(REPO / "eval" / "harmonyset_mc"))
    got = metric.compute(predictions=replies, references=[r["answer"] for r in mc_rows],
                         options=[r["options"] for r in mc_rows], aspects=[r["aspect"] for r in mc_rows])
    results, _ = evaluate_mc(mc_rows, {r["question_id"]: p for r, p in zip(mc_rows, replies)})
    assert got["accuracy"] == pytest.approx(results["overall"]["accuracy"])
    assert got["invalid_rate"] == pytest.approx(results["overall"]["invalid_rate"]) and got["invalid_rate"] > 0
    for aspect in ASPECTS:
        assert got[f"{aspect}_accuracy"] == pytest.approx(results["aspects"][aspect]["accuracy"])


def test_evaluate_oe_module_offline(oe_rows):
    import evaluate

    from harmonyset_hf.evaluation import evaluate_oe
    from harmonyset_hf.judge import make_judge
    from harmonyset_hf.models.baselines import GENERIC_ANSWER

    metric = evaluate.load(str(REPO / "eval" / "harmonyset_oe"))
    replies = [GENERIC_ANSWER if i % 2 else r["annotation"] for i, r in enumerate(oe_rows)]
    got = metric.compute(predictions=replies, references=[r["annotation"] for r in oe_rows],
                         categories=[r["category"] for r in oe_rows])
    results, _ = evaluate_oe(oe_rows, {r["id"]: p for r, p in zip(oe_rows, replies)}, make_judge("embedding"))
    for aspect in ASPECTS:
        assert got[aspect] == pytest.approx(results["overall"][aspect])
    assert got["n"] == len(oe_rows) and got["failed"] == 0


class FlakyModel:
    """A model plugged in through the open registry that cannot answer one aspect (a bad item, say)."""

    name = "test-flaky"
    needs_media = True

    def __init__(self, fail_on: str = "", seed: int = 0, frames: int = 16):
        self.fail_on = fail_on

    def generate(self, batch, prompts):
        """'A' for every row; raises on rows of the aspect ``fail_on``; checks it got undecoded media."""
        for row in batch:
            assert Path(row["video"]["path"]).is_file()
            if row["aspect"] == self.fail_on:
                raise ValueError(f"cannot answer {row['question_id']}")
        return ["A"] * len(batch)


def test_predict_failed_items_are_reported_and_retried(hub_dir, tmp_path, mc_rows, capsys):
    from harmonyset_hf.models import MODELS, register_model

    register_model("test-flaky", "test_evaluation:FlakyModel")
    try:
        out = tmp_path / "flaky.jsonl"
        argv = ["predict", "--data", hub_dir, "--config", "mc", "--model", "test-flaky", "--out", out,
                "--batch-size", 4]
        assert _cli(*argv, "--model-args", "fail_on=emotion") == 1
        n_emotion = sum(r["aspect"] == "emotion" for r in mc_rows)
        assert f"{n_emotion} failed" in capsys.readouterr().out
        assert len(list(read_jsonl(out))) == len(mc_rows) - n_emotion  # the rest of each batch was kept
        assert _cli(*argv) == 0
        assert len({r["question_id"] for r in read_jsonl(out)}) == len(mc_rows) == len(list(read_jsonl(out)))
    finally:
        MODELS.pop("test-flaky", None)


def test_predict_model_args_may_set_seed_and_frames(hub_dir, tmp_path):
    # the README passes `--model-args seed=...` / `frames=16`; they override --seed/--frames, not crash
    flags, args = tmp_path / "flags.jsonl", tmp_path / "args.jsonl"
    common = ["predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--limit", 6]
    assert _cli(*common, "--seed", 3, "--out", flags) == 0
    assert _cli(*common, "--seed", 0, "--model-args", "seed=3,frames=8", "--out", args) == 0
    got = list(read_jsonl(args))
    assert [r["response"] for r in got] == [r["response"] for r in read_jsonl(flags)]
    assert got[0]["meta"] == {"seed": 3, "frames": 8}


def test_wrong_data_path_is_one_clear_line(tmp_path, mini_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a mistyped folder is tried as a Hub repo id
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"question_id": "x:rhythm", "response": "A"}\n')
    missing = tmp_path / "no_such_hub"
    assert _cli("eval", "mc", "--data", missing, "--predictions", preds, "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such folder" in err and str(missing) in err
    # the release folder itself is not a Hub folder
    assert _cli("predict", "--data", mini_dir / "release", "--config", "mc", "--model", "baseline-random",
                "--out", preds) == 2
    assert "harmonyset build" in capsys.readouterr().err


def test_predictions_folder_is_one_clear_line(hub_dir, tmp_path, capsys):
    assert _cli("eval", "mc", "--data", hub_dir, "--predictions", tmp_path, "--out", tmp_path / "r") == 2
    assert "is a folder" in capsys.readouterr().err


def test_predict_out_folder_is_one_clear_line(hub_dir, tmp_path, capsys):
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", tmp_path) == 2
    assert "is a folder" in capsys.readouterr().err


def test_circular_eval_of_plain_predictions_says_what_is_missing(hub_dir, tmp_path, capsys):
    preds = tmp_path / "plain.jsonl"
    assert _cli("predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", preds) == 0
    assert _cli("eval", "mc", "--data", hub_dir, "--predictions", preds, "--out", tmp_path / "r", "--circular") == 0
    assert "circular n/a (no rotated answers: run `harmonyset predict --circular`)" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["predict", "--data", "hub", "--config", "mc", "--model", "baseline-random", "--out", "p.jsonl",
     "--batch-size", "0"],
    ["predict", "--data", "hub", "--config", "mc", "--model", "baseline-random", "--out", "p.jsonl", "--limit", "-1"],
    ["eval", "mc", "--data", "hub", "--predictions", "p.jsonl", "--out", "r", "--limit", "-2"],  # was rows[:-2]
    ["probe", "v.mp4", "--frames", "0"],
])
def test_counts_below_one_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_resume_after_a_torn_line_leaves_a_file_eval_can_read(hub_dir, tmp_path, mc_rows):
    out = tmp_path / "p.jsonl"
    argv = ["predict", "--data", hub_dir, "--config", "mc", "--model", "baseline-random", "--out", out]
    assert _cli(*argv, "--limit", 3) == 0
    with out.open("a") as fh:  # a run killed mid-line
        fh.write('{"question_id": "hs0000')
    assert _cli(*argv) == 0  # resumes; the torn line is cut off, not buried mid-file
    assert len(list(read_jsonl(out, tolerate_partial_last_line=False))) == len(mc_rows)
    assert _cli("eval", "mc", "--data", hub_dir, "--predictions", out, "--out", tmp_path / "r") == 0
    # a last record that only lacks its newline (a hand-written file) is kept
    text = out.read_text().splitlines()
    out.write_text("\n".join(text[:5]))
    assert _cli(*argv) == 0 and len(list(read_jsonl(out))) == len(mc_rows)


def test_a_media_model_on_an_annotations_only_folder_fails_once(mini_dir, tmp_path, capsys):
    assert _cli("build", "--release", mini_dir / "release", "--annotations-only", "--out", tmp_path / "ao") == 0
    out = tmp_path / "p.jsonl"
    assert _cli("predict", "--data", tmp_path / "ao", "--config", "mc", "--model", "openai-api", "--model-args",
                "model=m,base_url=http://127.0.0.1:9/v1", "--out", out) == 2  # once, not 'no such file' per item
    assert "has no videos (built with --annotations-only)" in capsys.readouterr().err and not out.exists()
