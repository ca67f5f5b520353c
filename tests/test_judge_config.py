"""judge/config.py and judge/base.py: one JudgeConfig from flags, environment or harness metadata; one factory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harmonyset_hf.errors import ConfigError
from harmonyset_hf.judge import EmbeddingJudge, Judge, JudgeConfig, LLMJudge, make_judge
from harmonyset_hf.llm import DEFAULT_DEADLINE

LOCAL = "http://127.0.0.1:9/v1"  # nothing listens there: building a judge makes no call


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("HARMONYSET_JUDGE", "HARMONYSET_JUDGE_MODEL", "HARMONYSET_JUDGE_BASE_URL",
                 "HARMONYSET_JUDGE_API_KEY", "HARMONYSET_JUDGE_CONCURRENCY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def flags(**given) -> argparse.Namespace:
    """The judge flags of `eval oe` / `audit judge` with their defaults, overridden by ``given``."""
    values = {"judge": "openai", "judge_mode": "paper", "judge_model": None, "judge_base_url": None,
              "concurrency": None, "cache": None, "timeout": DEFAULT_DEADLINE}
    return argparse.Namespace(**{**values, **given})


def test_both_judges_follow_the_protocol(tmp_path):
    """The LLM judge and the embedding proxy are both ``Judge``s; a plain object is not."""
    llm = make_judge("openai", model="m", base_url=LOCAL, cache_dir=tmp_path)
    try:
        assert isinstance(llm, Judge) and isinstance(EmbeddingJudge(), Judge)
    finally:
        llm.close()
    assert not isinstance(object(), Judge)


def test_flags_build_the_judge_they_name(tmp_path):
    """--judge-model, --judge-base-url, --judge-mode, --concurrency and --cache reach the judge."""
    config = JudgeConfig.from_args(flags(judge_model="judge-x", judge_base_url=LOCAL, judge_mode="hardened",
                                         concurrency=3, cache=str(tmp_path), timeout=42.0))
    assert config == JudgeConfig("openai", "judge-x", LOCAL, "hardened", 3, str(tmp_path), 42.0)
    judge = config.build()
    try:
        assert isinstance(judge, LLMJudge)
        described = judge.describe()
        assert (described["model"], described["prompt_mode"]) == ("judge-x", "hardened")
        assert described["base_url"].startswith("http://127.0.0.1:9")
        assert judge.client.concurrency == 3 and judge.client.cache_dir == Path(tmp_path)
        assert judge.client.deadline == 42.0
    finally:
        judge.close()
    assert isinstance(JudgeConfig.from_args(flags(judge="embedding")).build(), EmbeddingJudge)


def test_bad_settings_fail_with_one_clear_line():
    """An unknown kind or mode, a prompt mode for the proxy, or a bad concurrency is a ConfigError."""
    with pytest.raises(ConfigError, match="unknown judge 'oracle'"):
        JudgeConfig.from_args(flags(judge="oracle"))
    with pytest.raises(ConfigError, match="unknown judge prompt mode 'loud'"):
        JudgeConfig(mode="loud")
    with pytest.raises(ConfigError, match="--judge-mode applies to the openai judge only"):
        JudgeConfig.from_args(flags(judge="embedding", judge_mode="hardened"))
    with pytest.raises(ConfigError, match="at least 1"):
        JudgeConfig(concurrency=0)
    with pytest.raises(ConfigError, match="deadline must be a number of seconds above 0"):
        JudgeConfig(deadline=0)
    with pytest.raises(ConfigError, match="judge_concurrency must be a whole number"):
        JudgeConfig.from_metadata({"judge_concurrency": "many"})
    with pytest.raises(ConfigError, match="unknown judge"):
        make_judge("oracle")


def test_metadata_then_environment_then_the_default():
    """lm-eval metadata wins; ``$HARMONYSET_JUDGE`` names the kind otherwise; then the paper's judge."""
    assert JudgeConfig.from_metadata({}, environ={}) == JudgeConfig("openai")
    assert JudgeConfig.from_metadata(None, environ={"HARMONYSET_JUDGE": " embedding "}).kind == "embedding"
    meta = {"data": "hub", "judge": "openai", "judge_model": "m", "judge_base_url": LOCAL,
            "judge_concurrency": "4", "judge_cache": "/tmp/c", "judge_mode": "hardened", "judge_unknown": "x"}
    assert JudgeConfig.from_metadata(meta, environ={"HARMONYSET_JUDGE": "embedding"}) == \
        JudgeConfig("openai", "m", LOCAL, "hardened", 4, "/tmp/c")
    assert JudgeConfig.from_metadata({"judge": ""}, environ={"HARMONYSET_JUDGE": "embedding"}).kind == "embedding"


def test_metadata_never_carries_a_key_and_a_config_holds_none(monkeypatch):
    """A key in --metadata is refused (it would be logged); a config's dict holds only the named settings."""
    with pytest.raises(ConfigError, match="API key"):
        JudgeConfig.from_metadata({"judge_api_key": "sk-secret"})
    monkeypatch.setenv("HARMONYSET_JUDGE_API_KEY", "sk-from-env")
    config = JudgeConfig.from_metadata({"judge_model": "m"})
    text = json.dumps(config.as_dict())
    assert "sk-from-env" not in text and json.loads(text) == {
        "kind": "openai", "model": "m", "base_url": None, "mode": "paper", "concurrency": None, "cache_dir": None,
        "deadline": DEFAULT_DEADLINE}
    assert JudgeConfig(**json.loads(text)) == config  # what harness docs carry round-trips
