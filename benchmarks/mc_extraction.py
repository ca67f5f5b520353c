"""MC answer reading on hand-labelled replies: precision, recall and the counts by reason.

Run by hand: ``.venv/bin/python benchmarks/mc_extraction.py`` (rules only) or with
``--extractor llm --base-url http://127.0.0.1:PORT/v1 --model NAME`` (the LLM reads only what the
rules call invalid; its calls are cached under ``--cache-dir``). The corpora are
``tests/data/mc_replies.jsonl`` (used while writing the rules) and
``tests/data/mc_replies_heldout.jsonl`` (written before the rules changed and not looked at while
tuning them); each line is ``{"reply", "options"?, "answer": letter or null, "style"}`` where
``answer`` is what a careful human reads and ``options`` a list or the name of a set in
``tests/data/mc_option_sets.json``.

Precision is the share of reads (a letter given) that equal the human's letter; recall is the
share of replies with a human letter that were read as that letter. Refusals and hedges
(answer null) only count against precision when a letter is read for them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harmonyset_hf.evaluation.mc_extractor import EXTRACTORS, read_choices, read_counts  # noqa: E402
from harmonyset_hf.evaluation.mc_reading import reason_kind  # noqa: E402
from harmonyset_hf.llm import LLMClient  # noqa: E402

DATA = ROOT / "tests" / "data"
CORPORA = {"tuned": DATA / "mc_replies.jsonl", "held-out": DATA / "mc_replies_heldout.jsonl"}


def load_corpus(path: Path) -> list[dict]:
    """The labelled replies of one corpus file, with option-set names resolved to lists."""
    sets = json.loads((DATA / "mc_option_sets.json").read_text(encoding="utf-8"))
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if isinstance(row.get("options"), str):
                row["options"] = sets[row["options"]]
            rows.append(row)
    return rows


def measure(rows: list[dict], client: LLMClient | None = None) -> dict:
    """Precision, recall, counts by reason and the misreads of ``rows`` (each with ``reply`` and ``answer``)."""
    items = [{"response": r["reply"], "options": r.get("options")} for r in rows]
    choices = read_choices(items, client)
    reads = [(r, c) for r, c in zip(rows, choices) if c.letter is not None]
    right = sum(c.letter == r["answer"] for r, c in reads)
    answerable = [(r, c) for r, c in zip(rows, choices) if r["answer"] is not None]
    found = sum(c.letter == r["answer"] for r, c in answerable)
    errors = [{"reply": r["reply"], "human": r["answer"], "read": c.letter, "reason": c.reason}
              for r, c in zip(rows, choices) if c.letter != r["answer"]]
    by_style = Counter(r["style"] for r, c in zip(rows, choices) if c.letter != r["answer"])
    return {"n": len(rows), "reads": len(reads), "answerable": len(answerable),
            "precision": right / len(reads) if reads else None,
            "recall": found / len(answerable) if answerable else None,
            **read_counts(choices), "wrong_reads": sum(c.letter != r["answer"] for r, c in reads),
            "misses_by_style": dict(by_style), "errors": errors}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Print precision, recall and reasons for each corpus and for both together."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extractor", choices=EXTRACTORS, default="rules")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint of the LLM extractor")
    parser.add_argument("--model", help="model of the LLM extractor (default $HARMONYSET_JUDGE_MODEL)")
    parser.add_argument("--cache-dir", help="where the LLM extractor's replies are cached")
    parser.add_argument("--show-errors", action="store_true", help="list every reply read differently")
    parser.add_argument("--corpus", choices=[*CORPORA, "every"], default="every",
                        help="one corpus only (while tuning the rules, look at 'tuned' alone)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    client = (LLMClient(model=args.model, base_url=args.base_url, cache_dir=args.cache_dir)
              if args.extractor == "llm" else None)
    corpora = {name: load_corpus(path) for name, path in CORPORA.items()}
    if args.corpus == "every":
        corpora["all"] = [row for rows in corpora.values() for row in rows]
    else:
        corpora = {args.corpus: corpora[args.corpus]}
    try:
        results = {name: measure(rows, client) for name, rows in corpora.items()}
    finally:
        if client is not None:
            client.close()
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    print(f"extractor: {args.extractor}")
    for name, res in results.items():
        print(f"\n[{name}] {res['n']} replies, {res['answerable']} with a human letter, {res['reads']} read")
        print(f"  precision {_fmt(res['precision'])}  recall {_fmt(res['recall'])}  wrong reads {res['wrong_reads']}")
        print(f"  rule reads {res['rule_reads']}  LLM reads {res['llm_reads']}  invalid {res['invalid']}")
        for reason, count in res["reasons"].items():
            print(f"    {count:4d}  {reason}")
        if args.show_errors:
            for err in res["errors"]:
                print(f"  ! human {err['human']} read {err['read']} ({reason_kind(err['reason'])}): {err['reply']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
