"""Prediction throughput: clip prefixes shared vs not, 1 vs N data-parallel processes, peak memory per process.

    .venv/bin/python benchmarks/predict_scale.py                       # tiny model, HarmonySet-mini, CPU
    .venv/bin/python benchmarks/predict_scale.py --data HUB --model qwen2_5_omni \\
        --model-args path=Qwen/Qwen2.5-Omni-7B --device cuda --processes 1,8 --limit 200

Runs circular MC (each question in its 4 rotations) with `harmonyset predict`'s own code
(:func:`harmonyset_hf.predict.predict_data_parallel`) once per setting: ``share_prefix`` on and
off, 1 process and N under torchrun (gloo; each rank on ``cuda:{local_rank}`` with ``--device
cuda``). Each rank times only the predictions (after its model and data are loaded, between two
barriers, the merge included) and reports its peak memory. Prints questions/s per setting and the
speed-ups (medians with ``--repeats``); asserts nothing. Without ``--data`` HarmonySet-mini is made
first (``harmonyset sample`` + ``build``; rendering its clips takes a minute or two). CPU runs use
``--threads`` threads per process (1 by default: N processes on N cores against 1 on 1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def worker(args: argparse.Namespace) -> None:
    """One rank: load the model and rows, time predict_data_parallel, write this rank's figures to --report."""
    import torch

    from harmonyset_hf.distributed import barrier, current_rank, process_group, shard_by_item
    from harmonyset_hf.evaluation.predict import load_split, predict_data_parallel
    from harmonyset_hf.models import get_model, parse_model_args
    from harmonyset_hf.models.clips import ClipLoader, source_key

    rank = current_rank()
    options = {"max_new_tokens": args.max_new_tokens, **parse_model_args(args.model_args),
               "share_prefix": args.share == "on"}
    if args.device:
        options["device"] = args.device
    model = get_model(args.model, **options)
    rows = load_split(args.data, "mc", media=True, limit=args.limit)
    with process_group(rank) as group:
        barrier(group)  # every rank loaded: time the predictions only
        start = time.perf_counter()
        summary = predict_data_parallel(model, rows, "mc", args.out, rank=rank, batch_size=args.batch_size,
                                        circular=True, progress=False)
        seconds = time.perf_counter() - start
    # Decoding this rank's clips again, alone: a cost paid alike with and without shared prefixes.
    media_seconds = 0.0
    if model.needs_media:
        mine = shard_by_item(rows, rank, lambda row: str(row["id"]))
        clips = {source_key(row["video"]): row for row in mine}
        loader = ClipLoader(frames=getattr(model, "frames", 16))
        start = time.perf_counter()
        for row in clips.values():
            loader([row])
        media_seconds = time.perf_counter() - start
    figures = {"rank": rank.rank, "seconds": seconds, "written": summary.written, "total": summary.total,
               "failed": len(summary.failed), "device": str(getattr(model, "device", "cpu")),
               "media_seconds": media_seconds,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available() and str(figures["device"]).startswith("cuda"):
        figures["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    Path(args.report).with_suffix(f".rank{rank.rank}.json").write_text(json.dumps(figures))


def mini_hub(root: Path) -> Path:
    """HarmonySet-mini built into ``root`` (24 items: 8 in the test split, 32 MC questions)."""
    from harmonyset_hf.data.hub import build_hub
    from harmonyset_hf.mini.sample import make_sample

    make_sample(root / "mini", n=24, seed=0)
    return build_hub(release_dir=root / "mini" / "release", videos_dir=root / "mini" / "videos",
                     out_dir=root / "hub") or root / "hub"


def run_setting(args: argparse.Namespace, share: str, processes: int, root: Path, repeat: int = 0) -> dict:
    """Run one setting in fresh processes, into a new file; the slowest rank's time and every rank's figures."""
    tag = f"{share}-{processes}-{repeat}"
    out, report = root / f"preds-{tag}.jsonl", root / f"report-{tag}"
    worker_args = ["--worker", "--data", str(args.data), "--model", args.model, "--model-args", args.model_args,
                   "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size),
                   "--share", share, "--out", str(out), "--report", str(report),
                   *(["--limit", str(args.limit)] if args.limit else []),
                   *(["--device", args.device] if args.device else [])]
    script = str(Path(__file__).resolve())
    if processes == 1:
        command = [sys.executable, script, *worker_args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(processes), script, *worker_args]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"setting {tag} failed:\n{proc.stderr[-3000:]}")
    ranks = [json.loads(report.with_suffix(f".rank{r}.json").read_text()) for r in range(processes)]
    questions = ranks[0]["total"]
    slowest = max(ranks, key=lambda r: r["seconds"])
    seconds = slowest["seconds"]
    return {"share": share, "processes": processes, "questions": questions, "seconds": seconds,
            "qps": questions / seconds, "media": slowest["media_seconds"], "ranks": ranks, "out": out}


def main() -> None:
    """Parse the options, run every setting, print the table and the speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="Hub folder with videos (default: HarmonySet-mini, made in a temp folder)")
    parser.add_argument("--model", default="tiny", help="registry model (tiny, qwen2_5_omni, ...)")
    parser.add_argument("--model-args", default="", help="k=v,... e.g. path=CHECKPOINT,dtype=bfloat16")
    parser.add_argument("--device", default=None, help="cpu or cuda (each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--processes", default="1,2", help="process counts to compare (default 1,2)")
    parser.add_argument("--limit", type=int, default=None, help="MC questions (default: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="predict's batch (rows per model call)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per setting")
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting (the median is compared)")
    # worker mode (one rank of one setting)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--share", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    processes = [int(p) for p in args.processes.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="predict-scale-") as tmp:
        root = Path(tmp)
        if not args.data:
            print("making HarmonySet-mini ...", flush=True)
            args.data = str(mini_hub(root))
        runs: dict[tuple[str, int], list[dict]] = {}
        for repeat in range(args.repeats):  # settings interleaved, so that a busy spell hits each alike
            for share in ("on", "off"):
                for n in processes:
                    result = run_setting(args, share, n, root, repeat)
                    runs.setdefault((share, n), []).append(result)
                    peak = max(r["peak_rss_mib"] for r in result["ranks"])
                    cuda = max((r.get("peak_cuda_mib", 0) for r in result["ranks"]), default=0)
                    print(f"[{repeat + 1}/{args.repeats}] share_prefix={share:3s} processes={n}: "
                          f"{result['questions']} questions in {result['seconds']:.1f} s = {result['qps']:.2f} "
                          f"questions/s (decoding the clips alone: {result['media']:.1f} s); "
                          f"peak RSS per process {peak:.0f} MiB"
                          + (f", peak CUDA {cuda:.0f} MiB" if cuda else ""), flush=True)
        by = {key: sorted(results, key=lambda r: r["qps"])[len(results) // 2] for key, results in runs.items()}
        same = {r["out"].read_bytes() for results in runs.values() for r in results}
        print(f"median of {args.repeats} runs per setting:" if args.repeats > 1 else "per setting:")
        for (share, n), r in by.items():
            print(f"  share_prefix={share:3s} processes={n}: {r['qps']:.2f} questions/s")
        print(f"model {args.model} {args.model_args}, device {args.device or 'default'}, data {args.data}, "
              f"{os.cpu_count()} CPUs, {args.threads} thread(s) per process")
        for n in processes:
            on, off = by[("on", n)], by[("off", n)]
            model_side = (off["seconds"] - off["media"]) / max(on["seconds"] - on["media"], 1e-9)
            print(f"shared over unshared, {n} process(es): {on['qps'] / off['qps']:.2f}x "
                  f"({model_side:.2f}x without the clip decoding both pay)")
        for share in ("on", "off"):
            base = by[(share, processes[0])]["qps"]
            for n in processes[1:]:
                print(f"{n} processes over {processes[0]}, share_prefix={share}: {by[(share, n)]['qps'] / base:.2f}x")
        print("every setting wrote the same predictions" if len(same) == 1
              else f"WARNING: the settings wrote {len(same)} different prediction files")


if __name__ == "__main__":
    main()
