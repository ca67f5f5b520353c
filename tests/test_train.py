"""The accelerate fine-tuning recipe on CPU: the tiny Qwen2.5-Omni thinker on HarmonySet-mini's 4 shortest items."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harmonyset_hf.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "train" / "tiny_cpu.yaml"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Train on one CPU thread: on a shared 2-core machine two OpenMP threads ran a tiny step up to 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """The random-weight tiny thinker + tokenizer + processor."""
    from harmonyset_hf.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def overrides(hub_dir, tiny_dir, out, *extra) -> list[str]:
    """--set values for a tiny_cpu run on HarmonySet-mini."""
    return [f"data={hub_dir}", f"model={tiny_dir}", f"output_dir={out}", "progress=false", *extra]


def losses(out: Path) -> dict[int, float]:
    """step -> loss from a run's log.jsonl."""
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def full_run(hub_dir, tiny_dir, tmp_path_factory) -> Path:
    """The uninterrupted reference run: tiny_cpu.yaml as is (LoRA + head, 30 steps, batch 2), every checkpoint kept."""
    from harmonyset_hf.train import train
    from harmonyset_hf.train.config import load_config

    out = tmp_path_factory.mktemp("train") / "full"
    summary = train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, "keep_checkpoints=0")))
    assert summary["finished"] and summary["step"] == 30
    return out


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
def test_config_yaml_overrides_and_type_checks():
    from harmonyset_hf.train.config import LANGUAGE_MODEL_LINEAR_LAYERS, load_config

    cfg = load_config(RECIPE, ["data=hub", "model=tiny", "lr=2e-4", "report_to=[tensorboard]", "epochs=2"])
    assert cfg.lr == 2e-4 and isinstance(cfg.lr, float)  # `2e-4` is a string to PyYAML: read as a float
    assert cfg.report_to == ["tensorboard"] and cfg.epochs == 2.0 and cfg.num_frames == 4
    assert cfg.lora_target_modules == LANGUAGE_MODEL_LINEAR_LAYERS
    with pytest.raises(ConfigError, match="unknown config key 'lora_rank'.*lora_r, lora_alpha"):
        load_config(RECIPE, ["lora_rank=8"])
    with pytest.raises(ConfigError, match="'batch_size' must be int, got 'two'"):
        load_config(RECIPE, ["batch_size=two"])
    with pytest.raises(ConfigError, match="'finetune' must be one of lora, full"):
        load_config(RECIPE, ["finetune=qlora"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(RECIPE, ["lr"])
    for name in ("qwen2_5_omni_lora", "qwen2_5_omni_lora_32f", "qwen2_5_omni_lora_64f", "qwen2_5_omni_full"):
        cfg = load_config(ROOT / "configs" / "train" / f"{name}.yaml")
        assert cfg.num_frames == {"32f": 32, "64f": 64}.get(name[-3:], 16)


def test_wrong_data_path_is_one_clear_error(tmp_path):
    """A mistyped data= used to surface as a traceback ("Couldn't reach 'x' on the Hub")."""
    from harmonyset_hf.train import build_data
    from harmonyset_hf.train.config import load_config

    cfg = load_config(RECIPE, [f"data={tmp_path / 'no_such_hub'}"])
    with pytest.raises(ConfigError, match="data=.*no_such_hub: cannot load config 'instruct'"):
        build_data(cfg, processor=None)


def test_a_tracker_that_cannot_start_is_one_clear_error(hub_dir, tiny_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from harmonyset_hf.train import train
    from harmonyset_hf.train.config import load_config

    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = load_config(RECIPE, overrides(hub_dir, tiny_dir, tmp_path / "run", "report_to=[wandb]", "max_steps=1"))
    with pytest.raises(ConfigError, match=r"report_to \['wandb'\]: the tracker did not start .*WANDB_MODE=offline"):
        train(cfg)


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {p.stem: str(load_config_from_file(str(p)).distributed_type).split(".")[-1]
             for p in sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))}
    assert kinds == {"cpu": "NO", "single_gpu": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP",
                     "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED"}


def test_lora_wraps_the_language_model_only(tiny_dir):
    import torch

    from harmonyset_hf.train import build_model
    from harmonyset_hf.train.config import load_config

    cfg = load_config(RECIPE, ["data=x", f"model={tiny_dir}", "train_projectors=true"])
    model = build_model(cfg, dtype=torch.float32)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if "lora_" in n]
    assert lora and all(".language_model.layers." in n for n in lora)
    # 2 layers x 7 linear layers x (A, B)
    assert len(lora) == 2 * 7 * 2
    assert not any("audio_tower.layers" in n or "visual.blocks" in n for n in trainable)
    assert any("visual.merger" in n for n in trainable) and any("audio_tower.proj" in n for n in trainable)
    assert any("lm_head" in n for n in trainable)  # tiny_cpu.yaml's lora_modules_to_save


