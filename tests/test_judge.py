"""judge/: the paper's judge through the real `openai` client (faults, re-asks, SIGKILL resume) and the proxy."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer, overlap_scores, request_key

from harmonyset_hf.errors import ConfigError
from harmonyset_hf.judge import (
    DEFAULT_JUDGE_MODEL,
    EmbeddingJudge,
    LLMJudge,
    ScoreParseError,
    build_judge_prompt,
    judge_template,
    make_judge,
    parse_judge_scores,
    prompt_sha256,
)
from harmonyset_hf.schema import ASPECTS

SECRET = "sk-judge-SECRET-1234567890"
ROOT = Path(__file__).resolve().parents[1]

VOCAB = ("drum beat cut tempo fast slow piano guitar rock jazz dance city ocean festival family joy calm "
         "tension nostalgia hope tradition costume temple street market kimono lantern").split()


def make_items(n: int) -> list[dict]:
    """Deterministic OE items whose responses overlap their references by varying amounts."""
    items = []
    for i in range(n):
        ref, resp = {}, {}
        for j, aspect in enumerate(ASPECTS):
            words = [VOCAB[(i * 7 + j * 5 + k) % len(VOCAB)] for k in range(8)]
            keep = (i + j) % 9  # how many of the reference words the response repeats
            ref[aspect] = " ".join(words) + f" item{i}"
            resp[aspect] = " ".join(words[:keep] + [f"other{k}" for k in range(8 - keep)])
        items.append({
            "id": f"hs{i:05d}",
            "reference": "\n".join(f"{h}: {ref[a]}" for h, a in zip(
                ("Rhythm and Synchronization", "Theme and Content", "Emotion", "Cultural Relevance"), ASPECTS)),
            "response": "\n".join(f"**{h}:** {resp[a]}"
                                  for h, a in zip(("Rhythm", "Theme", "Emotion", "Culture"), ASPECTS)),
        })
    return items


def expected(item: dict) -> dict[str, float]:
    return dict(zip(ASPECTS, map(float, overlap_scores(item["response"], item["reference"]))))


@pytest.fixture
def server():
    with FakeOpenAIServer(api_key=SECRET) as srv:
        yield srv


@pytest.fixture
def make(server, fast_client):
    return lambda **kw: fast_client(LLMJudge, server, **{"model": "judge-model", "api_key": SECRET, **kw})


# --------------------------------------------------------------------------------------------
# Prompt and parsing
# --------------------------------------------------------------------------------------------
def test_prompt_is_the_paper_template_filled_in_one_pass():
    template = (ROOT / "harmonyset_hf/prompts/oe_judge.txt").read_text(encoding="utf-8").rstrip("\n")
    assert judge_template("paper") == template
    prompt = build_judge_prompt("I {like} it {correct_answer}", "The {response} truth")
    assert prompt == template.replace("{response}", "\0").replace("{correct_answer}", "The {response} truth").replace(
        "\0", "I {like} it {correct_answer}")
    assert prompt.endswith("User Response: I {like} it {correct_answer}\n\nCorrect Answer: The {response} truth")
    assert len(prompt_sha256()) == 64
    with pytest.raises(ConfigError, match="unknown judge prompt mode 'strict'.*paper, hardened"):
        build_judge_prompt("a", "b", mode="strict")


@pytest.mark.parametrize("reply,scores", [
    ("7,6,8,5", (7, 6, 8, 5)),
    ("7, 6, 8, 5\n", (7, 6, 8, 5)),
    ("7 6 8 5", (7, 6, 8, 5)),
    ("7;6;8;5", (7, 6, 8, 5)),
    ("**7**, **6**, **8**, **5**", (7, 6, 8, 5)),
    ("```\n7,6,8,5\n```", (7, 6, 8, 5)),
    ("7/10, 6/10, 8/10, 5/10", (7, 6, 8, 5)),
    ("7.5, 6, 8, 10", (7.5, 6, 8, 10)),
    ("Scores: 7, 6, 8, 5", (7, 6, 8, 5)),
    ("Rhythm: 7, Theme: 6, Emotion: 8, Culture: 5", (7, 6, 8, 5)),
    ("Culture: 5\nEmotion: 8\nTheme: 6\nRhythm: 7", (7, 6, 8, 5)),
    ("1. Rhythm and Synchronization: 7\n2. Thematic Content: 6\n3. Emotional Impact: 8\n4. Cultural Relevance: 5",
     (7, 6, 8, 5)),
    ("- **Rhythm and Synchronization**: 7/10\n- **Thematic Content**: 6 out of 10\n- Emotional Impact - 8\n"
     "- Cultural Relevance = 5", (7, 6, 8, 5)),
    ("7，6，8，5", (7, 6, 8, 5)),
])
def test_parse_scores_accepts(reply, scores):
    assert parse_judge_scores(reply) == dict(zip(ASPECTS, map(float, scores)))


@pytest.mark.parametrize("reply,why", [
    ("", "empty"),
    ("8,7,6", "found 3"),
    ("7,6,8,5,4", "found 5"),
    ("I cannot judge this response.", "found 0"),
    ("0,5,5,5", "out of range"),
    ("7,6,8,11", "out of range"),
    ("70, 60, 80, 50", "out of range"),
    ("On a scale of 1-10: 7,6,8,5", "found 6"),
])
def test_parse_scores_refuses(reply, why):
    with pytest.raises(ScoreParseError, match=why):
        parse_judge_scores(reply)


# --------------------------------------------------------------------------------------------
# The LLM judge against the server
# --------------------------------------------------------------------------------------------
def test_llm_judge_scores_every_item_and_caches(server, make, tmp_path):
    items = make_items(20)
    judge = make(concurrency=4)
    results = judge.score_items(items, progress=False)
    assert [r.id for r in results] == [it["id"] for it in items]
    assert all(not r.failed and r.attempts == 1 and not r.cached for r in results)
    assert [r.scores for r in results] == [expected(it) for it in items]
    body = server.stats.bodies if server.keep_bodies else None
    assert body is None  # (bodies are not kept by default)
    assert server.total_served == 20 and judge.usage["calls"] == 20
    desc = judge.describe()
    assert desc["kind"] == "llm" and desc["proxy"] is False and desc["model"] == "judge-model"
    assert desc["prompt_sha256"] == prompt_sha256() and desc["params"] == {"temperature": 0.0}
    assert SECRET not in json.dumps(desc)

    again = make(concurrency=4).score_items(items, progress=False)
    assert [r.scores for r in again] == [r.scores for r in results] and all(r.cached for r in again)
    assert server.total_served == 20


def test_requests_are_the_paper_protocol(server, make):
    server.keep_bodies = True
    item = make_items(1)[0]
    make().score_items([item], progress=False)
    (body,) = server.stats.bodies
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert body["messages"] == [{"role": "user", "content": build_judge_prompt(item["response"], item["reference"])}]
    assert "metadata" not in body  # the attempt number is ours, only in the cache key


def test_unparsable_replies_are_reasked_then_failed(server, make):
    items = make_items(6)
    server.inject("reply", text="8,7,6", match="item1\n")  # 3 numbers once: the re-ask succeeds
    server.inject("reply", text="I will not score this.", times=5, match="item2\n")  # never parsable
    server.inject("reply", text="Rhythm: 9, Theme: 8, Emotion: 7, Culture: 6", match="item3\n")
    judge = make(max_attempts=3)
    results = judge.score_items(items, progress=False)
    by_id = {r.id: r for r in results}
    assert by_id["hs00001"].scores == expected(items[1]) and by_id["hs00001"].attempts == 2
    bad = by_id["hs00002"]
    assert bad.failed and bad.scores is None and bad.attempts == 3
    assert "unparsable judge reply after 3 ask(s)" in bad.error and bad.raw == "I will not score this."
    assert by_id["hs00003"].scores == {"rhythm": 9.0, "theme": 8.0, "emotion": 7.0, "culture": 6.0}
    prompt2 = [{"role": "user", "content": build_judge_prompt(items[2]["response"], items[2]["reference"])}]
    assert server.served_for(prompt2) == 1  # the same prompt is never asked twice: the re-asks are follow-ups
    with pytest.raises(ScoreParseError) as why:
        parse_judge_scores("I will not score this.")
    followup = judge.followup_for(items[2]["response"], items[2]["reference"], "I will not score this.",
                                  str(why.value), 1).messages
    assert server.served_for(followup) == 2  # attempts 2 and 3: each its own cache entry
    # Re-running serves every attempt from the cache: the failure is reproduced without a single call.
    served = server.total_served
    rerun = make(max_attempts=3).score_items(items, progress=False)
    assert [(r.scores, r.failed) for r in rerun] == [(r.scores, r.failed) for r in results]
    assert server.total_served == served


def test_a_reply_without_scores_gets_a_follow_up_turn_quoting_the_format(make, tmp_path):
    """The re-ask is the conversation so far plus a turn quoting the format, not the same prompt again."""
    item = make_items(1)[0]
    with FakeOpenAIServer(api_key=SECRET, keep_bodies=True, served_model="judge-model-2024-11-20",
                          system_fingerprint="fp_test123") as srv:
        srv.inject("reply", text="The response captures the mood well but misses the cultural side.")
        judge = LLMJudge(model="judge-model", base_url=srv.base_url, api_key=SECRET, cache_dir=tmp_path / "c",
                         backoff_base=0.01)
        (result,) = judge.score_items([item], progress=False)
        first, second = srv.stats.bodies
        assert result.scores == expected(item) and result.attempts == 2 and not result.failed
        assert len(first["messages"]) == 1 and second["messages"][:1] == first["messages"]
        assert second["messages"][1] == {"role": "assistant",
                                         "content": "The response captures the mood well but misses the cultural side."}
        assert second["messages"][2]["role"] == "user" and "four values" in second["messages"][2]["content"]
        assert "separated by a comma" in second["messages"][2]["content"]
        assert (result.served_model, result.system_fingerprint) == ("judge-model-2024-11-20", "fp_test123")
        assert judge.describe()["requested_model"] == "judge-model"
        # Both asks are cached apart: a rerun pays nothing and reads the same served model from the cache.
        (again,) = judge.score_items([item], progress=False)
        assert again.cached and again.scores == result.scores and again.served_model == "judge-model-2024-11-20"
        assert srv.total_served == 2
        judge.close()


def test_default_judge_is_a_dated_snapshot_and_the_alias_still_works(monkeypatch):
    monkeypatch.delenv("HARMONYSET_JUDGE_MODEL", raising=False)
    assert re.fullmatch(r"gpt-4o-\d{4}-\d{2}-\d{2}", DEFAULT_JUDGE_MODEL)
    dated = LLMJudge(base_url="http://127.0.0.1:9/v1", api_key="x")
    alias = LLMJudge(model="gpt-4o", base_url="http://127.0.0.1:9/v1", api_key="x")
    assert dated.describe()["model"] == DEFAULT_JUDGE_MODEL and alias.describe()["model"] == "gpt-4o"
    dated.close()
    alias.close()


def test_faults_do_not_change_the_numbers(server, make, tmp_path, caplog):
    items = make_items(24)
    server.inject("429", retry_after=0.05, times=2)
    server.inject("429", retry_after_ms=30)
    server.inject("500", times=2)
    server.inject("drop", times=2)
    server.inject("slow", delay=1.5)
    judge = make(concurrency=6, timeout=0.5)
    results = judge.score_items(items, progress=False)
    assert all(not r.failed for r in results), [r.error for r in results if r.failed]
    assert [r.scores for r in results] == [expected(it) for it in items]
    assert judge.usage["retries"] >= 8 and sum(server.stats.faults.values()) == 8
    assert SECRET not in caplog.text
    assert not any(SECRET in p.read_text() for p in (tmp_path / "cache").rglob("*.json"))


def test_calls_that_fail_for_good_are_failed_items_not_scores(server, make):
    items = make_items(3)
    server.inject("500", times=99, match="item1\n")
    results = make(max_attempts=2).score_items(items, progress=False)
    assert results[1].failed and results[1].error.startswith("judge call failed: HTTP 500")
    assert not results[0].failed and not results[2].failed
    assert SECRET not in results[1].error


def test_items_without_response_or_reference_fail_without_a_call(server, make):
    items = [{"id": "a", "response": None, "reference": "Emotion: calm"},
             {"id": "b", "response": "calm", "reference": "  "}]
    results = make().score_items(items, progress=False)
    assert [r.failed for r in results] == [True, True] and server.total_received == 0
    assert "no response" in results[0].error and "empty reference" in results[1].error


_CHILD = textwrap.dedent("""
    import faulthandler, json, sys
    faulthandler.dump_traceback_later(90, exit=True)  # a hang prints where every thread waits, then exits
    from harmonyset_hf.judge import LLMJudge
    base_url, cache_dir, items_path, out_path = sys.argv[1:5]
    items = json.loads(open(items_path).read())
    judge = LLMJudge(model="judge-model", base_url=base_url, api_key=sys.argv[5], cache_dir=cache_dir)
    results = judge.score_items(items, concurrency=4, progress=False)
    open(out_path, "w").write(json.dumps([r.to_dict() for r in results]))
    judge.close()
