"""HarmonySet-MC/OE inside lm-eval and lmms-eval: the real commands on HarmonySet-mini, numbers equal `harmonyset eval`.

Each harness run is a subprocess of the installed console script (`harmonyset-lm-eval`, `lmms-eval`),
offline, with MC and OE in one run. The replies the harness logged (`--log_samples`) are written
as our predictions and scored by `harmonyset eval mc|oe`; the harness's own metrics must match.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harmonyset_hf.cli import main as harmonyset_main
from harmonyset_hf.evaluation.predict import load_split
from harmonyset_hf.evaluation.scoring import parse_choice
from harmonyset_hf.io import write_jsonl
from harmonyset_hf.prompting import mc_prompt, oe_prompt
from harmonyset_hf.schema import ASPECTS, CATEGORIES

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LM_TASKS = REPO / "tasks" / "lm_eval"
LMMS_TASKS = REPO / "tasks" / "lmms_eval"
MC_TASKS = [f"harmonyset_mc_{a}" for a in ASPECTS]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARMONYSET_JUDGE", "HARMONYSET_DATA"))}
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false", HF_DATASETS_CACHE=str(tmp_path / "hf-datasets"))
    env.update(extra)
    return env


def _run(argv: list, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _run_side_by_side(commands: dict[str, list], env: dict, timeout: int = 900) -> dict[str, str]:
    """Run harness commands at once (each spends most of its start indexing tasks); their stdout by name."""
    procs = {name: subprocess.Popen([str(a) for a in argv], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name, argv in commands.items()}
    outputs = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{stdout[-3000:]}\n{stderr[-6000:]}"
        outputs[name] = stdout
    return outputs


def _one(paths: list[Path], what: str) -> Path:
    assert len(paths) == 1, f"expected one {what}, found {[str(p) for p in paths]}"
    return paths[0]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _harmonyset_eval(config: str, hub_dir: Path, predictions: dict[str, str], out: Path, *judge: str) -> dict:
    key = "question_id" if config == "mc" else "id"
    preds = out / f"{config}_predictions.jsonl"
    write_jsonl(preds, [{key: k, "response": v, "model": "harness"} for k, v in predictions.items()])
    assert harmonyset_main(["eval", config, "--data", str(hub_dir), "--predictions", str(preds),
                            "--out", str(out / config), *map(str, judge)]) == 0
    return json.loads((out / config / "results.json").read_text())


def _check_mc(results: dict, mc: dict, ours: dict) -> None:
    """The harness's MC numbers (per aspect task and the group) equal `harmonyset eval mc`."""
    for aspect, task in zip(ASPECTS, MC_TASKS):
        got = results["results"][task]
        if not ours["aspects"][aspect]["n"]:
            continue
        assert got["accuracy,none"] == pytest.approx(ours["aspects"][aspect]["accuracy"], abs=1e-12), task
        assert got["invalid_rate,none"] == pytest.approx(ours["aspects"][aspect]["invalid_rate"], abs=1e-12), task
    group = results["groups"]["harmonyset_mc"] if "harmonyset_mc" in results.get("groups", {}) \
        else results["results"]["harmonyset_mc"]
    assert group["accuracy,none"] == pytest.approx(ours["overall"]["accuracy"], abs=1e-12)
    assert group["invalid_rate,none"] == pytest.approx(ours["overall"]["invalid_rate"], abs=1e-12)
    assert ours["counts"]["scored"] == len(mc) and ours["counts"]["unknown_predictions"] == 0


