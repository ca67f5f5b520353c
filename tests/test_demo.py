"""The whole main job, as `make demo` runs it: sample -> build -> load -> predict -> eval -> report."""

from __future__ import annotations

import json

import pytest

from harmonyset_hf.cli import main
from harmonyset_hf.io import read_jsonl


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for step in range(1, 8):
        assert f"[{step}/7]" in printed
    assert "demo done in" in printed and "paper: Gemini-1.5 Pro" in printed
    results = {p.parent.name: json.loads(p.read_text()) for p in (out / "results").glob("*/results.json")}
    assert set(results) == {"mc_baseline-random", "mc_baseline-longest", "oe_baseline-generic"}
    mc_rows = sum(1 for _ in read_jsonl(out / "results" / "mc_baseline-random" / "items.jsonl"))
    for name in ("mc_baseline-random", "mc_baseline-longest"):
        r = results[name]
        assert r["counts"]["missing"] == 0 and r["counts"]["scored"] == mc_rows > 0
        assert r["circular"]["missing"] == 0
        assert 0 <= r["circular"]["overall"]["accuracy"] <= r["overall"]["accuracy"] <= 1
    oe = results["oe_baseline-generic"]
    assert oe["judge"]["kind"] == "embedding" and oe["counts"]["failed"] == 0 and oe["counts"]["scored"] > 0
    assert all(1 <= oe["overall"][a] <= 10 for a in ("rhythm", "theme", "emotion", "culture"))
    sync = json.loads((out / "sync" / "results.json").read_text())
    assert sync["counts"]["analysed"] > 0 and (out / "sync" / "sync.png").stat().st_size > 0
    for name in ("report.md", "table2_oe.csv", "table5_mc.csv", "mc_accuracy.png", "oe_overall.png"):
        assert (out / "report" / name).stat().st_size > 0
