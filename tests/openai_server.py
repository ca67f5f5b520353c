"""A local OpenAI-compatible chat.completions server for tests and benchmarks (the network edge).

It listens on 127.0.0.1 (a free port), serves ``POST /v1/chat/completions`` from an asyncio loop
in a background thread (HTTP/1.1 keep-alive, so a client's connection pool is exercised), and
answers with a pluggable reply function ``reply(body) -> str``. The default reply plays the
HarmonySet OE judge deterministically: it reads the response and the correct answer out of the
paper's prompt and scores each aspect from the word overlap of their sections, so results are
reproducible. Faults are injected with :meth:`FakeOpenAIServer.inject` (429 + Retry-After, 500,
400, slow replies, dropped connections, a 200 with a garbage body, a fixed reply text such as a
malformed or 3-number one).
Every request is counted per request key (sha256 of its messages): ``received`` and ``served``
(answered 200, i.e. a call that would have been paid for).

Run standalone (for benchmarks, in another process): ``python tests/openai_server.py --port 0``
prints ``READY <base_url>`` and serves until killed; ``GET <base_url>/stats`` returns the counters.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Standalone runs (python tests/openai_server.py) need the package importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harmonyset_hf.schema import ASPECTS  # noqa: E402
from harmonyset_hf.text import find_sections  # noqa: E402

FAULT_KINDS = ("429", "500", "drop", "slow", "reply", "400", "garbage")


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``times`` matching requests."""

    kind: str
    times: int = 1
    match: str | None = None  # only requests whose text contains this substring
    retry_after: float | str | None = None  # seconds (or an HTTP date), sent as Retry-After (429)
    retry_after_ms: float | None = None  # sent as retry-after-ms (429)
    delay: float = 0.0  # extra latency of a "slow" reply, seconds
    text: str | None = None  # the reply text of a "reply" fault

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")


def request_text(body: dict) -> str:
    """All text of a request's messages, joined (image and audio parts contribute nothing)."""
    parts: list[str] = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(parts)


def request_key(messages: list[dict]) -> str:
    """The key the server counts calls under: sha256 of the canonical JSON of the messages."""
    blob = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def media_parts(body: dict) -> dict[str, int]:
    """Counts of the multimodal parts of a request; raises ValueError on a malformed part."""
    counts = {"image": 0, "audio": 0, "text": 0}
    for msg in body.get("messages", []):
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                counts["text"] += 1
            elif kind == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if not (url.startswith("data:image/") or url.startswith("http")):
                    raise ValueError(f"bad image_url part: url starts with {url[:16]!r}")
                counts["image"] += 1
            elif kind == "input_audio":
                audio = part.get("input_audio") or {}
                if not audio.get("data") or audio.get("format") not in {"wav", "mp3"}:
                    raise ValueError("bad input_audio part: needs data and format wav|mp3")
                counts["audio"] += 1
            else:
                raise ValueError(f"unknown content part type {kind!r}")
    return counts


_WORD_RE = re.compile(r"[a-z]+")
_JUDGE_RE = re.compile(r"User Response:(?P<response>.*)\n\nCorrect Answer:(?P<answer>.*)\Z", re.S)


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if len(w) > 2}


def overlap_scores(response: str, answer: str) -> list[int]:
    """Deterministic 1-10 scores per aspect from the word overlap of response and answer sections."""
    resp, ref = find_sections(response), find_sections(answer)
    scores = []
    for aspect in ASPECTS:
        ref_words = _words(ref.sections.get(aspect, answer))
        resp_words = _words(resp.sections.get(aspect, response if not resp.sections else ""))
        union = ref_words | resp_words
        jaccard = len(ref_words & resp_words) / len(union) if union else 0.0
        scores.append(1 + round(9 * jaccard))
    return scores


# The hardened judge prompt names its delimiters in one sentence; a judge that reads it knows the fence.
_FENCE_DECL_RE = re.compile(r"between the markers (<<<RESPONSE-\w+>>>) and (<<<END-RESPONSE-\w+>>>)")
# An instruction inside a response that tells the judge which four scores to output.
_INJECTED_RE = re.compile(r"(?i)\b(?:answer|output|respond\s+with|reply\s+with|give|print|return)\b\D{0,40}?"
                          r"\b(10|[1-9])\s*,\s*(10|[1-9])\s*,\s*(10|[1-9])\s*,\s*(10|[1-9])\b")


