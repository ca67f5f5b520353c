"""Speed and memory of one fine-tuning step: samples/s, tokens/s, peak memory, data vs compute time.

    .venv/bin/python benchmarks/train_step.py                      # tiny model, HarmonySet-mini, CPU fp32
    .venv/bin/python benchmarks/train_step.py --data HUB --model Qwen/Qwen2.5-Omni-7B \\
        --frames 16 --batch-size 1 --gradient-checkpointing         # a GPU: bf16 autocast, bf16 LoRA base

The step is the one ``harmonyset_hf.train`` runs (same model set-up, collator and loss): the
collator (clip -> processor per sample -> label mask) is timed apart from forward + backward +
AdamW. Clips are decoded once and cached, so "data" is the processor's share only. Peak memory is
the CUDA allocator's peak for the step on a GPU, the process's RSS high-water mark on CPU.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path


def mini_hub(workdir: Path) -> Path:
    """HarmonySet-mini built into a Hub folder under ``workdir`` (reused when already there)."""
    from harmonyset_hf.data.hub import build_hub
    from harmonyset_hf.mini.sample import make_sample

    hub = workdir / "hub"
    if not (hub / "README.md").exists():
        make_sample(workdir / "mini", n=24, seed=0)
        build_hub(release_dir=workdir / "mini" / "release", videos_dir=workdir / "mini" / "videos", out_dir=hub)
    return hub


def main() -> None:
    """Run warm-up and timed steps; print one line per step and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="Hub folder or repo id (default: HarmonySet-mini built in --workdir)")
    parser.add_argument("--model", help="checkpoint (default: the tiny random thinker)")
    parser.add_argument("--finetune", default="lora", choices=["lora", "full"])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--max-pixels", type=int, default=12544)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--items", type=int, default=8, help="the shortest N items are cycled through")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "harmonyset-bench-train"))
    args = parser.parse_args()

    import torch
    from accelerate import Accelerator

    from harmonyset_hf.models.omni_processing import load_processor
    from harmonyset_hf.models.tiny import tiny_model_dir
    from harmonyset_hf.train import build_data, build_model
    from harmonyset_hf.train.config import load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    data = args.data or str(mini_hub(workdir))
    model_path = args.model or str(tiny_model_dir(workdir / "tiny"))
    cfg = load_config(None, [f"data={data}", f"model={model_path}", f"finetune={args.finetune}",
                             f"num_frames={args.frames}", f"max_pixels={args.max_pixels}",
                             f"batch_size={args.batch_size}", f"max_items={args.items}", "shortest_first=true",
                             "cache_clips=true", f"gradient_checkpointing={str(args.gradient_checkpointing).lower()}"])
    on_gpu = torch.cuda.is_available()
    precision = "bf16" if on_gpu else "no"
    accelerator = Accelerator(mixed_precision=precision)
    dtype = torch.bfloat16 if on_gpu and cfg.finetune == "lora" else torch.float32
    processor = load_processor(cfg.model, max_pixels=cfg.max_pixels)
    model = build_model(cfg, dtype)
    dataset, collator = build_data(cfg, processor)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    for i in range(len(dataset)):  # decode every clip once: the timed steps measure the processor and model
        dataset.clip(i)

    rows = []
    for step in range(args.warmup + args.steps):
        indices = [(step * cfg.batch_size + j) % len(dataset) for j in range(cfg.batch_size)]
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        batch = collator([dataset[i] for i in indices])
        t1 = time.perf_counter()
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        labels = batch.pop("labels")[:, 1:]
        logits = model(**batch, use_audio_in_video=True, use_cache=False).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                 ignore_index=-100)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if on_gpu:
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        peak = (torch.cuda.max_memory_allocated() if on_gpu
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
        tokens = int(batch["attention_mask"].sum())
        row = {"data_s": t1 - t0, "compute_s": t2 - t1, "step_s": t2 - t0, "tokens": tokens,
               "supervised": int((labels != -100).sum()), "peak_mib": peak, "loss": float(loss)}
        warm = step < args.warmup
        print(f"{'warm-up' if warm else 'step'} {step + 1}: {row['step_s']:.3f} s (data {row['data_s']:.3f}, "
              f"compute {row['compute_s']:.3f}), {tokens} tokens ({row['supervised']} supervised), "
              f"peak {peak:.0f} MiB, loss {row['loss']:.3f}")
        if not warm:
            rows.append(row)

    step_s = statistics.median(r["step_s"] for r in rows)
    tokens = statistics.mean(r["tokens"] for r in rows)
    device = torch.cuda.get_device_name() if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    n_params = sum(p.numel() for p in params)
    print(f"\n{Path(model_path).name} {cfg.finetune} ({n_params:,} trainable), {device}, {precision}, "
          f"{args.frames} frames, max_pixels {args.max_pixels}, batch {cfg.batch_size}, "
          f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}")
    print(f"median step {step_s:.3f} s (data {statistics.median(r['data_s'] for r in rows):.3f} s, "
          f"compute {statistics.median(r['compute_s'] for r in rows):.3f} s): "
          f"{cfg.batch_size / step_s:.2f} samples/s, {tokens / step_s:.0f} tokens/s "
          f"({tokens / cfg.batch_size:.0f} tokens/sample), peak memory {max(r['peak_mib'] for r in rows):.0f} MiB")


if __name__ == "__main__":
    main()
