"""One client for every OpenAI-compatible endpoint: concurrency, retries, an on-disk cache, usage.

Used by the OE judge, the annotation tools and API models. Requests go through the ``openai``
package (``AsyncOpenAI`` on a private event loop in a background thread, one shared connection
pool), with the client's own retries off: this module retries 408/409/429/5xx, timeouts and
dropped connections itself, with exponential backoff and jitter, honouring ``retry-after-ms``
and ``Retry-After``. Every answer is stored in a cache directory (one JSON file per request,
``cache_dir/ab/abcdef....json``, written atomically with ``os.replace``; ``durable=True`` adds an
fsync per entry against power cuts) under the sha256 of the request's canonical
JSON (model, messages, parameters, metadata; never the key or the URL), so a run killed at any
moment resumes without paying for a call twice. The API key never reaches a log, a result, a
cache file or an error message: every secret the process holds is masked (io.mask_secrets) in
replies, cache entries and messages, with or without its prefix.

Reliability rules of this module: ``timeout`` bounds one attempt and ``deadline`` the whole
call (every attempt, slow bodies and backoff waits included), both by the wall clock; a 200
reply without content (no ``choices``, ``content: null`` or empty) is a failure, never cached;
a reply is kept to at most :data:`MAX_REPLY_CHARS` characters; each cache entry carries a
checksum of its request and reply (an entry changed by hand is asked again, with a warning);
and a per-request lock file lets two processes sharing a cache pay for a request once (the
second waits, bounded by ``deadline``; a lock appears whole or not at all, and one whose process
is gone (its pid no longer exists, or now names a process that started at another time), one older than
the deadline or one left unreadable for :data:`TORN_LOCK_S` is taken over).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, HarmonySetError
from ..io import mask_secrets, pid_alive, process_start, register_secret

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "HARMONYSET_JUDGE"
DEFAULT_CONCURRENCY = 8
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
CACHE_VERSION = 1
DEFAULT_TIMEOUT = 120.0  # seconds per attempt
DEFAULT_DEADLINE = 300.0  # seconds per call, all attempts and waits included: a few minutes
MAX_REPLY_CHARS = 262_144  # a judge reply is a few bytes, an annotation a few KB: more is kept cut, with a warning
LOCK_POLL_S = (0.05, 0.5)  # first and longest poll interval while another process holds a request's lock
# A lock is written in microseconds after it is created; one still unreadable after this long was left by a
# process killed in between (or by a filesystem without hard links), so it is stale, not held.
TORN_LOCK_S = 5.0


class LLMError(HarmonySetError):
    """A call that failed for good (after retries, or not retryable); the message holds no secret."""


# --------------------------------------------------------------------------------------------
# Requests and results
# --------------------------------------------------------------------------------------------
@dataclass
class ChatRequest:
    """One chat.completions call: messages, sampling parameters, and cache-only metadata.

    ``params`` are sent to the API (temperature, max_tokens, ...). ``metadata`` is never sent; it
    only enters the cache key (e.g. a re-ask attempt number, so a re-ask is a different entry).
    """

    messages: list[dict]
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    model: str | None = None  # overrides the client's model

    @classmethod
    def coerce(cls, request: ChatRequest | str | list[dict]) -> ChatRequest:
        """A ChatRequest from itself, a user prompt string, or a list of messages."""
        if isinstance(request, ChatRequest):
            return request
        if isinstance(request, str):
            return cls([{"role": "user", "content": request}])
        if isinstance(request, list):
            return cls(request)
        raise TypeError(f"cannot make a chat request from {type(request).__name__}")


@dataclass
class ChatResult:
    """The outcome of one request: its text, or the error that ended it."""

    text: str | None
    key: str
    cached: bool = False
    error: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    served_model: str | None = None  # the model name the API says answered (a dated snapshot for an alias)
    system_fingerprint: str | None = None  # the backend configuration the API reports, when it does

    @property
    def ok(self) -> bool:
        """True when the call produced a reply."""
        return self.error is None and self.text is not None


@dataclass
class Usage:
    """Running totals: tokens, paid calls, cache hits, retries, failures."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        """A plain dict, for results files and summaries."""
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """Where to send requests; ``repr`` never shows the key."""

    base_url: str | None
    model: str
    api_key: str = field(repr=False)

    def describe(self) -> dict[str, str | None]:
        """The endpoint without secrets (scheme, host and path of the URL only)."""
        return {"model": self.model, "base_url": redact_url(self.base_url) if self.base_url else None}


def redact_url(url: str) -> str:
    """A URL without user info, query or fragment (where keys sometimes hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def resolve_endpoint(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    env_prefix: str = DEFAULT_PREFIX,
    default_model: str | None = None,
) -> Endpoint:
    """Endpoint from arguments, else ``{prefix}_BASE_URL/_MODEL/_API_KEY``, else ``OPENAI_BASE_URL/_API_KEY``."""
    env = os.environ
    base_url = base_url or env.get(f"{env_prefix}_BASE_URL") or env.get("OPENAI_BASE_URL") or None
    model = model or env.get(f"{env_prefix}_MODEL") or default_model
    api_key = api_key or env.get(f"{env_prefix}_API_KEY") or env.get("OPENAI_API_KEY")
    if not model:
        raise ConfigError(f"no model given: pass one or set {env_prefix}_MODEL")
    if not api_key:
        if base_url is None:
            raise ConfigError(f"no API key: set {env_prefix}_API_KEY or OPENAI_API_KEY (or point "
                              f"{env_prefix}_BASE_URL at a local server)")
        api_key = "not-needed"  # local OpenAI-compatible servers usually ignore the key
    return Endpoint(base_url, model, api_key)


def default_cache_dir() -> Path:
    """``$HARMONYSET_CACHE_DIR/llm`` or ``~/.cache/harmonyset/llm``."""
    root = os.environ.get("HARMONYSET_CACHE_DIR") or Path.home() / ".cache" / "harmonyset"
    return Path(root) / "llm"


# --------------------------------------------------------------------------------------------
# Cache keys and secret scrubbing
# --------------------------------------------------------------------------------------------
def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal requests give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_cache_key(model: str, request: ChatRequest) -> str:
    """sha256 of the canonical request (model, messages, params, metadata); no URL, no key."""
    payload = {"v": CACHE_VERSION, "model": model, "messages": request.messages,
               "params": request.params, "metadata": request.metadata}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _digest_media(messages: list[dict]) -> list[dict]:
    """Messages with image/audio payloads replaced by their sha256 (cache files stay small)."""
    def part(p: Any) -> Any:
        if not isinstance(p, dict):
            return p
        if p.get("type") == "image_url" and str((p.get("image_url") or {}).get("url", "")).startswith("data:"):
            url = p["image_url"]["url"]
            return {"type": "image_url", "image_url": {"url": "sha256:" + hashlib.sha256(url.encode()).hexdigest()}}
        if p.get("type") == "input_audio":
            data = str((p.get("input_audio") or {}).get("data", ""))
            fmt = (p.get("input_audio") or {}).get("format")
            return {"type": "input_audio",
                    "input_audio": {"data": "sha256:" + hashlib.sha256(data.encode()).hexdigest(), "format": fmt}}
        return p

    out = []
    for msg in messages:
        content = msg.get("content")
        out.append({**msg, "content": [part(p) for p in content]} if isinstance(content, list) else msg)
    return out


_BEARER_RE = re.compile(r"(?i)(bearer\s+|api[-_]?key[\"'=:]+\s*)[^\s\"',;&]+")
_OPENAI_KEY_RE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{6,}")


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Text with every secret (the process's and ``secrets``), bearer token and ``api-key=`` value masked."""
    text = mask_secrets(text, tuple(secrets))
    text = _OPENAI_KEY_RE.sub("sk-***", text)
    return _BEARER_RE.sub(lambda m: m.group(1) + "***", text)


def _entry_checksum(entry: dict) -> str:
    """sha256 of a cache entry's request and reply fields (everything but the checksum itself)."""
    return hashlib.sha256(canonical_json({k: v for k, v in entry.items() if k != "sha256"}).encode("utf-8")).hexdigest()


def _reply_text(resp: Any) -> tuple[str | None, str | None, str | None]:
    """(text, finish_reason, why it is no answer) of a chat completion; a 200 without content is no answer."""
    choices = getattr(resp, "choices", None)
    if not choices:
        return None, None, "the server answered 200 without any choice (empty 'choices')"
    choice = choices[0]
    finish = getattr(choice, "finish_reason", None)
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if content is None:
        return None, finish, f"the reply has no content (content: null, finish_reason={finish})"
    if not isinstance(content, str) or not content.strip():
        return None, finish, f"the reply is empty (finish_reason={finish})"
    return content, finish, None


def _retry_after(err: Exception) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then Retry-After), if it did."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------
class LLMClient:
    """An OpenAI-compatible chat client with bounded concurrency, retries, a disk cache and usage totals."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        env_prefix: str = DEFAULT_PREFIX,
        default_model: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        use_cache: bool = True,
        concurrency: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 300.0,
        durable: bool = False,
    ) -> None:
        self.endpoint = resolve_endpoint(base_url, model, api_key, env_prefix, default_model)
        for secret in self._secrets():  # masked in every file and log line of the process from now on
            register_secret(secret)
        self.env_prefix = env_prefix
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.use_cache = use_cache
        self.durable = durable
        self._write_pool: ThreadPoolExecutor | None = None
        env_conc = os.environ.get(f"{env_prefix}_CONCURRENCY", "")
        if not concurrency and env_conc:
            if not env_conc.isdigit() or int(env_conc) < 1:
                raise ConfigError(f"{env_prefix}_CONCURRENCY must be a positive integer, got {env_conc!r}")
            concurrency = int(env_conc)
        self.concurrency = int(concurrency or DEFAULT_CONCURRENCY)
        for name, value in (("timeout", timeout), ("deadline", deadline)):
            if not value or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        self.timeout, self.deadline = float(timeout), float(deadline)
        self.max_attempts = max(1, max_attempts)
        self.backoff_base, self.backoff_max, self.max_retry_after = backoff_base, backoff_max, max_retry_after
        self.usage = Usage()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._inflight: dict[str, asyncio.Future] = {}

    @property
    def model(self) -> str:
        """The default model of requests."""
        return self.endpoint.model

    def describe(self) -> dict[str, Any]:
        """The endpoint and settings, without secrets."""
        return {**self.endpoint.describe(), "timeout": self.timeout, "deadline": self.deadline,
                "max_attempts": self.max_attempts}

    def cache_key(self, request: ChatRequest | str | list[dict]) -> str:
        """The cache key a request is stored under."""
        req = ChatRequest.coerce(request)
        return request_cache_key(req.model or self.model, req)

    def cache_path(self, key: str) -> Path:
        """Where the cache entry of ``key`` lives."""
        return self.cache_dir / key[:2] / f"{key}.json"

    def is_cached(self, request: ChatRequest | str | list[dict]) -> bool:
        """True when the reply to ``request`` is already on disk."""
        return self._read_cache(self.cache_key(request)) is not None

    # -- public sync API ---------------------------------------------------------------------
    def complete(self, request: ChatRequest | str | list[dict]) -> str:
        """The reply text of one request; raises :class:`LLMError` when it fails for good."""
        result = self.complete_many([request], progress=False)[0]
        if not result.ok:
            raise LLMError(result.error or "no reply")
        return result.text or ""

    def complete_many(
        self,
        requests: Sequence[ChatRequest | str | list[dict]],
        concurrency: int | None = None,
        progress: bool = True,
        desc: str = "llm",
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Results of many requests, in order; failures are results with ``error`` set, never raised."""
        reqs = [ChatRequest.coerce(r) for r in requests]
        conc = max(1, int(concurrency or self.concurrency))
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._run_many(reqs, conc, progress, desc, on_result), loop)
        try:
            return future.result()
        except BaseException:  # Ctrl-C here: stop the calls still waiting (finished ones are cached)
            future.cancel()
            raise

    def close(self) -> None:
        """Close the connection pool and stop the background loop."""
        if self._loop is None:
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(10)
            self._client = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = self._thread = None
        if self._write_pool is not None:
            self._write_pool.shutdown(wait=True)
            self._write_pool = None

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            if self._loop is not None and self._loop.is_running():
                self._loop.call_soon_threadsafe(self._loop.stop)
        except Exception:
            pass

    # -- machinery ---------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="harmonyset-llm", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _openai(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self.endpoint.api_key, base_url=self.endpoint.base_url, max_retries=0, timeout=self.timeout,
            )
        return self._client

    def _secrets(self) -> list[str]:
        secrets = [self.endpoint.api_key]
        if self.endpoint.base_url:  # user info and query strings of the URL may hold keys too
            parts = urlsplit(self.endpoint.base_url)
            secrets += [s for s in (parts.password, parts.query) if s]
        return secrets

    def _read_cache(self, key: str) -> dict | None:
        if not self.use_cache:
            return None
        path = self.cache_path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:  # a damaged entry is re-asked, never trusted
            log.warning("ignoring unreadable cache entry %s: %s", path, err)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("text"), str):
            return None
        if not entry["text"]:  # an empty reply was never an answer (older versions cached it): ask again
            return None
        # Entries written before checksums existed carry none and are trusted as before (documented).
        if "sha256" in entry and entry["sha256"] != _entry_checksum(entry):
            log.warning("cache entry %s was changed after it was written (checksum mismatch); asking again", path)
            return None
        return entry

    def _write_cache(self, key: str, model: str, request: ChatRequest, result: ChatResult) -> None:
        entry = {
            "key": key, "v": CACHE_VERSION, "model": model, "params": request.params, "metadata": request.metadata,
            "messages": _digest_media(request.messages), "text": result.text, "finish_reason": result.finish_reason,
            "usage": result.usage, "created": time.time(), "served_model": result.served_model,
            "system_fingerprint": result.system_fingerprint,
        }
        entry = json.loads(mask_secrets(json.dumps(entry, ensure_ascii=False)))  # the checksum covers what is stored
        entry["sha256"] = _entry_checksum(entry)
        path = self.cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: readers (and a resumed run) see no file or the whole entry. os.replace alone survives a
        # killed process; fsync (durable=True) also survives a power cut, at ~0.5 ms CPU per entry.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False))
                if self.durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _writer(self) -> ThreadPoolExecutor:
        if self._write_pool is None:
            self._write_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="harmonyset-llm-cache")
        return self._write_pool

    async def _run_many(self, reqs: list[ChatRequest], conc: int, progress: bool, desc: str,
                        on_result: Callable[[int, ChatResult], None] | None) -> list[ChatResult]:
        from tqdm.auto import tqdm

        sem = asyncio.Semaphore(conc)
        bar = tqdm(total=len(reqs), desc=desc, disable=not progress, unit="call", leave=False)

        async def one(i: int, req: ChatRequest) -> ChatResult:
            result = await self._complete_one(req, sem)
            bar.update(1)
            if on_result is not None:
                on_result(i, result)
            return result

        try:
            return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs))))
        finally:
            bar.close()

    async def _complete_one(self, req: ChatRequest, sem: asyncio.Semaphore) -> ChatResult:
        model = req.model or self.model
        key = request_cache_key(model, req)
        if key in self._inflight:  # the same request twice at once: pay (or read) once
            first = await asyncio.shield(self._inflight[key])
            with self._lock:
                self.usage.cache_hits += first.ok
            return ChatResult(first.text, key, True, first.error, first.finish_reason, {}, 0, first.served_model,
                              first.system_fingerprint)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut  # registered before any await, so duplicates always find it
        locked = False
        try:
            entry = self._read_cache(key)  # a stat (miss) or one small read (hit): cheaper than a thread hop
            result = None
            if entry is None:
                async with sem:
                    if self.use_cache:  # locked just before paying: another process may be paying for it now
                        locked = await self._lock_request(key)
                        entry = self._read_cache(key)
                    if entry is None:
                        result = await self._call_with_retries(model, key, req)
            if result is None:
                with self._lock:
                    self.usage.cache_hits += 1
                result = ChatResult(entry["text"], key, True, None, entry.get("finish_reason"),
                                    entry.get("usage") or {}, 0, entry.get("served_model"),
                                    entry.get("system_fingerprint"))
            elif result.ok and self.use_cache:  # stored before anyone sees the reply: a kill cannot lose it
                try:
                    if self.durable:  # fsync takes milliseconds: keep it off the event loop
                        await asyncio.get_running_loop().run_in_executor(
                            self._writer(), self._write_cache, key, model, req, result)
                    else:  # ~0.1 ms, cheaper in place than a thread hop
                        self._write_cache(key, model, req, result)
                except OSError as err:  # a full disk must not lose the reply we already paid for
                    log.warning("could not cache reply %s in %s: %s", key[:12], self.cache_dir, err)
            fut.set_result(result)
            return result
        except BaseException as err:
            fut.set_exception(err)
            fut.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(key, None)
            if locked:
                self.lock_path(key).unlink(missing_ok=True)

    # -- the per-request lock shared by processes ----------------------------------------------
    def lock_path(self, key: str) -> Path:
        """The lock file of a request being paid for (next to its cache entry)."""
        return self.cache_dir / key[:2] / f"{key}.lock"

    def _try_lock(self, key: str) -> bool | None:
        """True when this call now owns the lock, False when another holds it, None when locking is impossible."""
        path = self.lock_path(key)
        if path.exists():  # held: a waiter polling here should not write and remove a temp file each time
            return False
        record = json.dumps({"pid": os.getpid(), "started": process_start(os.getpid()), "host": socket.gethostname(),
                             "time": time.time()})
        # The record is written to a private file first and then linked into place, so the lock appears whole or
        # not at all: a process killed half-way never leaves an empty lock that others would wait on.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(record, encoding="utf-8")
        except OSError as err:  # a read-only cache: go on without the lock rather than fail the call
            log.debug("cannot lock %s: %s", path, err)
            return None
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FUSE filesystems): exclusive create, then write
            return self._create_lock(path, record)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _create_lock(path: Path, record: str) -> bool | None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as err:
            log.debug("cannot lock %s: %s", path, err)
            return None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(record)
        return True

    def _lock_is_stale(self, key: str) -> bool:
        """True when the lock's process is gone (same machine) or it is older than one call's deadline."""
        path = self.lock_path(key)
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            age = time.time() - float(info["time"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError):  # torn or foreign: judge by the file's age
            try:
                return time.time() - path.stat().st_mtime > TORN_LOCK_S
            except OSError:
                return False
        if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
            if not pid_alive(info["pid"]):
                return True
            started = info.get("started")
            if isinstance(started, int) and process_start(info["pid"]) not in (None, started):
                return True  # the pid now names another process (reused; sandboxes may hand out freed pids at once)
        return age > self.deadline + 30

    async def _lock_request(self, key: str) -> bool:
        """Own the request's lock (True), or wait, bounded, until its holder has cached the reply (False)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.deadline
        pause = LOCK_POLL_S[0]
        while True:
            owned = self._try_lock(key)
            if owned is not False:  # owned, or a cache where no lock can be made: call now
                return bool(owned)
            if not self.lock_path(key).exists():
                continue  # released between the two calls: try again at once
            if self._read_cache(key) is not None:
                return False
            if self._lock_is_stale(key):
                log.warning("taking over the stale lock %s (its process is gone or it is too old)", self.lock_path(key))
                self.lock_path(key).unlink(missing_ok=True)
                continue
            if loop.time() >= give_up:
                log.warning("request %s: still locked by another process after %.0f s; asking without the lock",
                            key[:12], self.deadline)
                return False
            await asyncio.sleep(pause)
            pause = min(LOCK_POLL_S[1], pause * 2)

    async def _call_with_retries(self, model: str, key: str, req: ChatRequest) -> ChatResult:
        import openai

        client = self._openai()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline  # one total deadline: slow bodies and backoff waits included
        last = ""

        def failed(error: str, attempt: int) -> ChatResult:
            with self._lock:
                self.usage.failures += 1
            log.warning("request %s failed after %d attempt(s): %s", key[:12], attempt, error)
            return ChatResult(None, key, error=error, attempts=attempt)

        for attempt in range(1, self.max_attempts + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return failed(f"{last}; no reply within the {self.deadline:g} s deadline", attempt - 1)
            limit = min(self.timeout, remaining)
            try:  # wait_for: httpx's timeouts are per read, so a body sent one byte a second would never end
                resp = await asyncio.wait_for(
                    client.chat.completions.create(model=model, messages=req.messages, timeout=limit,
                                                   **req.params), limit)
            except (TimeoutError, openai.APIConnectionError, openai.APIStatusError) as err:
                status = getattr(err, "status_code", None)
                retryable = status is None or status in RETRY_STATUS or status >= 500
                if isinstance(err, TimeoutError):
                    last = f"timeout: no complete reply within {limit:.3g} s"
                else:
                    kind = "timeout" if isinstance(err, openai.APITimeoutError) else (
                        f"HTTP {status}" if status is not None else "connection error")
                    last = scrub(f"{kind}: {getattr(err, 'message', None) or err}", self._secrets())
                if not retryable or attempt == self.max_attempts:
                    return failed(last, attempt)
                delay = self._backoff(attempt, _retry_after(err))
                if loop.time() + delay >= deadline:
                    return failed(f"{last}; no reply within the call's {self.deadline:g} s deadline (raise --timeout)",
                                  attempt)
                with self._lock:
                    self.usage.retries += 1
                log.info("request %s: %s; retry %d in %.2fs", key[:12], last, attempt, delay)
                await asyncio.sleep(delay)
                continue
            except Exception as err:  # a bad response body etc.: not retryable, and the batch goes on
                return failed(scrub(f"{type(err).__name__}: {err}", self._secrets()), attempt)
            usage = {"prompt_tokens": int(getattr(resp.usage, "prompt_tokens", 0) or 0),
                     "completion_tokens": int(getattr(resp.usage, "completion_tokens", 0) or 0)}
            with self._lock:
                self.usage.calls += 1
                self.usage.prompt_tokens += usage["prompt_tokens"]
                self.usage.completion_tokens += usage["completion_tokens"]
            text, finish, problem = _reply_text(resp)
            if problem:  # not an answer: a failure, never cached, so a rerun asks again
                return failed(problem, attempt)
            if len(text) > MAX_REPLY_CHARS:
                log.warning("request %s: reply of %d characters cut to %d", key[:12], len(text), MAX_REPLY_CHARS)
                text, finish = text[:MAX_REPLY_CHARS], "length"
            # Masked as it arrives, so that no copy of the reply (cache, items, logs) can hold a secret it echoes.
            return ChatResult(mask_secrets(text, tuple(self._secrets())), key, False, None, finish, usage, attempt,
                              getattr(resp, "model", None) or None, getattr(resp, "system_fingerprint", None) or None)
        return ChatResult(None, key, error=last or "no attempt made", attempts=self.max_attempts)  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry ``attempt``: the server's Retry-After if given, else capped exponential with jitter."""
        if retry_after is not None:
            return min(self.max_retry_after, retry_after) * random.uniform(1.0, 1.1)
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
