"""Fidelity to the paper (issue 16): its label spellings, its instruction templates for items without one,
quoted MC answers in a release, every published table cell in `--compare-paper`, and an OE budget that
fits the references, with answers cut by the length limit counted."""

from __future__ import annotations

import csv
import json

import pytest
from openai_server import FakeOpenAIServer
from release_fixtures import item, make_clip

from harmonyset_hf import schema
from harmonyset_hf.cli import main
from harmonyset_hf.data.hub import build_hub, export_videollama2
from harmonyset_hf.data.release import read_release
from harmonyset_hf.data.release_fields import parse_answer
from harmonyset_hf.evaluation import read_predictions, summary_line
from harmonyset_hf.evaluation.paper_tables import TABLE2_OE, TABLE4_OE, TABLE6_FRAMES
from harmonyset_hf.evaluation.predict import load_split, run_predictions
from harmonyset_hf.evaluation.report import write_report
from harmonyset_hf.harness.tasks import doc_to_text
from harmonyset_hf.models import get_model
from harmonyset_hf.models.qwen2_5_omni import DEFAULT_MAX_NEW_TOKENS
from harmonyset_hf.prompting import instruction_for, instruction_templates, oe_prompt, prompt_for


# --------------------------------------------------------------------------------------------
# The paper's spellings (section 3.2.1)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling,label", [("enhancing", "enhancement"), ("Suggesting", "suggestion"),
                                            ("independent narrative", "independent"), ("reversing", "reversing")])
def test_paper_label_spellings_are_aliases(spelling, label):
    assert schema.normalize_label("narrative_supplement", spelling) == label


def test_paper_dimension_name_is_an_alias_and_such_an_item_is_kept(tmp_path):
    assert schema.normalize_sub_aspect("Narrative enhancement") == "narrative_supplement"
    it = item("n1")
    labels = dict(it["labels"])
    del labels["narrative_supplement"]
    it["labels"] = {**labels, "Narrative enhancement": "suggesting"}
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "HarmonySet_Train.json").write_text(json.dumps([it]), encoding="utf-8")
    make_clip(tmp_path / "videos" / "n1.mp4")
    rel = read_release(tmp_path / "rel", tmp_path / "videos")
    assert not rel.problems
    assert rel.records["instruct"][0]["labels"]["narrative_supplement"] == "suggestion"


# --------------------------------------------------------------------------------------------
# Items without an instruction
# --------------------------------------------------------------------------------------------
def test_an_item_without_instruction_gets_one_drawn_template_everywhere(tmp_path):
    """predict, the harness, training (oe_prompt) and the export all show the same paper template; build counts it."""
    items = [item("x1"), item("x2")]
    items[1]["conversations"] = [{"from": "gpt", "value": items[1]["conversations"][1]["value"]}]  # no human turn
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "HarmonySet_Train.json").write_text(json.dumps(items), encoding="utf-8")
    for it in items:
        make_clip(tmp_path / "videos" / it["video"])
    report = build_hub(release_dir=tmp_path / "rel", videos_dir=tmp_path / "videos", out_dir=tmp_path / "hub")
    assert report["instructions_drawn"] == {"instruct": 1, "oe": 0}
    row = {"id": "x2", "instruction": None}
    template = instruction_for(row)
    assert template in instruction_templates() and template == instruction_for({"id": "x2", "instruction": ""})
    prompt = template.removeprefix("<video>\n").strip()
    assert prompt_for("oe", row) == oe_prompt(row) == doc_to_text(row) == prompt
    assert oe_prompt({"id": "x1", "instruction": "<video>\nWhat does the music do?"}) == "What does the music do?"
    export_videollama2(tmp_path / "hub", "instruct", tmp_path / "train.json")
    exported = {e["id"]: e["conversations"][0]["value"] for e in json.loads((tmp_path / "train.json").read_text())}
    assert exported["x2"] == template
    assert exported["x1"] == "<video>\nAnalyze the video and its music."
    # the draw is by id, not by position or run: another id may get another template, the same id never does
    picks = {instruction_for({"id": f"hs{i:06d}", "instruction": None}) for i in range(200)}
    assert len(picks) == len(instruction_templates())


