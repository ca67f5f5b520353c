"""Evaluation at scale: data-parallel predict (torchrun, gloo on CPU), shared clip prefixes, harness ranks' devices."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harmonyset_hf.cli import main
from harmonyset_hf.distributed import Rank, merge_parts, part_path, parts_dir, rank_device, shard_by_item
from harmonyset_hf.evaluation.predict import load_split, prediction_rows
from harmonyset_hf.io import append_jsonl, read_jsonl, write_jsonl
from harmonyset_hf.models import get_model
from harmonyset_hf.models.clips import source_key
from harmonyset_hf.prompting import prompt_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LIMIT = 8  # MC questions: 2 items x 4 aspects, 32 rows with the rotations


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from harmonyset_hf.models.tiny import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def _predict_args(hub_dir: Path, tiny: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "--data", str(hub_dir), "--config", "mc", "--model", "tiny", "--model-args",
            f"path={tiny},max_new_tokens=6", "--out", str(out), "--limit", str(LIMIT), "--circular",
            "--batch-size", "4", *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _torchrun(args: list[str], nproc: int = 2) -> list[str]:
    return [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(nproc), "-m", "harmonyset_hf.cli", *args]


@pytest.fixture(scope="module")
def one_process(hub_dir, tiny, tmp_path_factory) -> Path:
    """Predictions of a plain 1-process run (one thread, as torchrun gives each rank)."""
    out = tmp_path_factory.mktemp("one") / "preds.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_predict_args(hub_dir, tiny, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _ids(path: Path) -> list[str]:
    return [rec["question_id"] for rec in read_jsonl(path)]


def test_two_processes_write_what_one_process_writes(hub_dir, tiny, one_process, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU): the same file, byte for byte, each id once, no part left behind."""
    out = tmp_path / "preds.jsonl"
    proc = subprocess.run(_torchrun(_predict_args(hub_dir, tiny, out)), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "32 new by 2 processes" in proc.stdout and proc.stdout.count("predict tiny:") == 1  # rank 0 prints
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 4 * LIMIT
    assert out.read_bytes() == one_process.read_bytes()
    assert not parts_dir(out).exists()


def test_two_processes_killed_midway_resume_to_the_same_file(hub_dir, tiny, one_process, tmp_path):
    """A 2-process run killed once a part holds a batch, then run again: the 1-process file, each id once."""
    out = tmp_path / "preds.jsonl"
    proc = subprocess.Popen(_torchrun(_predict_args(hub_dir, tiny, out)), env=_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(parts_dir(out).glob("rank*.jsonl")) if parts_dir(out).is_dir() else []
            if any(sum(1 for _ in read_jsonl(p)) >= 4 for p in parts):
                break
            time.sleep(0.05)
    finally:  # every rank dies at once, as on a lost node (torchrun's workers are not in its process group)
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            child.send_signal(signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    written = [rec for p in parts_dir(out).glob("rank*.jsonl") for rec in read_jsonl(p)]
    assert 4 <= len(written) < 4 * LIMIT, "the kill came too late to test a resume"
    assert not out.exists()  # nothing merged yet
    proc = subprocess.run(_torchrun(_predict_args(hub_dir, tiny, out)), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"{4 * LIMIT - len(written)} new by 2 processes, {len(written)} already" in proc.stdout
    assert out.read_bytes() == one_process.read_bytes()
    assert not parts_dir(out).exists()


def test_parts_are_whole_items_and_merge_in_data_order(tmp_path):
    """Items go round-robin with all their rows; a merge keeps the data order, each id once, and drops the parts."""
    rows = [{"id": f"i{i // 3}", "question_id": f"i{i // 3}:{i % 3}"} for i in range(12)]
    shards = [shard_by_item(rows, Rank(r, 2, r), lambda row: row["id"]) for r in range(2)]
    assert {row["id"] for row in shards[0]} == {"i0", "i2"} and {row["id"] for row in shards[1]} == {"i1", "i3"}
    out = tmp_path / "p.jsonl"
    write_jsonl(out, [{"question_id": "old", "response": "x"}, {"question_id": "i0:0", "response": "A"}])
    for r, shard in enumerate(shards):
        append_jsonl(part_path(out, Rank(r, 2, r)), [{"question_id": row["question_id"], "response": "B"}
                                                      for row in shard])
    assert merge_parts(out, [row["question_id"] for row in rows], "question_id") == 13
    merged = list(read_jsonl(out))
    assert [m["question_id"] for m in merged] == [row["question_id"] for row in rows] + ["old"]
    assert merged[0]["response"] == "A"  # the output's own record wins over a part's copy
    assert not parts_dir(out).exists()


# --------------------------------------------------------------------------------------------
# Shared clip prefixes
# --------------------------------------------------------------------------------------------
def test_shared_prefix_gives_the_same_greedy_replies_logits_and_positions(hub_dir, tiny):
    """share_prefix on/off: the same replies and per-step logits; the prefix's rotary positions go on correctly;
    the encoders run once per clip with sharing."""
    rows = prediction_rows(load_split(hub_dir, "mc", media=True, limit=4), "mc", circular=True)  # 1 item
    prompts = [prompt_for("mc", row) for row in rows]
    model = get_model("tiny", path=str(tiny), max_new_tokens=6, batch_size=8)
    calls = {"visual": 0, "audio": 0}
    model.model.model.visual.register_forward_hook(lambda *a: calls.__setitem__("visual", calls["visual"] + 1))
    model.model.model.audio_tower.register_forward_hook(lambda *a: calls.__setitem__("audio", calls["audio"] + 1))
    shared = model.generate(rows, prompts)  # 2 calls of 8 rows: the second reuses the kept prefix
    assert calls == {"visual": 1, "audio": 1}  # 1 clip, 16 prompts
    model.share_prefix = False
    assert model.generate(rows, prompts) == shared
    assert calls == {"visual": 3, "audio": 3}  # each call runs its whole prompts through the encoders

    # Logits at every decoding step, 8 rows of 4 clips (prefixes of different lengths padded together).
    batch = load_split(hub_dir, "mc", media=True, limit=2 * LIMIT)[::2]
    texts = [prompt_for("mc", row) for row in batch]
    clips, keys = model.load_clips(batch), [source_key(row["video"]) for row in batch]
    model.share_prefix = True
    [(_, with_prefix)] = model.generation_inputs(clips, texts, keys)
    model.share_prefix = False
    [(_, whole)] = model.generation_inputs(clips, texts, keys)
    options = {**model.generation_options(), "output_logits": True, "return_dict_in_generate": True}
    with torch.inference_mode():
        a = model.model.generate(**with_prefix, **options)
        b = model.model.generate(**whole, **options)
    assert len(a.logits) == len(b.logits) == 6
    for step_a, step_b in zip(a.logits, b.logits):
        torch.testing.assert_close(step_a, step_b, atol=1e-5, rtol=1e-5)
    assert torch.equal(a.sequences[:, with_prefix["input_ids"].shape[1]:], b.sequences[:, whole["input_ids"].shape[1]:])

    # The rotary positions of each shared row are get_rope_index's over its whole prompt.
    mask = whole["attention_mask"].bool()
    expected, _ = model.model.model.get_rope_index(
        whole["input_ids"], None, whole["video_grid_thw"], whole["attention_mask"], True,
        whole["feature_attention_mask"].sum(-1), whole["video_second_per_grid"])
    got = with_prefix["position_ids"][1:]
    for i in range(len(batch)):
        assert torch.equal(got[:, i, with_prefix["attention_mask"][i].bool()], expected[:, i, mask[i]])


# --------------------------------------------------------------------------------------------
# Harness models on the rank's device
# --------------------------------------------------------------------------------------------
class FakeAccelerator:
    """accelerate.Accelerator as rank 1 of 2 would see it (no process group is made)."""

    def __init__(self, cpu: bool = False, kwargs_handlers: list | None = None):
        self.cpu, self.process_index, self.local_process_index, self.num_processes = cpu, 1, 1, 2


@pytest.mark.parametrize("cuda", [True, False])
def test_harness_models_take_the_rank_and_its_device(monkeypatch, cuda):
    """Rank 1 of 2: lm-eval's and lmms-eval's models report rank 1 / world 2 and run on cuda:1 (CPU + gloo without)."""
    import accelerate

    from harmonyset_hf.harness import lm_eval_models, lmms_eval_models

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(accelerate, "Accelerator", FakeAccelerator)
    expected = "cuda:1" if cuda else "cpu"
    assert rank_device(None) == rank_device("cuda") == rank_device("cuda:0") == expected
    assert rank_device("cpu") == "cpu"
    for cls in (lm_eval_models.model_classes()["harmonyset-tiny"], lmms_eval_models.HarmonySetLMMS_harmonyset_tiny):
        for device in ("cuda", "cuda:0", None):
            lm = cls(device=device, batch_size=2)
            assert (lm.rank, lm.world_size) == (1, 2)
            assert lm.device == torch.device(expected) and lm.accelerator.cpu is not cuda
            # the registry model is built on it (lazily, on the first request)
            assert lm.dispatcher.harness_options["device"] == (expected if cuda else "cpu" if device is None else None)


@pytest.mark.slow
def test_lm_eval_under_torchrun_answers_each_question_once(hub_dir, tmp_path):
    """torchrun --nproc_per_node 2 harmonyset-lm-eval (CPU, gloo): each rank answers half; results cover every doc."""
    out = tmp_path / "lm-eval"
    env = {**_env(), "HARMONYSET_DATA": str(hub_dir), "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    proc = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m",
                           "harmonyset_hf.harness.lm_eval_cli", "--model", "harmonyset-baseline", "--include_path",
                           str(REPO / "tasks" / "lm_eval"), "--tasks", "harmonyset_mc", "--log_samples",
                           "--output_path", str(out)], env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    every = load_split(hub_dir, "mc")
    # each rank's dispatcher answered half of the docs (the totals of its progress bars), none all of them
    totals = {int(total) for total in re.findall(r"harmonyset [\w+-]+:\s+\d+%\|[^|]*\| \d+/(\d+)", proc.stderr)}
    assert totals == {len(every) // 2}
    seen = [json.loads(line)["doc"]["question_id"] for f in sorted(out.rglob("samples_harmonyset_mc_*.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]
    assert sorted(seen) == sorted(row["question_id"] for row in every)


def test_harness_ranks_destroy_their_process_group_before_python_finalizes(tmp_path):
    """torchrun, 2 ranks: the group a harness model's accelerator makes is gone when the ranks' last exit handler runs.

    A gloo group left to interpreter finalization can abort a rank that has finished (SIGABRT,
    "terminate called without an active exception"), which fails the launcher's whole run.
    """
    script = tmp_path / "rank.py"
    script.write_text(  # each rank writes its own file: the ranks' stdout interleaves
        "import atexit, os\n"
        "from types import SimpleNamespace\n"
        "import torch.distributed as dist\n"
        "from harmonyset_hf.harness.adapter import bind_rank\n"
        "log = open(f\"rank{os.environ['RANK']}.log\", 'w')\n"
        # registered first, so it runs last (atexit is last in, first out)
        "atexit.register(lambda: log.write(f'up at exit: {dist.is_initialized()}\\n') and log.close())\n"
        "lm = SimpleNamespace()\n"
        "bind_rank(lm)\n"
        "log.write(f'rank {lm._rank} of {lm._world_size}, up: {dist.is_initialized()}\\n')\n"
        "log.flush()\n")
    proc = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(script)],
                          env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.log").read_text() == f"rank {rank} of 2, up: True\nup at exit: False\n"
