"""harmonyset_hf.llm through the real `openai` client against a local OpenAI-protocol server with faults."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer, request_key

from harmonyset_hf.errors import ConfigError
from harmonyset_hf.llm import ChatRequest, LLMClient, LLMError, redact_url, resolve_endpoint, scrub

SECRET = "sk-test-SECRET-9f8e7d6c5b4a"


@pytest.fixture
def server():
    """A fresh fake OpenAI server per test (counts and faults start empty)."""
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def make_client(server, fast_client):
    """Build LLMClients against the server with a per-test cache; closes them afterwards."""
    return lambda **kw: fast_client(LLMClient, server, **{"model": "fake-model", "api_key": SECRET, **kw})


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _cache_text(cache_dir: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in cache_dir.rglob("*.json"))


def test_complete_many_in_order_then_from_cache(server, make_client, tmp_path):
    client = make_client(concurrency=4)
    prompts = [f"prompt number {i}" for i in range(12)]
    results = client.complete_many(prompts, progress=False)
    assert [r.text for r in results] == [f"echo: {p}" for p in prompts]
    assert all(r.ok and not r.cached for r in results)
    assert server.total_served == 12
    assert client.usage.calls == 12 and client.usage.prompt_tokens == sum(len(p.split()) for p in prompts)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 12

    again = make_client(concurrency=4)  # a new process would see the same files
    results2 = again.complete_many(prompts, progress=False)
    assert [r.text for r in results2] == [r.text for r in results]
    assert all(r.cached for r in results2)
    assert server.total_served == 12 and again.usage.cache_hits == 12 and again.usage.calls == 0
    assert again.complete("prompt number 3") == "echo: prompt number 3"
    assert server.total_served == 12


def test_durable_cache_writes_whole_entries(server, make_client, tmp_path):
    client = make_client(durable=True, cache_dir=tmp_path / "durable")
    assert client.complete_many(["a", "b"], progress=False)[1].text == "echo: b"
    entries = [json.loads(p.read_text()) for p in (tmp_path / "durable").rglob("*.json")]
    assert sorted(e["text"] for e in entries) == ["echo: a", "echo: b"]
    assert not list((tmp_path / "durable").rglob("*.tmp"))


def test_cache_key_covers_model_params_metadata_not_secrets(make_client):
    client = make_client()
    base = ChatRequest(_user("x"), {"temperature": 0}, {"attempt": 0})
    keys = {
        client.cache_key(base),
        client.cache_key(ChatRequest(_user("x"), {"temperature": 0.5}, {"attempt": 0})),
        client.cache_key(ChatRequest(_user("x"), {"temperature": 0}, {"attempt": 1})),
        client.cache_key(ChatRequest(_user("x"), {"temperature": 0}, {"attempt": 0}, model="other")),
    }
    assert len(keys) == 4
    other_endpoint = make_client(api_key="sk-another-key-123456", base_url="http://127.0.0.1:1/v1")
    assert other_endpoint.cache_key(base) == client.cache_key(base)


def test_identical_requests_in_flight_are_paid_once(server, make_client):
    client = make_client(concurrency=8)
    results = client.complete_many(["same prompt"] * 6 + ["other"], progress=False)
    assert [r.text for r in results] == ["echo: same prompt"] * 6 + ["echo: other"]
    assert server.served_for(_user("same prompt")) == 1


def _gap_after(server: FakeOpenAIServer, outcome: str) -> float:
    events = server.stats.events
    i = next(i for i, e in enumerate(events) if e[2] == outcome)
    return events[i + 1][0] - events[i][0]


@pytest.mark.parametrize("header", ["retry_after", "retry_after_ms"])
def test_429_honours_retry_after(server, make_client, header):
    client = make_client()
    server.inject("429", **{header: 0.6 if header == "retry_after" else 600})
    assert client.complete("wait for me") == "echo: wait for me"
    assert server.stats.faults["429"] == 1 and client.usage.retries == 1
    # Without the header the backoff here is at most 0.01 s: the wait can only come from the server's value.
    assert _gap_after(server, "429") >= 0.6


def test_429_with_an_http_date_retry_after(server, make_client):
    from email.utils import formatdate

    client = make_client()
    server.inject("429", retry_after=formatdate(time.time() + 2, usegmt=True))  # whole seconds: waits 1-2 s
    assert client.complete("by date") == "echo: by date"
    assert _gap_after(server, "429") >= 0.9


@pytest.mark.parametrize("fault", ["500", "drop"])
def test_server_errors_and_dropped_connections_are_retried(server, make_client, fault):
    client = make_client()
    server.inject(fault, times=2)
    results = client.complete_many([f"p{i}" for i in range(5)], concurrency=2, progress=False)
    assert [r.text for r in results] == [f"echo: p{i}" for i in range(5)]
    assert server.stats.faults[fault] == 2 and client.usage.retries == 2 and client.usage.failures == 0


def test_slow_reply_times_out_then_retries(server, make_client):
    client = make_client(timeout=0.3)
    server.inject("slow", delay=2.0)
    result = client.complete_many(["slowly"], progress=False)[0]
    assert result.ok and result.text == "echo: slowly" and result.attempts == 2
    assert client.usage.retries == 1


def test_exhausted_retries_and_non_retryable_errors_fail_cleanly(server, make_client, tmp_path):
    client = make_client(max_attempts=3)
    server.inject("500", times=3, match="keeps failing")
    server.inject("400", match="bad one")
    results = client.complete_many(["keeps failing", "bad one", "fine"], concurrency=1, progress=False)
    assert results[0].error.startswith("HTTP 500") and results[0].attempts == 3
    assert results[1].error.startswith("HTTP 400") and results[1].attempts == 1
    assert results[2].text == "echo: fine"
    assert client.usage.failures == 2 and client.usage.retries == 2
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1  # failures are never cached
    with pytest.raises(LLMError, match="HTTP 500"):
        server.inject("500", times=3, match="keeps failing")
        client.complete("keeps failing")


def test_secret_never_in_errors_logs_or_cache(server, make_client, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.api_key = "sk-the-right-one-000000"  # our key is refused: a 401 that echoes auth details
    client = make_client()
    with pytest.raises(LLMError) as info:
        client.complete("who am i")
    assert "401" in str(info.value) and SECRET not in str(info.value)
    assert SECRET not in repr(info.value) and SECRET not in repr(client.endpoint)
    server.api_key = None
    server.inject("429", retry_after=0.01)
    server.inject("drop")
    assert client.complete("now it works") == "echo: now it works"
    assert server.stats.auth_headers[f"Bearer {SECRET}"] >= 3  # the key did travel, in the header only
    assert SECRET not in caplog.text and "Bearer" not in caplog.text
    assert SECRET not in _cache_text(tmp_path / "cache") and "127.0.0.1" not in _cache_text(tmp_path / "cache")
    assert SECRET not in json.dumps(client.describe())


def test_scrub_and_redact():
    assert scrub(f"Authorization: Bearer {SECRET} failed", [SECRET]) == "Authorization: Bearer *** failed"
    assert "abc123secret" not in scrub("GET /v1?api-key=abc123secret&x=1")
    assert "sk-proj-abcdefgh" not in scrub("Incorrect API key provided: sk-proj-abcdefgh1234")
    assert redact_url("https://user:pw@host.example:8443/v1?key=zz#f") == "https://host.example:8443/v1"


def test_multimodal_content_passes_through(server, make_client, tmp_path):
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake pixels").decode()
    audio = base64.b64encode(b"RIFF fake wav").decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "describe this"},
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
    ]}]
    client = make_client()
    assert client.complete(messages) == "echo: describe this [1 image(s), 1 audio]"
    assert server.served_for(messages) == 1
    cached = _cache_text(tmp_path / "cache")
    assert "sha256:" in cached and audio not in cached and image not in cached
    bad = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": audio, "format": "ogg"}}]}]
    assert "HTTP 400" in client.complete_many([bad], progress=False)[0].error


def test_damaged_cache_entry_is_asked_again(server, make_client):
    client = make_client()
    assert client.complete("fragile") == "echo: fragile"
    path = client.cache_path(client.cache_key("fragile"))
    path.write_text('{"key": "', encoding="utf-8")  # a torn write (cannot happen with os.replace, but)
    assert client.complete("fragile") == "echo: fragile"
    assert server.served_for(_user("fragile")) == 2
    assert json.loads(path.read_text())["text"] == "echo: fragile"


def test_endpoint_from_environment_with_prefix(monkeypatch):
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "HARMONYSET_JUDGE_MODEL", "HARMONYSET_JUDGE_BASE_URL",
                "HARMONYSET_JUDGE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARMONYSET_ANNOTATOR_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("HARMONYSET_ANNOTATOR_MODEL", "annotator-model")
    monkeypatch.setenv("HARMONYSET_ANNOTATOR_API_KEY", SECRET)
    ep = resolve_endpoint(env_prefix="HARMONYSET_ANNOTATOR")
    assert (ep.base_url, ep.model, ep.api_key) == ("http://127.0.0.1:9/v1", "annotator-model", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback-000000")
    ep = resolve_endpoint(env_prefix="HARMONYSET_JUDGE", default_model="gpt-4o")
    assert (ep.base_url, ep.model, ep.api_key) == (None, "gpt-4o", "sk-fallback-000000")
    with pytest.raises(ConfigError, match="HARMONYSET_JUDGE_MODEL"):
        resolve_endpoint(env_prefix="HARMONYSET_JUDGE")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="API key"):
        resolve_endpoint(model="gpt-4o")


def test_server_counts_use_the_same_key_as_tests(server, make_client):
    client = make_client()
    client.complete_many(["a", "b", "a"], progress=False)
    assert server.stats.served[request_key(_user("a"))] == 1 and server.total_received == 2


def test_a_broken_response_body_fails_that_request_only(server, make_client):
    server.inject("garbage", match="broken")
    client = make_client()
    results = client.complete_many(["broken one", "fine one"], progress=False)
    assert results[1].text == "echo: fine one"
    assert results[0].error and not results[0].ok, results[0]
    assert client.usage.failures == 1 and not client.is_cached("broken one")


def test_unwritable_cache_keeps_the_reply(server, make_client, tmp_path, caplog):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    client = make_client(cache_dir=blocker)
    assert client.complete_many(["still answered"], progress=False)[0].text == "echo: still answered"
    assert "could not cache" in caplog.text
