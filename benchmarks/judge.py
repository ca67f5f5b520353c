"""Judge throughput: HarmonySet-OE-sized runs against a local OpenAI-protocol server with fixed latency.

Run by hand: ``.venv/bin/python benchmarks/judge.py`` (defaults: 3,858 items, 100 ms per call,
concurrency 32). Starts ``tests/openai_server.py`` in its own process (so the server does not share
the client's interpreter), judges every item through :class:`harmonyset_hf.judge.LLMJudge` with a
fresh cache, then judges them again from the cache. Prints wall times, the ideal time
(items x latency / concurrency), their ratio, and the server's call counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harmonyset_hf.judge import LLMJudge  # noqa: E402

WORDS = ("beat drum tempo cut fast slow piano guitar synth bass rock jazz pop dance city ocean festival family joy "
         "calm tension nostalgia hope tradition costume temple street market lantern sunset crowd energy melody chorus "
         "rhythm transition scene camera close shot montage travel food laugh tears").split()
HEADERS = ("Rhythm and Synchronization", "Theme and Content", "Emotion", "Cultural Relevance")


def make_items(n: int, seed: int = 0, words_per_section: int = 40) -> list[dict]:
    """``n`` OE items with annotation-sized references and responses (about 160 words each)."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        ref = "\n".join(f"{h}: " + " ".join(rng.choices(WORDS, k=words_per_section)) for h in HEADERS)
        resp = "\n".join(f"{h}: " + " ".join(rng.choices(WORDS, k=words_per_section)) for h in HEADERS)
        items.append({"id": f"hs{i:06d}", "reference": ref, "response": resp})
    return items


def server_stats(base_url: str) -> dict:
    """The counters of the server (its ``/stats`` route)."""
    with urllib.request.urlopen(base_url + "/stats", timeout=10) as resp:
        return json.loads(resp.read())


def process_cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by this process or by ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_run(base_url: str, cache_dir: Path, items: list[dict], concurrency: int) -> tuple[float, list, dict]:
    """Judge ``items`` once; (wall seconds, results, usage)."""
    judge = LLMJudge(model="bench-judge", base_url=base_url, api_key="sk-bench-not-a-secret", cache_dir=cache_dir,
                     concurrency=concurrency)
    start = time.perf_counter()
    results = judge.score_items(items, progress=False)
    wall = time.perf_counter() - start
    usage = judge.usage
    judge.close()
    return wall, results, usage


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3858)
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per call")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    args = parser.parse_args(argv)

    items = make_items(args.items)
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), "--latency",
                               str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().split()[1]
        with tempfile.TemporaryDirectory(prefix="judge-bench-") as tmp:
            cache_dir = Path(args.cache_dir or tmp)
            ideal = args.items * args.latency / args.concurrency
            before = server_stats(base_url)
            cpu_client, cpu_server, load = process_cpu(), process_cpu(server.pid), os.getloadavg()[0]
            wall1, results1, usage1 = timed_run(base_url, cache_dir, items, args.concurrency)
            cpu_client, cpu_server = process_cpu() - cpu_client, process_cpu(server.pid) - cpu_server
            mid = server_stats(base_url)
            wall2, results2, usage2 = timed_run(base_url, cache_dir, items, args.concurrency)
            after = server_stats(base_url)
    finally:
        server.terminate()
        server.wait(10)

    failed1 = sum(r.failed for r in results1)
    same = [r.scores for r in results1] == [r.scores for r in results2]
    print(f"items={args.items} latency={args.latency * 1000:.0f}ms concurrency={args.concurrency} "
          f"ideal={ideal:.2f}s (items x latency / concurrency)")
    print(f"cold run:   wall={wall1:.2f}s  ratio_to_ideal={wall1 / ideal:.3f}  throughput={args.items / wall1:.1f} "
          f"items/s  server_calls={mid['served'] - before['served']}  failed={failed1}  "
          f"usage={json.dumps(usage1)}")
    print(f"cold run CPU: client {cpu_client / args.items * 1000:.2f} ms/item, server "
          f"{cpu_server / args.items * 1000:.2f} ms/item; {os.cpu_count()} CPU(s), load average before {load:.2f}")
    # The client's event loop is one thread: its CPU time is a floor on the wall time whatever the concurrency.
    print(f"client CPU floor: {cpu_client:.2f}s of CPU for the cold run (the wall time cannot go below "
          f"max(ideal, floor) = {max(ideal, cpu_client):.2f}s on an otherwise idle core)")
    print(f"cached run: wall={wall2:.2f}s  server_calls={after['served'] - mid['served']}  "
          f"cache_hits={usage2['cache_hits']}  same_scores={same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