def _check_oe(results: dict, oe: dict, ours: dict) -> None:
    """The harness's OE judge means, and its category x aspect table, equal `harmonyset eval oe` with the same judge."""
    got = results["results"]["harmonyset_oe"]
    assert ours["counts"]["scored"] + ours["counts"]["failed"] == len(oe)
    for aspect in ASPECTS:
        assert got[f"{aspect},none"] == pytest.approx(ours["overall"][aspect], abs=1e-9), aspect
    assert got["failed,none"] == ours["counts"]["failed"] and got["judge,none"] == ours["counts"]["scored"]
    assert ours["categories"]
    for category in CATEGORIES:
        for aspect in ASPECTS:
            value = got[f"{category}_{aspect},none"]
            expected = ours["categories"].get(category, {}).get(aspect)
            if expected is None:
                assert value is None or math.isnan(value) or value == "NaN", (category, aspect)
            else:
                assert value == pytest.approx(expected, abs=1e-9), (category, aspect)


def _check_choice_logged(sample: dict, row: dict) -> None:
    """An MC sample log holds the letter read from the reply and why (as `harmonyset eval mc` reads it)."""
    reply = sample["filtered_resps"][0] if isinstance(sample["filtered_resps"], list) else sample["filtered_resps"]
    choice = parse_choice(reply, row["options"])
    assert sample["choice"] == {"letter": choice.letter, "reason": choice.reason}


def _check_verdict_logged(sample: dict, ident: str) -> None:
    """An OE sample log holds the judge's verdict of its reply: four scores (or why none) and the judge's reply."""
    verdict = sample["judge"]
    assert verdict["id"] == ident and verdict["status"] in ("scored", "failed")
    if verdict["status"] == "scored":
        assert set(verdict["scores"]) == set(ASPECTS) and all(1 <= v <= 10 for v in verdict["scores"].values())
    else:
        assert verdict["error"]


def _lm_eval_outputs(out: Path, hub_dir: Path) -> tuple[dict, dict[str, str], dict[str, str]]:
    """(results, MC replies by question_id, OE replies by id) from lm-eval's output folder."""
    results = json.loads(_one(sorted(out.rglob("results_*.json")), "lm-eval results file").read_text())
    rows = {r["question_id"]: r for r in load_split(hub_dir, "mc", media=True)}
    oe_rows = {r["id"]: r for r in load_split(hub_dir, "oe", media=True)}
    mc: dict[str, str] = {}
    for task in MC_TASKS:
        for s in _jsonl(_one(sorted(out.rglob(f"samples_{task}_*.jsonl")), f"{task} samples")):
            row = rows[s["doc"]["question_id"]]
            args = s["arguments"]["gen_args_0"]
            assert args["arg_0"] == mc_prompt(row)  # the prompt is prompting.py's, nothing added
            assert args["arg_2"]["visual"] == [row["video"]["path"]]  # the mp4 (video + its music)
            assert s["doc"]["aspect"] == task.rsplit("_", 1)[1]
            mc[row["question_id"]] = s["filtered_resps"][0]
            _check_choice_logged(s, row)
    oe: dict[str, str] = {}
    for s in _jsonl(_one(sorted(out.rglob("samples_harmonyset_oe_*.jsonl")), "OE samples")):
        row = oe_rows[s["doc"]["id"]]
        assert s["arguments"]["gen_args_0"]["arg_0"] == oe_prompt(row)
        oe[row["id"]] = s["filtered_resps"][0]
        _check_verdict_logged(s, row["id"])
    return results, mc, oe


def _lmms_eval_outputs(out: Path, hub_dir: Path) -> tuple[dict, dict[str, str], dict[str, str]]:
    """(results, MC replies by question_id, OE replies by id) from lmms-eval's output folder."""
    results = json.loads(_one(sorted(out.rglob("*_results.json")), "lmms-eval results file").read_text())
    every = load_split(hub_dir, "mc")
    mc: dict[str, str] = {}
    for task, aspect in zip(MC_TASKS, ASPECTS):
        docs = [r for r in every if r["aspect"] == aspect]  # the task's docs, in load order
        for s in _jsonl(_one(sorted(out.rglob(f"*_samples_{task}.jsonl")), f"{task} samples")):
            row = docs[s["doc_id"]]
            assert s["input"] == mc_prompt(row) and s["target"] == row["answer"]
            reply = s["filtered_resps"]
            mc[row["question_id"]] = reply[0] if isinstance(reply, list) else reply
            _check_choice_logged(s, row)
    oe_rows = load_split(hub_dir, "oe")
    oe: dict[str, str] = {}
    for s in _jsonl(_one(sorted(out.rglob("*_samples_harmonyset_oe.jsonl")), "OE samples")):
        row = oe_rows[s["doc_id"]]
        assert s["input"] == oe_prompt(row)
        reply = s["filtered_resps"]
        oe[row["id"]] = reply[0] if isinstance(reply, list) else reply
        _check_verdict_logged(s, row["id"])
    return results, mc, oe


