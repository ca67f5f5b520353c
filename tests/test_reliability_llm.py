"""The LLM transport and cache: replies without content, deadlines, secrets, hand-edited entries, shared caches."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer, judge_reply
from raw_http_server import RawServer, Reply, chat_completion

from harmonyset_hf.io import process_start
from harmonyset_hf.judge import LLMJudge
from harmonyset_hf.llm import LLMClient
from harmonyset_hf.llm.client import TORN_LOCK_S
from harmonyset_hf.schema import ASPECTS

REPO = Path(__file__).resolve().parents[1]
REF = "\n".join(f"{a.title()}: the music and the video agree." for a in ASPECTS)


def _client(server, tmp_path, **kw) -> LLMClient:
    kw.setdefault("timeout", 5.0)
    return LLMClient(model="m", base_url=server.base_url, api_key="k-not-secret", cache_dir=tmp_path / "cache",
                     backoff_base=0.01, **kw)


def _cache_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache").rglob("*.json")] if (tmp_path / "cache").exists() else []


@pytest.mark.parametrize("bad", [chat_completion(choices=False), chat_completion(content=None),
                                 chat_completion(content="")], ids=["no-choices", "content-null", "empty"])
def test_a_reply_without_content_is_a_failure_never_a_cache_entry(bad, tmp_path):
    """A 200 without content fails the call, writes no cache entry, and a rerun after the fix asks again."""
    with RawServer([Reply(bad), Reply(chat_completion("7,6,8,5"))]) as server:
        with _client(server, tmp_path) as client:
            first = client.complete_many(["judge this"], progress=False)[0]
            assert not first.ok and first.text is None and first.error
            assert _cache_files(tmp_path) == []
            again = client.complete_many(["judge this"], progress=False)[0]
        assert again.ok and again.text == "7,6,8,5" and not again.cached
        assert server.received == 2


def test_the_judge_fails_an_empty_reply_and_scores_it_on_the_rerun(tmp_path):
    """Through the judge: the item fails (not an empty score), and once the server is fixed it is scored."""
    item = {"id": "x", "response": REF, "reference": REF}
    with RawServer([Reply(chat_completion(choices=False)), Reply(chat_completion("7,6,8,5"))]) as server:
        judge = LLMJudge(client=_client(server, tmp_path), max_attempts=1)
        first = judge.score_items([item], progress=False)[0]
        assert first.failed and "without any choice" in first.error
        second = judge.score_items([item], progress=False)[0]
        judge.close()
    assert not second.failed and second.scores == dict(zip(ASPECTS, [7.0, 6.0, 8.0, 5.0]))


def _in_thread(fn, limit: float):
    """(result, seconds) of ``fn()`` run in a daemon thread; (None, limit) when it is still running after ``limit``."""
    out: list = []
    start = time.monotonic()
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(limit)
    return (out[0] if out else None), time.monotonic() - start


def test_a_body_sent_one_byte_a_second_hits_the_deadline(tmp_path):
    """httpx's timeouts are per read: the wall-clock deadline still ends a call whose body trickles in."""
    body = json.dumps(chat_completion("7,6,8,5" + " " * 200)).encode()
    with RawServer([Reply(body, trickle=1.0)]) as server:
        client = _client(server, tmp_path, timeout=2.0, max_attempts=1)
        result, seconds = _in_thread(lambda: client.complete_many(["slow"], progress=False)[0], limit=15)
        assert result is not None, "the call was still waiting after 15 s"
        assert not result.ok and "timeout" in result.error and seconds < 6
        client.close()


def test_eval_oe_timeout_flag_bounds_every_call(hub_dir, tmp_path, capsys):
    """`eval oe --timeout 2` against a trickling server finishes in seconds, every item failed, nothing cached."""
    from harmonyset_hf.cli import main
    from harmonyset_hf.evaluation.predict import load_split

    rows = load_split(hub_dir, "oe", limit=2)
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "response": r["annotation"]}) + "\n" for r in rows))
    body = json.dumps(chat_completion("7,6,8,5" + " " * 200)).encode()
    with RawServer([Reply(body, trickle=1.0)]) as server:
        argv = ["eval", "oe", "--data", str(hub_dir), "--predictions", str(preds), "--limit", "2",
                "--judge-model", "j", "--judge-base-url", server.base_url, "--cache", str(tmp_path / "cache"),
                "--out", str(tmp_path / "r"), "--timeout", "2"]
        code, seconds = _in_thread(lambda: main(argv), limit=60)  # the trickled body alone takes 280 s
    assert code == 1, f"eval oe was still waiting after {seconds:.0f} s"
    assert "the judge scored none" in capsys.readouterr().err
    assert _cache_files(tmp_path) == []


KEY = "sk-proj-SECRETkeyABCDEFGHIJKLMNOP"
HF = "hf_TOKENxyzABCDEFGHIJKLMNOPQRS"


def _echoing_reply(body: dict) -> str:
    """A judge that echoes the key and the token, with and without their prefixes; every other reply has no scores."""
    leak = f"(auth {KEY}, bare {KEY[len('sk-proj-'):]}, hub {HF}, bare {HF[3:]})"
    _calls.append(1)
    return f"{judge_reply(body)} {leak}" if len(_calls) % 2 else f"no scores here {leak}"


_calls: list[int] = []