# --------------------------------------------------------------------------------------------
# Quoted MC answers in a release
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,letter", [("'B'", "B"), ('"C"', "C"), ("‘A’", "A"), ("“D”", "D"), ("Ｂ", "B"),
                                        ("「C」", "C"), ("(d)", "D"), ("B. two", "B")])
def test_quoted_release_answers_are_read(raw, letter):
    assert parse_answer(raw, ["one", "two", "three", "four"]) == letter


# --------------------------------------------------------------------------------------------
# --compare-paper: every cell of Table 2, and Tables 4 and 6
# --------------------------------------------------------------------------------------------
def _oe_results(path, scores):
    cells = {a: s for a, s in zip(schema.ASPECTS, scores)}
    results = {"config": "oe", "model": "mine", "judge": {"kind": "llm", "model": "gpt-4o-2024-11-20"},
               "overall": {**cells, "n": 1}, "categories": {"knowledge": {**cells, "n": 1}},
               "counts": {"scored": 1, "failed": 0, "missing": 0}}
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return path


def test_compare_paper_fills_every_table2_cell_and_adds_tables_4_and_6(tmp_path):
    write_report([_oe_results(tmp_path / "r", (5.0, 4.0, 3.0, 2.0))], tmp_path / "out", paper=True)
    table2 = {r["Model"]: r for r in csv.DictReader((tmp_path / "out" / "table2_oe.csv").open())}
    for name in TABLE2_OE:
        row = table2["paper: " + name]
        values = [v for k, v in row.items() if k not in ("Model", "Judge", "Items", "Failed", "Missing")]
        assert len(values) == 4 * (len(schema.CATEGORIES) + 1) and all(values), name  # no empty cell
    assert table2["paper: Gemini-1.5 Pro"]["Art & Performance R&S"] == "6.05"
    assert table2["paper: VideoLLaMA2+HarmonySet"]["Knowledge Cult"] == "5.23"
    assert table2["paper: video-SALMONN"]["Overall Emo"] == "3.38"
    table4 = {r["Model"]: r for r in csv.DictReader((tmp_path / "out" / "table4_oe.csv").open())}
    assert set(table4) == {"paper: " + n for n in TABLE4_OE}
    assert table4["paper: VideoLLaMA2 (F.A., 10k)"]["Overall R&S"] == "4.59"
    assert table4["paper: VideoLLaMA2 (HarmonySet, 10k)"]["Sports & Outdoors Cult"] == "2.97"
    table6 = list(csv.DictReader((tmp_path / "out" / "table6_oe.csv").open()))
    assert [r["Frames"] for r in table6] == [str(n) for n in TABLE6_FRAMES] == ["16", "32", "64"]
    assert table6[1]["Rhythm & Synchronization"] == "5.59"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Table 4" in text and "Table 6" in text
    # the paper's Overall equals its Table 6 16-frame row: one model, two tables
    assert TABLE2_OE["VideoLLaMA2+HarmonySet"]["overall"] == TABLE6_FRAMES[16]


# --------------------------------------------------------------------------------------------
# OE generation budget and answers cut by it
# --------------------------------------------------------------------------------------------
def test_generation_budget_fits_the_references():
    assert DEFAULT_MAX_NEW_TOKENS >= 1024


def test_answers_cut_by_the_length_limit_are_recorded_and_reported(hub_dir, tmp_path, capsys):
    rows = load_split(hub_dir, "oe", media=True, limit=3)
    with FakeOpenAIServer() as server:
        server.finish_reason = "length"
        model = get_model("openai-api", model="omni", base_url=server.base_url, frames=2,
                          cache_dir=str(tmp_path / "cache"), max_side=64)
        run_predictions(model, rows, "oe", tmp_path / "preds.jsonl", progress=False)
        model.close()
    lines = [json.loads(x) for x in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert [x["truncated"] for x in lines] == [True, True, True]
    _, facts = read_predictions(tmp_path / "preds.jsonl", "oe")
    assert facts["truncation"]["share"] == 1.0 and facts["truncation"]["known"] == 3
    assert main(["eval", "oe", "--data", str(hub_dir), "--predictions", str(tmp_path / "preds.jsonl"),
                 "--judge", "embedding", "--limit", "3", "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["predictions"]["truncation"]["share"] == 1.0
    assert "100.0% of answers stopped on the length limit" in summary_line(results)
    assert "stopped on the length limit" in capsys.readouterr().out
