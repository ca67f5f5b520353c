"""Qwen2.5-Omni input sizes and costs: tokens per clip for 16/32/64 frames, processor time, tiny-model speed.

    .venv/bin/python benchmarks/omni_inputs.py [--duration 31.5] [--height 1920 --width 1080]

Prints, for a clip of HarmonySet's mean length (31.5 s) at YouTube Shorts size, the video and
audio token counts the real Qwen2.5-Omni-7B processor budget gives (per-frame 128..768 x 28 x 28
pixels), the time `build_inputs` takes per clip on this CPU, and the tiny model's forward and
generate times. Synthetic frames and noise audio: the counts depend only on sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))


@dataclass
class SyntheticClip:
    frames: np.ndarray
    duration: float
    audio: np.ndarray
    sample_rate: int = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=31.5)
    parser.add_argument("--height", type=int, default=1920)
    parser.add_argument("--width", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from harmonyset_hf.models.omni_processing import (
        DEFAULT_MAX_PIXELS,
        DEFAULT_MIN_PIXELS,
        MODEL_KWARGS,
        build_inputs,
        load_processor,
        make_conversation,
    )
    from harmonyset_hf.models.tiny import build_tiny_model

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(args.duration * 16000))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = build_tiny_model(tmp)
        print(f"tiny model built in {time.perf_counter() - start:.2f} s")
        processor = load_processor(str(path))
        model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path).eval()
        budgets = {"qwen2.5-omni default": {"shortest_edge": DEFAULT_MIN_PIXELS, "longest_edge": DEFAULT_MAX_PIXELS},
                   "256x28x28": {"shortest_edge": DEFAULT_MIN_PIXELS, "longest_edge": 256 * 28 * 28},
                   "tiny": dict(processor.video_processor.size)}
        conv = [make_conversation("Analyze the video and its music.")]
        print(f"clip: {args.duration} s, {args.width}x{args.height}")
        print(f"{'budget':>22} {'frames':>6} {'grid':>12} {'video tok':>9} {'audio tok':>9} {'seq len':>8} "
              f"{'inputs s':>8}")
        for label, size in budgets.items():
            for frames in (16, 32, 64):
                clip = SyntheticClip(rng.integers(0, 256, (frames, args.height, args.width, 3), dtype=np.uint8),
                                     args.duration, audio)
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    inputs = build_inputs(processor, [clip], conv, add_generation_prompt=True, size=size)
                    times.append(time.perf_counter() - t0)
                ids = inputs["input_ids"][0]
                n_video = int((ids == processor.video_token_id).sum())
                n_audio = int((ids == processor.audio_token_id).sum())
                print(f"{label:>22} {frames:>6} {str(inputs['video_grid_thw'][0].tolist()):>12} "
                      f"{n_video:>9} {n_audio:>9} {len(ids):>8} {min(times):>8.2f}")
        clip = SyntheticClip(rng.integers(0, 256, (16, 180, 320, 3), dtype=np.uint8), args.duration, audio)
        inputs = build_inputs(processor, [clip, clip], conv * 2, add_generation_prompt=True)
        with torch.no_grad():
            model(**inputs, **MODEL_KWARGS)  # warm-up
            t0 = time.perf_counter()
            model(**inputs, **MODEL_KWARGS)
            forward = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.generate(**inputs, **MODEL_KWARGS, max_new_tokens=16, do_sample=False)
            generate = time.perf_counter() - t0
        print(f"tiny model, batch of 2 x ({args.duration} s, 16 frames, seq {inputs['input_ids'].shape[1]}): "
              f"forward {forward:.3f} s, generate 16 tokens {generate:.2f} s ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