# --------------------------------------------------------------------------------------------
# Harness runs
# --------------------------------------------------------------------------------------------
def test_lm_eval_baseline_mc_and_oe_with_openai_judge(hub_dir, tmp_path):
    """harmonyset-lm-eval: MC accuracy/invalid rate and OE judge means equal `harmonyset eval`."""
    from openai_server import FakeOpenAIServer

    out = tmp_path / "lm-eval"
    with FakeOpenAIServer() as server:
        metadata = {"data": str(hub_dir), "judge": "openai", "judge_model": "judge-test",
                    "judge_base_url": server.base_url, "judge_cache": str(tmp_path / "judge-cache-harness")}
        _run([BIN / "harmonyset-lm-eval", "--model", "harmonyset-baseline", "--include_path", LM_TASKS,
              "--tasks", "harmonyset_mc,harmonyset_oe", "--metadata", json.dumps(metadata), "--log_samples",
              "--output_path", out], _env(tmp_path, HARMONYSET_JUDGE_API_KEY="test-key"))
        assert server.total_served == 8  # one judge call per OE item, made in the aggregation
        results, mc, oe = _lm_eval_outputs(out, hub_dir)
        assert len(mc) == len(load_split(hub_dir, "mc")) and len(oe) == len(load_split(hub_dir, "oe"))
        ours_mc = _harmonyset_eval("mc", hub_dir, mc, tmp_path)
        ours_oe = _harmonyset_eval("oe", hub_dir, oe, tmp_path, "--judge", "openai", "--judge-model", "judge-test",
                                   "--judge-base-url", server.base_url, "--cache", tmp_path / "judge-cache-cli")
    _check_mc(results, mc, ours_mc)
    _check_oe(results, oe, ours_oe)
    assert ours_mc["overall"]["accuracy"] is not None and ours_oe["counts"]["scored"] == 8
    assert results["config"]["model"] == "harmonyset-baseline"


def test_lmms_eval_baseline_mc_and_oe_with_embedding_judge(hub_dir, tmp_path):
    """lmms-eval (our model through its entry point, data from $HARMONYSET_DATA): same numbers as `harmonyset eval`."""
    out = tmp_path / "lmms-eval"
    _run([BIN / "lmms-eval", "--model", "harmonyset-baseline", "--model_args", "mc=baseline-random,seed=3",
          "--include_path", LMMS_TASKS, "--tasks", "harmonyset_mc,harmonyset_oe", "--log_samples",
          "--output_path", out], _env(tmp_path, HARMONYSET_DATA=str(hub_dir), HARMONYSET_JUDGE="embedding"))
    results, mc, oe = _lmms_eval_outputs(out, hub_dir)
    assert len(mc) == len(load_split(hub_dir, "mc"))
    ours_mc = _harmonyset_eval("mc", hub_dir, mc, tmp_path)
    ours_oe = _harmonyset_eval("oe", hub_dir, oe, tmp_path, "--judge", "embedding")
    _check_mc(results, mc, ours_mc)
    _check_oe(results, oe, ours_oe)
    assert set(mc.values()) <= set("ABCD")  # the seeded random baseline answered


