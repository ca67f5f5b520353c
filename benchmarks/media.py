"""Clips/s and peak memory of the clip loaders: 16 frames + 16 kHz mono audio from 30 s 720p h264 clips.

    .venv/bin/python benchmarks/media.py                 # generate the clips once (cached), then measure
    .venv/bin/python benchmarks/media.py --rounds 5 --loaders reference pyav-exact pyav-keyframe torchcodec

The reference is VideoLLaMA2's way: decord frames (`VideoReader(..., num_threads=1)`, segment midpoints,
`get_batch`) plus an ffmpeg subprocess for the audio (`ffmpeg -i f -f s16le -ac 1 -ar 16000 -`).
Each loader runs in its own subprocess (fair peak RSS: `ru_maxrss` of the process; for the reference
also that of its ffmpeg child, which runs beside it), the loaders take turns for `--rounds` rounds
and the median is reported, so load from other processes on the machine hits them all alike.
CPU seconds per clip (user + system, ffmpeg child included) are printed too: on a busy machine
they are steadier than wall-clock speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOADERS = ("reference", "pyav-exact", "pyav-keyframe", "decord", "torchcodec")


def make_clips(folder: Path, count: int, seconds: float, preset: str) -> list[Path]:
    """`count` 720p30 h264/aac clips of `seconds` (libx264 defaults but `preset`; GOP 250), made once."""
    from harmonyset_hf.mini.indexed_clip import write_clip

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip{i}_{int(seconds)}s_720p_{preset}.mp4"
        if not path.exists():
            start = time.time()
            tmp = path.with_suffix(".tmp.mp4")
            write_clip(tmp, seconds=seconds, fps=30, width=1280, height=720, sample_rate=44100, layout="stereo",
                       noise=True, seed=i, options={"preset": preset})
            tmp.rename(path)
            print(f"made {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.time() - start:.0f} s", flush=True)
        paths.append(path)
    return paths


def _reference(path: str, frames: int):
    import numpy as np
    from decord import VideoReader, cpu

    from harmonyset_hf.media import sample_frame_indices

    reader = VideoReader(path, ctx=cpu(0), num_threads=1)
    video = reader.get_batch(sample_frame_indices(len(reader), frames).tolist()).asnumpy()
    cmd = ["ffmpeg", "-nostdin", "-i", path, "-vn", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000",
           "-f", "s16le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    audio = np.frombuffer(out, np.int16).astype(np.float32) / 32768.0
    return video, audio


def _ours(path: str, frames: int, loader: str):
    from harmonyset_hf.media import load_clip

    backend = {"pyav-exact": "pyav", "pyav-keyframe": "pyav"}.get(loader, loader)
    seek = "keyframe" if loader == "pyav-keyframe" else "exact"
    clip = load_clip(path, num_frames=frames, sample_rate=16000, backend=backend, seek=seek)
    return clip.frames, clip.audio


def worker(loader: str, files: list[str], frames: int, repeat: int) -> dict:
    """Load every file `repeat` times (after one warm-up load) and return the timing and peak memory."""
    load = _reference if loader == "reference" else (lambda p, k: _ours(p, k, loader))
    load(files[0], frames)  # warm-up: imports, first-open costs
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    count = 0
    for _ in range(repeat):
        for path in files:
            video, audio = load(path, frames)
            assert video.shape[0] == frames and audio.size > 0
            count += 1
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    return {"loader": loader, "clips": count, "seconds": seconds, "clips_per_s": count / seconds,
            "cpu_s_per_clip": cpu / count,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_peak_rss_mb": _ffmpeg_peak_mb(files[0]) if loader == "reference" else 0.0}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the reference's ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _ffmpeg_peak_mb(path: str) -> float:
    """Peak RSS of the reference's ffmpeg audio subprocess on its own.

    A child's ru_maxrss starts from its parent's RSS at fork, so it is measured from a tiny launcher.
    """
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True, check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    cmd = [sys.executable, "-S", "-c", code, "ffmpeg", "-nostdin", "-i", path, "-vn", "-acodec", "pcm_s16le",
           "-ac", "1", "-ar", "16000", "-f", "s16le", "-"]
    return int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()) / 1024


def main(argv: list[str] | None = None) -> int:
    """Generate the clips, run every loader in its own subprocess for some rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="distinct clips (default 4)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--preset", default="veryfast", help="libx264 preset of the generated clips")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2, help="passes over the clips per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per loader (median reported)")
    parser.add_argument("--loaders", nargs="+", default=["reference", "pyav-exact", "pyav-keyframe"],
                        choices=LOADERS)
    parser.add_argument("--cache", default=os.environ.get("HARMONYSET_BENCH_DIR", "/tmp/harmonyset-bench-media"))
    parser.add_argument("--worker", choices=LOADERS, help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.files, args.frames, args.repeat)))
        return 0

    files = [str(p) for p in make_clips(Path(args.cache), args.clips, args.seconds, args.preset)]
    runs: dict[str, list[dict]] = {name: [] for name in args.loaders}
    for rnd in range(args.rounds):
        for name in args.loaders:
            cmd = [sys.executable, __file__, "--worker", name, "--frames", str(args.frames),
                   "--repeat", str(args.repeat), "--files", *files]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {rnd + 1}/{args.rounds} {name}: {runs[name][-1]['clips_per_s']:.2f} clips/s", flush=True)

    ref = statistics.median(r["clips_per_s"] for r in runs["reference"]) if "reference" in runs else None
    print(f"\n{args.clips} clips x {args.repeat} passes, {args.frames} frames + 16 kHz mono audio, "
          f"{args.seconds:.0f} s 720p30 h264/aac, median of {args.rounds} rounds, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    cpu_ref = statistics.median(r["cpu_s_per_clip"] for r in runs["reference"]) if "reference" in runs else None
    print(f"{'loader':<15} {'clips/s':>8} {'vs ref':>7} {'CPU s/clip':>11} {'vs ref':>7} {'peak RSS MB':>12} "
          f"{'+ ffmpeg child MB':>18}")
    for name, results in runs.items():
        speed = statistics.median(r["clips_per_s"] for r in results)
        rss = max(r["peak_rss_mb"] for r in results)
        child = max(r["children_peak_rss_mb"] for r in results)
        cpu = statistics.median(r["cpu_s_per_clip"] for r in results)
        ratio = f"{speed / ref:.2f}x" if ref else "-"
        cpu_ratio = f"{cpu_ref / cpu:.2f}x" if cpu_ref else "-"
        print(f"{name:<15} {speed:>8.2f} {ratio:>7} {cpu:>11.2f} {cpu_ratio:>7} {rss:>12.0f} {child:>18.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
