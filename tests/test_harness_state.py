"""Harness runs keep their own judge: settings travel with the OE docs, not in module globals (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer

from harmonyset_hf.errors import ConfigError
from harmonyset_hf.evaluation import evaluate_oe
from harmonyset_hf.evaluation.predict import load_split
from harmonyset_hf.harness import tasks
from harmonyset_hf.judge import JudgeConfig, make_judge
from harmonyset_hf.schema import ASPECTS

REPO = Path(__file__).resolve().parents[1]
LM_TASKS = REPO / "tasks" / "lm_eval"


@pytest.fixture
def no_judge_env(monkeypatch):
    for name in ("HARMONYSET_JUDGE", "HARMONYSET_JUDGE_MODEL", "HARMONYSET_JUDGE_BASE_URL",
                 "HARMONYSET_JUDGE_API_KEY", "HARMONYSET_JUDGE_CONCURRENCY", "HARMONYSET_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _simple_evaluate(metadata: dict) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from harmonyset_hf.harness.lm_eval_models import register

    register()
    manager = TaskManager(include_path=str(LM_TASKS), metadata=metadata)
    return lm_eval.simple_evaluate(model="harmonyset-baseline", tasks=["harmonyset_oe"], task_manager=manager,
                                   log_samples=True)


def test_two_simple_evaluate_runs_in_one_process_do_not_share_a_judge(hub_dir, tmp_path, monkeypatch, no_judge_env):
    """Run 1 names the paper's judge (a local server) in --metadata; run 2 names none and $HARMONYSET_JUDGE says
    embedding. Run 2 must score with the embedding proxy, as `harmonyset eval oe --judge embedding` does, not
    with run 1's judge (which module-global settings, set by load_docs, used to hand it)."""
    monkeypatch.setenv("HARMONYSET_JUDGE_API_KEY", "test-key")
    with FakeOpenAIServer() as server:
        first = _simple_evaluate({"data": str(hub_dir), "judge": "openai", "judge_model": "judge-test",
                                  "judge_base_url": server.base_url, "judge_cache": str(tmp_path / "cache")})
        served = server.total_served
        monkeypatch.setenv("HARMONYSET_JUDGE", "embedding")
        second = _simple_evaluate({"data": str(hub_dir)})
        assert served == len(load_split(hub_dir, "oe")) and server.total_served == served
    replies = {s["doc"]["id"]: s["filtered_resps"][0] for s in second["samples"]["harmonyset_oe"]}
    ours, _ = evaluate_oe(load_split(hub_dir, "oe"), replies, make_judge("embedding"))
    for aspect in ASPECTS:
        assert second["results"]["harmonyset_oe"][f"{aspect},none"] == pytest.approx(ours["overall"][aspect]), aspect
    assert any(first["results"]["harmonyset_oe"][f"{a},none"] != pytest.approx(ours["overall"][a]) for a in ASPECTS)


def test_oe_docs_carry_their_runs_judge_settings_and_mc_docs_none(hub_dir, no_judge_env):
    """load_docs writes the run's JudgeConfig (no secret) into each OE doc; the aggregation reads it back."""
    oe = tasks.load_docs("oe", data=str(hub_dir), judge="embedding")["test"]
    mc = tasks.load_docs("mc", data=str(hub_dir), judge="embedding")["test"]
    assert tasks.JUDGE_COLUMN not in mc.column_names
    items = [tasks.oe_process_results(doc, ["a reply"])["judge"] for doc in oe.to_list()]
    assert tasks.judge_config_of(items) == JudgeConfig("embedding")
    other = tasks.load_docs("oe", data=str(hub_dir))["test"].to_list()[0]
    mixed = [*items, tasks.oe_process_results(other, ["a reply"])["judge"]]
    with pytest.raises(tasks.HarnessError, match="2 different judge settings"):
        tasks.judge_config_of(mixed)
    refs = [tasks.oe_process_results(doc, ["a reply"])["rhythm"] for doc in (oe.to_list()[0], other)]
    with pytest.raises(tasks.HarnessError, match="2 different judge settings"):  # the aspect metrics' references
        tasks.judge_items(refs)
    assert tasks.judge_config_of([{"id": "x"}]) == JudgeConfig("openai")  # lmms-eval: the environment decides


def test_bad_judge_metadata_fails_before_any_data_is_read(no_judge_env):
    """A key in --metadata, or an unknown judge, is refused before the data source is even opened."""
    with pytest.raises(ConfigError, match="API key"):
        tasks.load_docs("oe", data="no/such-repo", judge_api_key="sk-secret")
    with pytest.raises(ConfigError, match="unknown judge"):
        tasks.load_docs("oe", data="no/such-repo", judge="oracle")