""")


def _child(server, cache_dir: Path, items_path: Path, out_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, server.base_url, str(cache_dir), str(items_path),
                             str(out_path), SECRET], env=env, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> int:
    """The child's exit code; one past its own 90 s watchdog is killed, so its stderr (the stacks) can be read."""
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.mark.slow
def test_sigkill_midway_then_resume_scores_each_item_once(server, tmp_path):
    n = 80
    items = make_items(n)
    items_path = tmp_path / "items.json"
    items_path.write_text(json.dumps(items))
    server.latency = 0.08
    server.inject("reply", text="8,7", match="item77\n")  # a re-ask in the resumed part
    cache = tmp_path / "cache"

    proc = _child(server, cache, items_path, tmp_path / "killed.json")
    deadline = time.monotonic() + 60
    while len(list(cache.rglob("*.json"))) < 20:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "killed.json").exists()
    cached_keys = {json.loads(p.read_text())["key"] for p in cache.rglob("*.json")}  # every entry whole
    assert 20 <= len(cached_keys) < n
    served_before = dict(server.stats.served)

    proc = _child(server, cache, items_path, tmp_path / "resumed.json")
    assert _finish(proc) == 0, proc.stderr.read()
    resumed = json.loads((tmp_path / "resumed.json").read_text())

    probe = LLMJudge(model="judge-model", base_url=server.base_url, api_key=SECRET, cache_dir=cache)
    for item in items:  # no paid call repeated for an item that was cached when the run was killed
        request = probe.request_for(item["response"], item["reference"])
        key = request_key(request.messages)
        if probe.client.cache_key(request) in cached_keys:
            assert server.stats.served[key] == served_before.get(key, 0), item["id"]
    probe.close()
    # Every distinct request (80 items + 1 re-ask) was paid at least once; only calls in flight at the kill
    # (at most the concurrency, 4: a reply is written to the cache before the next await) were paid twice.
    assert n + 1 <= server.total_served <= n + 1 + 4
    assert sorted(r["id"] for r in resumed) == [it["id"] for it in items]  # each item exactly once
    assert all(not r["failed"] for r in resumed)
    assert next(r for r in resumed if r["id"] == "hs00077")["attempts"] == 2

    server.inject("reply", text="8,7", match="item77\n")
    proc = _child(server, tmp_path / "fresh_cache", items_path, tmp_path / "straight.json")
    assert _finish(proc) == 0, proc.stderr.read()
    straight = json.loads((tmp_path / "straight.json").read_text())
    assert [r["scores"] for r in resumed] == [r["scores"] for r in straight]
    assert [r["scores"] for r in straight] == [expected(it) for it in items]
    assert not any(SECRET in p.read_text() for p in cache.rglob("*.json"))