# ---------------------------------------------------------------------------------------------
# the label mask, token by token
# ---------------------------------------------------------------------------------------------
def test_label_mask_token_by_token(hub_dir, tiny_dir):
    import torch
    from datasets import load_dataset

    from harmonyset_hf.data.hub import local_cache_dir
    from harmonyset_hf.models.omni_processing import load_processor
    from harmonyset_hf.train.collate import InstructClips, SFTCollator

    rows = load_dataset(str(hub_dir), "instruct", split="train", cache_dir=local_cache_dir(hub_dir))
    rows = rows.sort("duration").select(range(2))
    dataset = InstructClips(rows, num_frames=4)
    processor = load_processor(str(tiny_dir), max_pixels=12544)
    tok = processor.tokenizer
    batch = SFTCollator(processor)([dataset[0], dataset[1]])
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape and ids.shape[0] == 2
    for row in range(2):
        sample = dataset[row]
        valid = int(mask[row].sum())
        seq, lab = ids[row, :valid].tolist(), labels[row].tolist()
        header = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
        start = max(i for i in range(len(seq)) if seq[i:i + len(header)] == header) + len(header)
        end = seq.index(tok.convert_tokens_to_ids("<|im_end|>"), start)
        # the placeholders were expanded before masking: many video and audio tokens, all in the masked prompt
        video_id, audio_id = tok.convert_tokens_to_ids("<|VIDEO|>"), tok.convert_tokens_to_ids("<|AUDIO|>")
        assert seq.count(video_id) > 4 and seq.count(audio_id) > 50
        assert max(i for i, t in enumerate(seq) if t in (video_id, audio_id)) < start
        for i, token in enumerate(lab):
            expected = seq[i] if start <= i <= end else -100  # answer + <|im_end|>; prompt, "\n", padding: -100
            assert token == expected, f"row {row} position {i}: label {token}, expected {expected}"
        assert tok.decode(seq[start:end]) == sample["answer"]
        assert tok.decode(seq[:start]).endswith("<|im_start|>assistant\n")
        assert end == valid - 2 and tok.decode(seq[end + 1:]) == "\n"
    assert int((labels[mask == 0] != -100).sum()) == 0 and int(mask.sum()) < mask.numel()  # one row padded
    assert torch.equal(batch["video_grid_thw"][:, 0], torch.tensor([2, 2]))  # 4 frames, temporal patch 2


# ---------------------------------------------------------------------------------------------
# training runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_overfitting_four_items_lowers_the_loss(full_run):
    loss = losses(full_run)
    assert sorted(loss) == list(range(1, 31))
    first, last = sum(loss[s] for s in range(1, 6)) / 5, sum(loss[s] for s in range(26, 31)) / 5
    assert last < first - 1.5, (first, last)
    # warmup (2 steps, from 0 as transformers' schedules do) then cosine decay, as logged
    lr = {r["step"]: r["lr"] for r in map(json.loads, (full_run / "log.jsonl").read_text().splitlines())}
    assert lr[1] == 0 and lr[2] == pytest.approx(2.5e-3) and lr[3] == pytest.approx(5e-3)
    assert all(lr[s + 1] < lr[s] for s in range(3, 30)) and 0 < lr[30] < 1e-4
    assert (full_run / "adapter_config.json").is_file() and (full_run / "adapter_model.safetensors").is_file()
    assert (full_run / "tokenizer.json").is_file() and (full_run / "train_config.yaml").is_file()
    assert [p.name for p in sorted((full_run / "checkpoints").iterdir())] == [
        "step_000010", "step_000020", "step_000030"]