def split_fence(prompt: str, response_block: str) -> tuple[str | None, str]:
    """(text inside the declared fence or None when unfenced, text of the response block outside the fence)."""
    decl = _FENCE_DECL_RE.search(prompt)
    if not decl:
        return None, response_block
    start = response_block.find(decl.group(1))
    end = response_block.find(decl.group(2), start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        return None, response_block
    inside = response_block[start + len(decl.group(1)):end]
    return inside.strip(), response_block[:start] + response_block[end + len(decl.group(2)):]


def first_user_text(body: dict) -> str:
    """The text of a request's first user message: the judge prompt, also in a follow-up conversation."""
    first = next((m for m in body.get("messages", []) if m.get("role") == "user"), None)
    return request_text({"messages": [first]}) if first else ""


def judge_reply(body: dict) -> str:
    """Play the OE judge: ``s1,s2,s3,s4`` for a judge prompt, an echo of the text otherwise.

    A response fenced by the hardened prompt's delimiters is scored on the text inside the fence. In a
    follow-up conversation (the judge's earlier reply and a reminder of the format) the first user
    message is the one judged, as a model continuing the conversation would.
    """
    text = first_user_text(body) if _JUDGE_RE.search(first_user_text(body)) else request_text(body)
    m = _JUDGE_RE.search(text)
    if m:
        inside, _ = split_fence(text, m.group("response"))
        response = m.group("response").strip() if inside is None else inside
        return ",".join(str(s) for s in overlap_scores(response, m.group("answer").strip()))
    counts = media_parts(body)
    media = f" [{counts['image']} image(s), {counts['audio']} audio]" if counts["image"] or counts["audio"] else ""
    return f"echo: {text[:200]}{media}"


def obedient_judge_reply(body: dict) -> str:
    """Play a judge that obeys instructions it finds in the text it reads, unless they are fenced as data.

    Text of the response outside any declared fence (all of it under the paper's prompt) that says
    "answer/output ... 10,10,10,10" is obeyed: those four scores come back. Text inside the fence
    declared by the hardened prompt is rated as data (word overlap), never obeyed.
    """
    text = first_user_text(body)
    m = _JUDGE_RE.search(text)
    if not m:
        return judge_reply(body)
    inside, outside = split_fence(text, m.group("response"))
    order = _INJECTED_RE.search(outside)
    if order:
        return ",".join(order.groups())
    response = m.group("response").strip() if inside is None else inside
    return ",".join(str(s) for s in overlap_scores(response, m.group("answer").strip()))


@dataclass
class _Stats:
    received: collections.Counter = field(default_factory=collections.Counter)
    served: collections.Counter = field(default_factory=collections.Counter)
    faults: collections.Counter = field(default_factory=collections.Counter)
    auth_headers: collections.Counter = field(default_factory=collections.Counter)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, key, outcome)
    bodies: list[dict] = field(default_factory=list)