# --------------------------------------------------------------------------------------------
# The offline proxy
# --------------------------------------------------------------------------------------------
REF = ("Rhythm and Synchronization: The fast drum beat matches the quick cuts of the skateboard tricks.\n"
       "Theme and Content: Upbeat rock music fits the skatepark scene.\n"
       "Emotion: Energetic and exciting.\nCultural Relevance: Western street culture, skateboarding.")


@pytest.fixture(scope="module")
def embedding_judge():
    return EmbeddingJudge()


def test_embedding_judge_orders_paraphrase_above_unrelated(embedding_judge):
    items = [
        {"id": "same", "response": REF, "reference": REF},
        {"id": "para", "reference": REF, "response": (
            "Rhythm and Synchronization: Quick drum hits line up with the rapid edits of the skate tricks.\n"
            "Theme and Content: Energetic rock suits the skateboarding park.\nEmotion: Exciting, full of energy.\n"
            "Cultural Relevance: Street skate culture of the West.")},
        {"id": "unrelated", "reference": REF, "response": (
            "Rhythm and Synchronization: Slow piano under a single long shot of bread dough.\n"
            "Theme and Content: A recipe tutorial.\nEmotion: Calm.\nCultural Relevance: French cuisine.")},
        {"id": "partial", "reference": REF, "response": "Emotion: Energetic and exciting."},
        {"id": "whole", "reference": REF, "response": "Fast rock music that fits a skateboarding video."},
        {"id": "none", "reference": REF, "response": None},
    ]
    res = {r.id: r for r in embedding_judge.score_items(items, progress=False)}
    assert res["same"].scores == {a: 10.0 for a in ASPECTS}
    for a in ASPECTS:
        assert res["para"].scores[a] > res["unrelated"].scores[a]
        assert 1.0 <= res["unrelated"].scores[a] <= 10.0
    assert res["partial"].scores["emotion"] == 10.0 and res["partial"].scores["rhythm"] == 1.0
    assert res["whole"].scores["theme"] > res["unrelated"].scores["theme"]
    assert res["none"].failed and res["none"].scores is None
    desc = embedding_judge.describe()
    assert desc["proxy"] is True and desc["kind"] == "embedding" and "not comparable" in desc["note"]


def test_embedding_score_mapping_is_the_documented_rule():
    judge = EmbeddingJudge(lo=0.2, hi=0.8)
    assert [judge.score(c) for c in (-0.5, 0.2, 0.5, 0.8, 0.99)] == [1.0, 1.0, 5.5, 10.0, 10.0]
    with pytest.raises(ConfigError):
        EmbeddingJudge(lo=0.5, hi=0.5)


def test_make_judge(server, tmp_path):
    assert isinstance(make_judge("embedding"), EmbeddingJudge)
    judge = make_judge("openai", model="m", base_url=server.base_url, api_key=SECRET, cache_dir=tmp_path,
                       concurrency=3)
    assert isinstance(judge, LLMJudge) and judge.client.concurrency == 3
    judge.close()
    with pytest.raises(ConfigError, match="unknown judge"):
        make_judge("oracle")
