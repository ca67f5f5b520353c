"""Shared fixtures: HarmonySet-mini (real media, made once per session), its Hub folder, fake-server clients."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests never reach a hub: everything they need is built here.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A datasets cache of this test session only: datasets 5.2 keys a local folder's cache by its base
# name, so a stale cache from an earlier session (whose tmp folders are gone) must never be hit.
# Set before anything imports datasets, which reads it at import; subprocesses inherit it.
if "HARMONYSET_TEST_KEEP_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="harmonyset-test-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

# numba (under librosa) caches compiled code beside librosa's sources by default; processes that
# compile the same functions at once corrupt that cache, and later runs then segfault in librosa's
# chroma (seen with numba 0.68.1 when test sessions ran side by side). A cache of this session only.
if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="harmonyset-test-numba-")
    atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)

MINI_N = 24


@pytest.fixture(scope="session")
def mini_dir(tmp_path_factory) -> Path:
    """A HarmonySet-mini release (videos/, release/, truth.json) made by `harmonyset sample`."""
    from harmonyset_hf.mini.sample import make_sample

    out = tmp_path_factory.mktemp("mini")
    make_sample(out, n=MINI_N, seed=0)
    return out


@pytest.fixture(scope="session")
def hub_dir(mini_dir, tmp_path_factory) -> Path:
    """HarmonySet-mini built into a Hub-ready folder (`harmonyset build`)."""
    from harmonyset_hf.data.hub import build_hub

    out = tmp_path_factory.mktemp("hub") / "HarmonySet-mini"
    build_hub(release_dir=mini_dir / "release", videos_dir=mini_dir / "videos", out_dir=out)
    return out


@pytest.fixture
def fast_client(tmp_path):
    """``build(cls, server, **kw)``: an LLM client or judge against a fake OpenAI server.

    Short timeout and backoff and a per-test cache unless ``kw`` says otherwise; everything built
    is closed after the test.
    """
    built = []

    def build(cls, server, **kw):
        kw.setdefault("base_url", server.base_url)
        kw.setdefault("cache_dir", tmp_path / "cache")
        kw.setdefault("timeout", 5.0)
        kw.setdefault("backoff_base", 0.01)
        obj = cls(**kw)
        built.append(obj)
        return obj

    yield build
    for obj in built:
        obj.close()
