"""One OpenAI-compatible client (judge, annotation tools, API models): concurrency, retries, cache, usage."""

from .client import (
    CACHE_VERSION,
    DEFAULT_CONCURRENCY,
    DEFAULT_PREFIX,
    RETRY_STATUS,
    ChatRequest,
    ChatResult,
    Endpoint,
    LLMClient,
    LLMError,
    Usage,
    canonical_json,
    default_cache_dir,
    redact_url,
    request_cache_key,
    resolve_endpoint,
    scrub,
)

__all__ = [
    "CACHE_VERSION",
    "ChatRequest",
    "ChatResult",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PREFIX",
    "Endpoint",
    "LLMClient",
    "LLMError",
    "RETRY_STATUS",
    "Usage",
    "canonical_json",
    "default_cache_dir",
    "redact_url",
    "request_cache_key",
    "resolve_endpoint",
    "scrub",
]