def test_echoed_secrets_reach_no_file_and_no_log(hub_dir, tmp_path):
    """A key and an HF token echoed by the server (with or without prefix) are masked in cache, results, stderr."""
    from harmonyset_hf.evaluation.predict import load_split

    rows = load_split(hub_dir, "oe", limit=4)
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "response": r["annotation"]}) + "\n" for r in rows))
    env = {**os.environ, "HARMONYSET_JUDGE_API_KEY": KEY, "HF_TOKEN": HF, "PYTHONPATH": str(REPO)}
    with FakeOpenAIServer(reply=_echoing_reply, api_key=KEY) as server:
        argv = [sys.executable, "-m", "harmonyset_hf.cli", "eval", "oe", "--data", str(hub_dir), "--predictions",
                str(preds), "--limit", "4", "--judge-model", "j", "--judge-base-url", server.base_url,
                "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "r")]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert server.total_served >= 4, proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "p.jsonl"]
    assert any(p.parent.parent.name == "cache" for p in written) and (tmp_path / "r" / "items.jsonl").is_file()
    texts = {p: p.read_text(encoding="utf-8") for p in written} | {Path("<stderr>"): proc.stderr + proc.stdout}
    assert "***" in texts[tmp_path / "r" / "items.jsonl"]  # the echo was there, masked
    for secret in (KEY, KEY[len("sk-proj-"):], HF, HF[3:]):
        leaked = [str(p) for p, text in texts.items() if secret in text]
        assert not leaked, f"{secret[:6]}... leaked into {leaked}"


def test_a_hand_edited_cache_entry_is_detected_and_asked_again(tmp_path, caplog):
    """The checksum of request and reply catches an entry edited by hand: a warning, then a fresh call."""
    with FakeOpenAIServer() as server:
        with _client(server, tmp_path) as client:
            assert client.complete("hello") == "echo: hello"
            (entry,) = _cache_files(tmp_path)
            data = json.loads(entry.read_text())
            data["text"] = "10,10,10,10"
            entry.write_text(json.dumps(data))
            again = client.complete_many(["hello"], progress=False)[0]
        assert again.text == "echo: hello" and not again.cached and server.total_served == 2
    assert "checksum" in caplog.text


def test_two_runs_sharing_a_cache_pay_once(tmp_path):
    """Two clients (as two `eval oe` runs) on one cache: each request is paid for once; the other waits for it."""
    prompts = [f"question {i}" for i in range(4)]
    with FakeOpenAIServer(latency=0.5) as server:
        clients = [_client(server, tmp_path, concurrency=4) for _ in range(2)]
        results: list = [None, None]

        def run(i: int) -> None:
            results[i] = clients[i].complete_many(prompts, progress=False)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
        assert server.total_served == len(prompts)
    assert all(r.ok for rs in results for r in rs)
    assert not list((tmp_path / "cache").rglob("*.lock"))  # every lock released


def _plant_lock(client: LLMClient, text: str) -> Path:
    """Leave the lock of the request "hello" with ``text`` in it, as a killed run would."""
    lock = client.lock_path(client.cache_key("hello"))
    lock.parent.mkdir(parents=True)
    lock.write_text(text)
    return lock


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.parametrize("holder", ["gone", "pid-reused"])
def test_a_stale_lock_is_taken_over(tmp_path, holder):
    """A lock left by a killed process does not make the next run wait: its pid is gone, or it now names another
    process (here this one, with another start time). A live holder with its own start time is waited on (the
    two-runs test above)."""
    if holder == "pid-reused" and process_start(os.getpid()) is None:
        pytest.skip("no /proc: process start times cannot be read")
    pid, started = (_dead_pid(), None) if holder == "gone" else (os.getpid(), process_start(os.getpid()) - 1)
    with FakeOpenAIServer() as server:
        with _client(server, tmp_path) as client:
            lock = _plant_lock(client, json.dumps({"pid": pid, "started": started, "host": os.uname().nodename,
                                                   "time": time.time()}))
            start = time.monotonic()
            assert client.complete("hello") == "echo: hello"
            assert time.monotonic() - start < 3 and not lock.exists()


def test_an_unreadable_lock_is_waited_on_for_seconds_not_the_deadline(tmp_path, caplog):
    """An empty lock (a process killed between creating and writing it) holds a call up for TORN_LOCK_S at most.

    Before, it was judged by age against the deadline (300 s), and a resumed `eval oe` hung on it.
    """
    with FakeOpenAIServer() as server:
        with _client(server, tmp_path) as client:
            lock = _plant_lock(client, "")
            start = time.monotonic()
            assert client.complete("hello") == "echo: hello"
            assert TORN_LOCK_S - 0.5 < time.monotonic() - start < TORN_LOCK_S + 3 and not lock.exists()
    assert "taking over the stale lock" in caplog.text


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_a_lock_is_whole_whenever_it_is_seen(tmp_path, monkeypatch, links):
    """Read while a call is in flight, the lock always parses (with hard links; without them it is created
    exclusively and then written, so a read may fall between the two); no temp file is left behind."""
    if not links:
        def no_links(*_a, **_k):
            raise OSError(errno.EPERM, "hard links not supported")

        monkeypatch.setattr(os, "link", no_links)
    with FakeOpenAIServer(latency=0.5) as server:
        with _client(server, tmp_path) as client:
            lock = client.lock_path(client.cache_key("hello"))
            done = threading.Event()
            thread = threading.Thread(target=lambda: (client.complete("hello"), done.set()))
            thread.start()
            seen = []
            while not done.is_set():
                try:
                    seen.append(json.loads(lock.read_text()))
                except FileNotFoundError:
                    pass
                except ValueError:
                    if links:
                        raise
                time.sleep(0.005)
            thread.join(10)
            assert server.total_served == 1
    assert seen and all(rec["pid"] == os.getpid() for rec in seen)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix != ".json"]
