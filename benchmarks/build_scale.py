"""Build an annotation-only Hub folder of the full HarmonySet size and load it; prints time and peak memory.

    .venv/bin/python benchmarks/build_scale.py [--train 44470] [--test 3858] [--words 350] [--workdir DIR]

Generates release files shaped like the real ones (VideoLLaMA2 conversations + the paper's fields,
~350-word four-section annotations; 44,470 train + 3,858 test items, 4 MC questions per test
item), then runs ``harmonyset build --annotations-only`` in a child process (its wall time and
peak RSS are what is reported), then ``load_dataset`` of the three configs in another child.
Targets on a 2-core machine: build under 60 s and 2 GB, loading all three configs under 30 s.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harmonyset_hf import schema

WORDS = ("the music rises as the camera cuts to a wide shot and the beat lands on every step of the dancer "
         "while warm strings carry a calm hopeful mood that matches the golden light of the scene").split()


def _annotation(rng: random.Random, words: int) -> str:
    per = words // 4
    return "\n".join(f"{schema.CANONICAL_HEADERS[a]}: " + " ".join(rng.choices(WORDS, k=per)) + "."
                     for a in schema.ASPECTS)


def _item(i: int, rng: random.Random, words: int) -> dict:
    cat = rng.choice(schema.CATEGORIES)
    return {
        "id": f"hs{i:06d}", "video": f"hs{i:06d}.mp4",
        "conversations": [{"from": "human", "value": "<video>\nAnalyze the video and its music."},
                          {"from": "gpt", "value": _annotation(rng, words)}],
        "category": schema.CATEGORY_NAMES[cat], "subcategory": rng.choice(schema.SUBCATEGORIES[cat]),
        "duration": round(rng.uniform(2.96, 63.38), 2),
        "sync": rng.choice(["0", "00:10,A; 00:20,B", "00:05,C"]),
        "labels": {k: ([rng.choice(v)] if k in schema.MULTI_LABELS else rng.choice(v))
                   for k, v in schema.LABELS.items()},
        "metadata": {"title": f"video {i}", "author": "someone", "duration": 30.0, "video_height": 1280,
                     "video_width": 720, "audio_labels": ["Music"] * 10, "youtube_id": f"yt{i:09d}"},
    }


def generate(out: Path, train: int, test: int, words: int) -> None:
    """Write HarmonySet_Train.json, HarmonySet_Test.json and HarmonySet_MC.json of the given sizes."""
    rng = random.Random(0)
    out.mkdir(parents=True, exist_ok=True)
    for name, start, n in (("HarmonySet_Train.json", 0, train), ("HarmonySet_Test.json", train, test)):
        with (out / name).open("w", encoding="utf-8") as fh:
            fh.write("[\n" + ",\n".join(json.dumps(_item(start + i, rng, words)) for i in range(n)) + "\n]\n")
    mc = [{"id": f"hs{train + i:06d}", "video": f"hs{train + i:06d}.mp4",
           "questions": [{"aspect": schema.ASPECT_NAMES[a], "question": f"Which best describes the {a}?",
                          "options": {x: f"option {x}" for x in schema.OPTION_LETTERS},
                          "answer": rng.choice(schema.OPTION_LETTERS)} for a in schema.ASPECTS]}
          for i in range(test)]
    (out / "HarmonySet_MC.json").write_text(json.dumps(mc), encoding="utf-8")


def _child(code: str) -> tuple[float, float, str]:
    """Run Python code in a child; (wall seconds, peak RSS in MB of that child, its stdout)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mb, proc.stdout


def main() -> None:
    """Generate, build, load; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=44_470)
    parser.add_argument("--test", type=int, default=3_858)
    parser.add_argument("--words", type=int, default=350)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hs-scale-"))
    started = time.perf_counter()
    generate(work / "release", args.train, args.test, args.words)
    size_mb = sum(p.stat().st_size for p in (work / "release").iterdir()) / 2**20
    took = time.perf_counter() - started
    print(f"generated {args.train + args.test} items ({size_mb:.0f} MB of JSON) in {took:.1f} s")
    build = (f"from harmonyset_hf.data.hub import build_hub; r = build_hub({str(work / 'release')!r}, None, "
             f"{str(work / 'hub')!r}, annotations_only=True); print(r['counts'], r['skipped_count'])")
    wall, peak, out = _child(build)
    print(f"build --annotations-only: {wall:.1f} s wall, peak RSS {peak:.0f} MB; rows {out.strip()}")
    load = ("import time, datasets; t = time.perf_counter()\n"
            f"for c in ('instruct', 'oe', 'mc'): ds = datasets.load_dataset({str(work / 'hub')!r}, c, "
            f"cache_dir={str(work / 'cache')!r}); print(c, ds.num_rows, end='; ')\n"
            "print(f'{time.perf_counter() - t:.1f}')")
    wall, peak, out = _child(load)
    *rows, seconds = out.strip().rsplit("; ", 1)
    print(f"load_dataset of the 3 configs (first load, builds the arrow cache): {seconds} s in-process, "
          f"{wall:.1f} s wall incl. interpreter start; {rows[0]}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
