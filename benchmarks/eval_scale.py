"""How long MC scoring and OE aggregation take at the full HarmonySet test size (3,858 items x 4 questions).

Run by hand: ``.venv/bin/python benchmarks/eval_scale.py``. The rows are synthetic (the real test
set has no public videos here); the replies mix the forms real models write, so answer extraction
does realistic work. Prints figures; asserts nothing.
"""

from __future__ import annotations

import random
import time

from harmonyset_hf.evaluation import evaluate_mc
from harmonyset_hf.evaluation.scoring import aggregate_oe, circular_variants
from harmonyset_hf.schema import ASPECTS, CATEGORIES, OPTION_LETTERS

N_ITEMS = 3858
FORMS = ["{L}", "({L})", "Answer: {L}", "The answer is {L}: {T}", "I think {L} is correct because the beat "
         "follows the cuts.", "{L}. {T}", "{T}", "A good choice is {L}", "Either {L} or {M}.",
         "The music fits the video well."]


def main() -> None:
    """Print the timings."""
    rng = random.Random(0)
    rows = []
    for i in range(N_ITEMS):
        for aspect in ASPECTS:
            options = [f"option {k} about {aspect} with the music at {rng.randint(60, 180)} BPM and a "
                       f"{rng.choice(['calm', 'bright', 'tense'])} mood" for k in range(4)]
            rows.append({"id": f"hs{i:06d}", "question_id": f"hs{i:06d}:{aspect}", "aspect": aspect,
                         "category": CATEGORIES[i % len(CATEGORIES)], "options": options,
                         "answer": rng.choice(OPTION_LETTERS)})
    circ = [v for r in rows for v in circular_variants(r)]
    preds = {}
    for r in circ:
        k = rng.randrange(4)
        preds[r["question_id"]] = rng.choice(FORMS).format(L=OPTION_LETTERS[k], M=OPTION_LETTERS[(k + 1) % 4],
                                                            T=r["options"][k])
    t = time.perf_counter()
    results, _ = evaluate_mc(rows, preds, circular=True)
    mc_s = time.perf_counter() - t
    o = results["overall"]
    print(f"evaluate_mc: {len(rows)} questions x 4 rotations ({len(preds)} replies) in {mc_s:.2f} s "
          f"({1e6 * mc_s / len(preds):.0f} us/reply); accuracy {o['accuracy']:.3f}, invalid {o['invalid_rate']:.3f}, "
          f"circular {results['circular']['overall']['accuracy']:.4f}")
    items = [{"category": CATEGORIES[i % 6], "scores": {a: rng.randint(1, 10) for a in ASPECTS}}
             for i in range(N_ITEMS)]
    t = time.perf_counter()
    agg = aggregate_oe(items)
    print(f"aggregate_oe: {N_ITEMS} items in {1e3 * (time.perf_counter() - t):.1f} ms; overall rhythm "
          f"{agg['overall']['rhythm']:.2f}")


if __name__ == "__main__":
    main()