@pytest.mark.slow
def test_stopped_run_resumes_exactly(full_run, hub_dir, tiny_dir, tmp_path):
    from harmonyset_hf.train import train
    from harmonyset_hf.train.config import load_config

    reference = losses(full_run)
    # Stopped after 3 steps (mid-epoch: 2 batches per epoch), resumed for 4 more: the data position,
    # optimizer, scheduler and weights all carry over, so the losses are the uninterrupted run's.
    out = tmp_path / "stopped"
    first = train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, "stop_after=3")))
    assert first["step"] == 3 and not first["finished"]
    assert not (out / "adapter_config.json").exists() and (out / "checkpoints" / "step_000003").is_dir()
    with pytest.raises(ConfigError, match="resume=auto"):
        train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out)))
    with pytest.raises(ConfigError, match=r"changed since it was saved.*'batch_size': \(2, 1\)"):
        train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, "resume=auto", "batch_size=1")))
    second = train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, "stop_after=4", "resume=auto")))
    assert second["step"] == 7
    resumed = losses(out)
    assert sorted(resumed) == list(range(1, 8))
    for step, value in resumed.items():
        assert abs(value - reference[step]) < 1e-5, (step, value, reference[step])

    # Resumed from the reference run's step-20 checkpoint to the end: same losses, same adapter.
    out = tmp_path / "from20"
    shutil.copytree(full_run / "checkpoints" / "step_000020", out / "checkpoints" / "step_000020")
    third = train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, "resume=auto")))
    assert third["finished"] and third["step"] == 30
    for step, value in losses(out).items():
        assert step > 20 and abs(value - reference[step]) < 1e-5, (step, value, reference[step])
    from safetensors.torch import load_file

    ours, theirs = load_file(out / "adapter_model.safetensors"), load_file(full_run / "adapter_model.safetensors")
    assert set(ours) == set(theirs)
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) < 1e-6


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(full_run, hub_dir, tiny_dir, tmp_path):
    # 2 processes x batch 1 = the reference's batch of 2: the global-token loss must be the same.
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "harmonyset_hf.train",
           "--config", str(RECIPE)]
    for value in overrides(hub_dir, tiny_dir, out, "batch_size=1", "stop_after=3"):
        cmd += ["--set", value]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1x1x2 samples" in proc.stdout and "stopped at step 3/30" in proc.stdout
    reference, ddp = losses(full_run), losses(out)
    assert sorted(ddp) == [1, 2, 3]
    for step, value in ddp.items():
        assert abs(value - reference[step]) < 1e-4, (step, value, reference[step])
    state = out / "checkpoints" / "step_000003"
    assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()


def test_accelerate_launch_console_script_runs_the_recipe(full_run, hub_dir, tiny_dir, tmp_path):
    # The README's command, word for word: the `accelerate` console script (which breaks when a
    # torchvision-less timm is installed) with the CPU accelerate config.
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "launched"
    cmd = [str(accelerate), "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "cpu.yaml"),
           "-m", "harmonyset_hf.train", "--config", str(RECIPE)]
    for value in overrides(hub_dir, tiny_dir, out, "stop_after=2"):
        cmd += ["--set", value]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference, launched = losses(full_run), losses(out)
    assert sorted(launched) == [1, 2]
    for step, value in launched.items():
        assert abs(value - reference[step]) < 1e-5, (step, value, reference[step])


@pytest.mark.slow
def test_trained_adapter_predicts(full_run, hub_dir, tiny_dir, tmp_path):
    from harmonyset_hf.cli import main
    from harmonyset_hf.io import read_jsonl

    out = tmp_path / "predictions.jsonl"
    code = main(["predict", "--data", str(hub_dir), "--config", "oe", "--model", "qwen2_5_omni",
                 "--model-args", f"path={tiny_dir},adapter={full_run},max_new_tokens=8", "--frames", "4",
                 "--limit", "2", "--out", str(out)])
    assert code == 0
    preds = list(read_jsonl(out))
    assert len(preds) == 2 and all(isinstance(p["response"], str) and p["response"] for p in preds)


@pytest.mark.slow
def test_gradient_accumulation_matches_the_big_batch_and_resumes(full_run, hub_dir, tiny_dir, tmp_path):
    from harmonyset_hf.train import train
    from harmonyset_hf.train.config import load_config

    # batch 1 x 2 accumulated micro-batches = the reference's batch of 2 (the loss is a mean over the
    # step's supervised tokens); stopped after 3 steps (6 batches: mid-epoch) and resumed for 2 more.
    out, extra = tmp_path / "accumulated", ["batch_size=1", "grad_accum=2"]
    assert train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, *extra, "stop_after=3")))["step"] == 3
    assert train(load_config(RECIPE, overrides(hub_dir, tiny_dir, out, *extra, "stop_after=2",
                                               "resume=auto")))["step"] == 5
    reference, accumulated = losses(full_run), losses(out)
    assert sorted(accumulated) == [1, 2, 3, 4, 5]
    for step, value in accumulated.items():
        assert abs(value - reference[step]) < 1e-5, (step, value, reference[step])
