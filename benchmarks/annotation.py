"""Annotation framework costs: consensus at the paper's full size, and building one describe request.

Run: .venv/bin/python benchmarks/annotation.py [--items 48328]
Prints: seconds to validate + merge + score agreement of items x 3 annotator rows, and the time and
size of one describe request (16 frames as JPEG + WAV audio + the paper's prompt) for a mini clip.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harmonyset_hf import schema  # noqa: E402
from harmonyset_hf.annotation import consensus  # noqa: E402


def synthetic_csv(n: int, seed: int = 0) -> str:
    """n items x 3 raters; each sub-aspect unanimous 60%, 2-of-3 36%, split 4%; sync with jitter."""
    rng = random.Random(seed)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=consensus.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for i in range(n):
        truth = {k: rng.choice(v) for k, v in schema.LABELS.items()}
        points = sorted(rng.sample(range(2, 60), rng.choice([0, 0, 1, 2, 3])))
        codes = [rng.choice("ABC") for _ in points]
        for r in range(3):
            row = {"id": f"x{i:06d}", "annotator": f"a{r}"}
            for k, v in truth.items():
                u = rng.random()
                row[k] = v if u < 0.8 else rng.choice(schema.LABELS[k])
            row["sync"] = "; ".join(f"00:{min(59, max(0, t + rng.choice((-1, 0, 1)))):02d},{c}"
                                    for t, c in zip(points, codes)) or "0"
            writer.writerow(row)
    return buf.getvalue()


def main() -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=48328)
    ap.add_argument("--mini", default=None, help="a HarmonySet-mini folder for the describe request figure")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotators.csv"
        path.write_text(synthetic_csv(args.items))
        t0 = time.perf_counter()
        summary = consensus.run_consensus(path, Path(tmp) / "out")
        dt = time.perf_counter() - t0
    print(f"consensus: {args.items} items x 3 rows validated, merged and scored in {dt:.1f} s "
          f"({summary['to_review']} to review)")
    if args.mini:
        from harmonyset_hf.annotation.describe import Describer, read_metadata_files
        from harmonyset_hf.llm import LLMClient

        release = Path(args.mini) / "release"
        metas = read_metadata_files([release / "HarmonySet_Train.json"])
        item = json.loads((release / "HarmonySet_Train.json").read_text())[0]
        rec = {"id": item["id"], "sync": item["sync"], "labels": item["labels"]}
        d = Describer(LLMClient(model="m", base_url="http://127.0.0.1:9/v1", api_key="k"))
        t0 = time.perf_counter()
        messages = d.base_messages(rec, metas[item["id"]], str(Path(args.mini) / "videos" / item["video"]))
        dt = time.perf_counter() - t0
        size = len(json.dumps(messages))
        print(f"describe request: {dt * 1000:.0f} ms to build, {size / 1024:.0f} KiB (16 frames + audio + prompt)")


if __name__ == "__main__":
    main()