@pytest.mark.slow
def test_tiny_model_in_both_harnesses(hub_dir, tmp_path):
    """The tiny Qwen2.5-Omni (real frames + audio of each mp4) through both harnesses, --limit 1 per task."""
    from harmonyset_hf.evaluation import evaluate_mc, evaluate_oe
    from harmonyset_hf.judge import make_judge

    env = _env(tmp_path, HARMONYSET_DATA=str(hub_dir), HARMONYSET_JUDGE="embedding")
    lm_out, lmms_out = tmp_path / "lm-eval", tmp_path / "lmms-eval"
    _run_side_by_side({
        "harmonyset-lm-eval": [BIN / "harmonyset-lm-eval", "--model", "harmonyset", "--model_args",
                               "model=tiny,frames=2", "--include_path", LM_TASKS, "--tasks",
                               "harmonyset_mc,harmonyset_oe", "--limit", "1", "--batch_size", "4", "--device", "cpu",
                               "--log_samples", "--output_path", lm_out],
        "lmms-eval": [BIN / "lmms-eval", "--model", "harmonyset-tiny", "--model_args", "frames=2", "--include_path",
                      LMMS_TASKS, "--tasks", "harmonyset_mc,harmonyset_oe", "--limit", "1", "--log_samples",
                      "--output_path", lmms_out]}, env)
    judge = make_judge("embedding")
    for reader, out in ((_lm_eval_outputs, lm_out), (_lmms_eval_outputs, lmms_out)):
        results, mc, oe = reader(out, hub_dir)
        assert len(mc) == len(ASPECTS) and len(oe) == 1
        ours_mc, _ = evaluate_mc([r for r in load_split(hub_dir, "mc") if r["question_id"] in mc], mc)
        _check_mc(results, mc, ours_mc)
        ours_oe, _ = evaluate_oe([r for r in load_split(hub_dir, "oe") if r["id"] in oe], oe, judge)
        _check_oe(results, oe, ours_oe)


@pytest.mark.slow
def test_listing_commands_accept_our_task_folders(tmp_path):
    """`lm-eval validate` (through harmonyset-lm-eval) and `lmms-eval tasks subtasks` find our tasks."""
    out = _run_side_by_side({
        "lm-eval": [BIN / "harmonyset-lm-eval", "validate", "--tasks", "harmonyset_mc,harmonyset_oe",
                    "--include_path", LM_TASKS],
        "lmms-eval": [BIN / "lmms-eval", "tasks", "subtasks", "--include-path", LMMS_TASKS]}, _env(tmp_path))
    assert "All tasks found and valid" in out["lm-eval"]
    rows = [[cell.strip() for cell in line.split("|")] for line in out["lmms-eval"].splitlines()
            if line.startswith("|harmonyset")]
    listed = {row[1]: row for row in rows}
    for task in [*MC_TASKS, "harmonyset_oe"]:
        assert task in listed, f"lmms-eval does not list {task}"
        assert listed[task][2].endswith(f"{task}.yaml") and listed[task][3] == "generate_until"