class FakeOpenAIServer:
    """An OpenAI chat.completions server on 127.0.0.1 with a pluggable reply and injected faults."""

    def __init__(
        self,
        reply: Callable[[dict], str] = judge_reply,
        latency: float = 0.0,
        api_key: str | None = None,
        keep_bodies: bool = False,
        port: int = 0,
        served_model: str | None = None,
        system_fingerprint: str | None = None,
    ) -> None:
        self.reply = reply
        self.served_model = served_model  # the model name replies report (as an API resolves an alias)
        self.system_fingerprint = system_fingerprint
        self.finish_reason = "stop"  # "length" plays a model that ran into max_tokens
        self.latency = latency
        self.api_key = api_key  # when set, other keys get a 401
        self.keep_bodies = keep_bodies
        self._port = port
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.stats = _Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port: int | None = None

    # -- control -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, kind: str, times: int = 1, match: str | None = None, **kw: Any) -> Fault:
        """Queue a fault for the next ``times`` requests (containing ``match``, if given)."""
        fault = Fault(kind, times=times, match=match, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.stats = _Stats()

    @property
    def total_received(self) -> int:
        """Requests received so far (all outcomes)."""
        return sum(self.stats.received.values())

    @property
    def total_served(self) -> int:
        """Requests answered with 200 so far (the calls a real API would bill)."""
        return sum(self.stats.served.values())

    def served_for(self, messages: list[dict]) -> int:
        """How many times a request with these messages was answered with 200."""
        return self.stats.served[request_key(messages)]

    def start(self) -> FakeOpenAIServer:
        """Start serving in a background thread; returns self once the port is bound."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self._port, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -----------------------------------------------------------------------------
    def _take_fault(self, text: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match in text:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body_bytes = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep_going = await self._respond(request_line.decode("latin-1"), headers, body_bytes, writer)
                if not keep_going or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def _respond(self, request_line: str, headers: dict, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        parts = request_line.split()
        path = parts[1] if len(parts) > 1 else ""
        if path.rstrip("/").endswith("/stats"):  # counters, for a client in another process
            await self._send(writer, 200, {"received": self.total_received, "served": self.total_served,
                                           "faults": dict(self.stats.faults)})
            return True
        if not path.rstrip("/").endswith("/chat/completions"):
            await self._send(writer, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return True
        try:
            body = json.loads(raw or b"{}")
            messages = body["messages"]
            text = request_text(body)
            key = request_key(messages)
        except (ValueError, KeyError, TypeError) as err:
            await self._send(writer, 400, {"error": {"message": f"bad request: {err}", "type": "invalid_request"}})
            return True
        with self._lock:
            self.stats.received[key] += 1
            self.stats.auth_headers[headers.get("authorization", "")] += 1
            if self.keep_bodies:
                self.stats.bodies.append(body)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._send(writer, 401, {"error": {"message": "Incorrect API key provided", "type": "auth"}})
            return True
        fault = self._take_fault(text)
        with self._lock:
            self.stats.events.append((time.monotonic(), key, fault.kind if fault else "ok"))
        delay = self.latency
        reply_text: str | None = None
        if fault is not None:
            with self._lock:
                self.stats.faults[fault.kind] += 1
            if fault.kind == "drop":
                writer.transport.abort()  # close the socket without a reply
                return False
            if fault.kind == "429":
                hdrs = {}
                if fault.retry_after is not None:
                    ra = fault.retry_after
                    hdrs["retry-after"] = ra if isinstance(ra, str) else f"{ra:g}"
                if fault.retry_after_ms is not None:
                    hdrs["retry-after-ms"] = f"{fault.retry_after_ms:g}"
                await self._send(writer, 429, {"error": {"message": "Rate limit reached", "type": "rate_limit"}}, hdrs)
                return True
            if fault.kind in ("500", "400"):
                await self._send(writer, int(fault.kind), {"error": {"message": "injected error", "type": "server"}})
                return True
            if fault.kind == "garbage":  # a 200 whose body is not a chat completion
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\nnot json!")
                await writer.drain()
                return True
            if fault.kind == "slow":
                delay += fault.delay
            if fault.kind == "reply":
                reply_text = fault.text or ""
        if delay:
            await asyncio.sleep(delay)
        try:
            if reply_text is None:
                reply_text = self.reply(body)
        except ValueError as err:
            await self._send(writer, 400, {"error": {"message": str(err), "type": "invalid_request"}})
            return True
        prompt_tokens, completion_tokens = len(text.split()), len(reply_text.split())
        payload = {
            "id": f"chatcmpl-{key[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model or body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_text},
                         "finish_reason": self.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        if self.system_fingerprint:
            payload["system_fingerprint"] = self.system_fingerprint
        if writer.is_closing():  # the client gave up (timeout): nothing was delivered
            return False
        with self._lock:
            self.stats.served[key] += 1
        await self._send(writer, 200, payload)
        return True

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: dict, headers: dict | None = None) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  429: "Too Many Requests", 500: "Internal Server Error"}[status]
        data = json.dumps(payload).encode("utf-8")
        head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        try:
            await writer.drain()
        except ConnectionError:
            pass


def main(argv: list[str] | None = None) -> int:
    """Serve until killed (for benchmarks in a separate process); prints ``READY <base_url>``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(latency=args.latency, port=args.port).start()
    print(f"READY {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