def test_lm_eval_wrapper_prints_our_errors_as_one_line(tmp_path):
    """No data given: `harmonyset-lm-eval` says so in one line (exit 2), as `harmonyset` does, no traceback."""
    proc = subprocess.run([str(BIN / "harmonyset-lm-eval"), "--model", "harmonyset-baseline", "--include_path",
                           str(LM_TASKS), "--tasks", "harmonyset_mc_rhythm", "--limit", "1"],
                          env=_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("harmonyset-lm-eval: error: HarmonySet tasks need the data")


# --------------------------------------------------------------------------------------------
# In-process pieces (fast)
# --------------------------------------------------------------------------------------------
def test_data_source_and_judge_settings(monkeypatch):
    from harmonyset_hf.errors import ConfigError
    from harmonyset_hf.harness import tasks

    monkeypatch.delenv("HARMONYSET_DATA", raising=False)
    with pytest.raises(tasks.HarnessError, match="HARMONYSET_DATA"):
        tasks.data_source({})
    assert tasks.data_source({"data": "some/repo"}) == "some/repo"
    monkeypatch.setenv("HARMONYSET_DATA", "/data/hub")
    assert tasks.data_source(None) == "/data/hub"
    with pytest.raises(ConfigError, match="API key"):
        tasks.configure_judge({"judge_api_key": "sk-secret"})
    with pytest.raises(ConfigError, match="unknown judge"):
        tasks.make_harness_judge({"judge": "oracle"})


def test_docs_and_scores_match_evaluation(hub_dir):
    """Docs carry the mp4 path; per-question scores average to evaluate_mc's accuracy and invalid rate."""
    from harmonyset_hf.evaluation import evaluate_mc
    from harmonyset_hf.harness import tasks

    docs = tasks.load_docs("mc", data=str(hub_dir))["test"]
    rhythm = tasks.aspect_filter("rhythm")(docs)
    assert len(rhythm) and set(rhythm["aspect"]) == {"rhythm"} and "video" not in rhythm.column_names
    assert all(Path(p).is_file() and p.endswith(".mp4") for p in rhythm["video_path"])
    replies = ["B", "The answer is C.", "A or B", "", "D. music", "not A", "(a)", "I pick option D"]
    doc_list = docs.to_list()
    preds = {d["question_id"]: replies[i % len(replies)] for i, d in enumerate(doc_list)}
    scores = [tasks.mc_process_results(d, [preds[d["question_id"]]]) for d in doc_list]
    ours, _ = evaluate_mc(load_split(hub_dir, "mc"), preds)
    assert sum(s["accuracy"] for s in scores) / len(scores) == pytest.approx(ours["overall"]["accuracy"])
    assert sum(s["invalid_rate"] for s in scores) / len(scores) == pytest.approx(ours["overall"]["invalid_rate"])
    assert ours["overall"]["invalid"] > 0  # the invalid path is exercised
    assert tasks.doc_to_text(doc_list[0], {"pre_prompt": "<p>", "post_prompt": "</p>"}) == \
        f"<p>{mc_prompt(doc_list[0])}</p>"


def test_dispatcher_routes_configs_and_refuses_mismatch():
    from harmonyset_hf.errors import HarmonySetError
    from harmonyset_hf.harness.adapter import (
        HarnessRequest,
        RegistryDispatcher,
        make_dispatcher,
        registry_variants,
        truncate,
    )

    mc_doc = {"id": "x", "question_id": "x:rhythm", "aspect": "rhythm", "question": "q?",
              "options": ["a", "bb", "cccc", "d"], "answer": "C", "video_path": "/nowhere.mp4"}
    oe_doc = {"id": "x", "instruction": "<video>\nDescribe.", "annotation": "ref", "video_path": "/nowhere.mp4"}
    both = RegistryDispatcher(mc="baseline-longest", oe="baseline-generic")
    replies = both.generate([HarnessRequest("p", mc_doc, [], []), HarnessRequest("p", oe_doc, [], ["\n"])])
    assert replies[0] == "C" and replies[1] and "\n" not in replies[1]
    assert truncate("abc\n\ndef", ["\n\n"]) == "abc" and truncate("abc", []) == "abc"
    generic = make_dispatcher({}, "4", None, {"model": "baseline-longest", "seed": 1})
    assert generic.names["mc"] == "baseline-longest" and generic.model_kwargs == {"seed": 1}
    assert generic.batch_size == 4
    api = make_dispatcher(registry_variants()["harmonyset-openai-api"], "auto", None, {"model": "gpt-x"})
    assert api.names["oe"] == "openai-api" and api.model_kwargs == {"model": "gpt-x"}  # the API's model name
    with pytest.raises(HarmonySetError, match="not 'oe'"):
        RegistryDispatcher(model="baseline-random").generate([HarnessRequest("p", oe_doc, [], [])])


def test_lmms_eval_entry_point_and_model_classes():
    """Our names reach lmms-eval's registry through the installed entry point."""
    from importlib.metadata import entry_points

    from harmonyset_hf.harness import lmms_eval_models
    from harmonyset_hf.models import MODELS

    eps = {ep.name: ep.value for ep in entry_points(group="lmms_eval.models")}
    assert eps.get("harmonyset") == "harmonyset_hf.harness.lmms_eval_models:manifests"
    names = {m.model_id for m in lmms_eval_models.manifests()}
    assert {"harmonyset", "harmonyset-baseline", *(f"harmonyset-{n}" for n in MODELS)} <= names
    cls = getattr(lmms_eval_models, lmms_eval_models.class_name("harmonyset-baseline"))
    from lmms_eval.api.model import lmms

    assert issubclass(cls, lmms) and cls.is_simple and cls.DEFAULTS["oe"] == "baseline-generic"


def test_non_generative_requests_are_refused_naming_the_tasks():
    """Likelihood and multi-round requests get one clear error (a NotImplementedError to the harnesses)."""
    from types import SimpleNamespace

    from harmonyset_hf.errors import HarmonySetError
    from harmonyset_hf.harness import lm_eval_models, lmms_eval_models
    from harmonyset_hf.harness.adapter import UnsupportedRequestError

    asked = [SimpleNamespace(task_name="hellaswag", args=("ctx", " cont")), SimpleNamespace(task_name="hellaswag")]
    lm = lm_eval_models.model_classes()["harmonyset-baseline"]()
    for method in (lm.loglikelihood, lm.loglikelihood_rolling):
        with pytest.raises(UnsupportedRequestError, match=r"2 loglikelihood.* by task\(s\) hellaswag") as err:
            method(asked)
        assert isinstance(err.value, NotImplementedError) and isinstance(err.value, HarmonySetError)
    lmms = getattr(lmms_eval_models, lmms_eval_models.class_name("harmonyset-baseline"))()
    with pytest.raises(UnsupportedRequestError, match="1 generate_until_multi_round request"):
        lmms.generate_until_multi_round([SimpleNamespace(task_name=None)])
    with pytest.raises(NotImplementedError, match="by task\\(s\\) mmmu"):
        lmms.loglikelihood([SimpleNamespace(task_name="mmmu")])


def test_lmms_eval_chat_models_get_the_video_and_prompt(hub_dir, monkeypatch):
    """lmms-eval's chat models (its default `qwen2_5_omni`) get our docs as a video message + the prompt.

    Their own weights cannot run here; this checks what they would be given: lmms-eval's automatic
    doc_to_messages on our task yields ``[{"type": "video", "url": <mp4 with its music track>},
    {"type": "text", "text": mc_prompt(doc)}]``, the shape its omni models read.
    """
    import av
    from lmms_eval.tasks import TaskManager, get_task_dict

    monkeypatch.setenv("HARMONYSET_DATA", str(hub_dir))
    manager = TaskManager("WARNING", include_path=str(LMMS_TASKS), include_defaults=False)
    tasks = get_task_dict(["harmonyset_mc_rhythm", "harmonyset_oe"], manager, "chat")
    mc_task, oe_task = tasks["harmonyset_mc_rhythm"], tasks["harmonyset_oe"]
    assert type(mc_task).__name__ == "ConfigurableMessagesTask"
    for task, prompt in ((mc_task, mc_prompt), (oe_task, oe_prompt)):
        doc = task.test_docs()[0]
        (message,) = task.doc_to_messages(doc)
        assert message["role"] == "user"
        video, text = message["content"]
        assert video == {"type": "video", "url": doc["video_path"]} and text == {"type": "text", "text": prompt(doc)}
        with av.open(video["url"]) as container:
            assert container.streams.video and container.streams.audio  # the music travels in the mp4
