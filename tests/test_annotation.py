"""The annotation framework: consensus + kappa, review sheet, describe / mc against a local OpenAI server, instruct,
the music filter with a tiny AST, and the whole chain from annotators.csv to load_dataset."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from openai_server import FakeOpenAIServer, request_text

from harmonyset_hf import schema
from harmonyset_hf.annotation import consensus as cons
from harmonyset_hf.annotation import review
from harmonyset_hf.annotation.describe import build_prompt, generation_prompt, validate_annotation
from harmonyset_hf.annotation.instruct import choose_template, instruction_templates
from harmonyset_hf.annotation.mc import (
    MCParseError,
    check_block,
    curation_prompt,
    curation_template,
    parse_mc_reply,
    rebalance,
)
from harmonyset_hf.cli import main as cli_main
from harmonyset_hf.errors import HarmonySetError
from harmonyset_hf.io import read_jsonl
from harmonyset_hf.text import find_sections, format_timestamp, parse_sync

PROMPTS = Path(__file__).resolve().parents[1] / "harmonyset_hf" / "prompts"


# --------------------------------------------------------------------------------------------
# Fleiss' kappa
# --------------------------------------------------------------------------------------------
# Fleiss (1971) as tabulated on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_classic_example():
    # P-bar = 0.378, P_e = 0.213 -> kappa = 0.210 (the worked example's published figures)
    assert cons.fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_kappa_small_table_by_hand():
    # 3 items x 3 raters, 2 categories. P_i = 1, 1, (4+1-3)/6 = 1/3 -> P-bar = 7/9;
    # p = (5/9, 4/9) -> P_e = 41/81; kappa = (63/81 - 41/81) / (40/81) = 22/40.
    assert cons.fleiss_kappa([[3, 0], [0, 3], [2, 1]]) == pytest.approx(22 / 40)
    # all raters always agree on one category: chance agreement 1, kappa undefined
    assert cons.fleiss_kappa([[3, 0], [3, 0]]) is None
    # perfect agreement across two categories
    assert cons.fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cons.fleiss_kappa([[3, 0], [1, 1]])


def test_count_table_and_majority():
    table = cons.count_table([["a", "a", "b"], ["b", "b", "b"]])
    assert table == [[2, 1], [0, 3]]
    assert cons.majority(["x", "x", "y"], 2) == ("x", "majority")
    assert cons.majority([["happy", "hope"], ["hope", "happy"], ["sad"]], 2)[1] == "majority"  # sets, not order
    assert cons.majority(["x", "y", "z"], 2) == (None, "none")


# --------------------------------------------------------------------------------------------
# Sync merging
# --------------------------------------------------------------------------------------------
def test_merge_sync_majority_points_and_codes():
    merged = cons.merge_sync(["00:10,A; 00:20,B", "00:11,A", "00:09,B; 00:30,C"])
    assert merged["sync"] == "00:10,A"  # 20 s and 30 s were marked by one rater only
    assert merged["status"] == "majority" and not merged["problems"]
    assert cons.merge_sync(["00:05,C", "00:05,C", "00:06,C"])["status"] == "unanimous"
    assert cons.merge_sync(["0", "0", "00:07,A"])["sync"] == "0"
    split = cons.merge_sync(["00:04,A", "00:05,B", "0"])
    assert split["status"] == "none" and "no majority" in split["problems"][0]
    far = cons.merge_sync(["00:04,A", "00:08,A", "0"], tolerance=2.0)  # 4 s apart: two single marks
    assert far["sync"] == "0"


def test_consensus_of_harmonyset_mini_matches_the_release(mini_dir, tmp_path):
    summary = cons.run_consensus(mini_dir / "release" / "annotators.csv", tmp_path)
    records = {r["id"]: r for r in read_jsonl(tmp_path / "consensus.jsonl")}
    release = {it["id"]: it for name in ("HarmonySet_Train.json", "HarmonySet_Test.json")
               for it in json.loads((mini_dir / "release" / name).read_text())}
    assert set(records) == set(release) and summary["items"] == len(release)
    decided = 0
    for item_id, item in release.items():
        rec = records[item_id]
        for key, value in item["labels"].items():
            if rec["status"][key] != "none":  # a majority reproduces the release's consensus label
                assert cons.value_key(rec["labels"][key]) == cons.value_key(value), (item_id, key)
                decided += 1
            else:
                assert rec["labels"][key] is None and any(key in why for why in rec["review"])
        want, got = parse_sync(item["sync"]), parse_sync(rec["sync"])
        if rec["status"]["sync"] != "none":
            assert len(want) == len(got), (item_id, item["sync"], rec["sync"])
            assert all(abs(a.time - b.time) <= 1 and a.code == b.code for a, b in zip(want, got)), item_id
    assert decided > 0.9 * 9 * len(release)
    stats = json.loads((tmp_path / "agreement.json").read_text())
    for key, a in stats["sub_aspects"].items():
        assert a["unanimous"] + a["majority"] + a["review"] == pytest.approx(1.0, abs=2e-4), key
        votes = [[cons.value_key(v) for v in r["votes"][key]] for r in records.values()] if key != "sync" else None
        if votes:
            assert a["fleiss_kappa"] == pytest.approx(cons.fleiss_kappa(cons.count_table(votes)), abs=1e-4)
    queue = list(csv.DictReader((tmp_path / "review.csv").open()))
    assert {row["id"] for row in queue} == {i for i, r in records.items() if r["review"]}
    assert stats["items_to_review"] == len(queue)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cons.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


GOOD_ROW = {"id": "v1", "annotator": "a1", "sync": "00:10,A", "music_pace": "fast", "rhythm_alignment": "precise",
            "content_alignment": "strongly related", "narrative_supplement": "enhancement",
            "video_emotions": "happy|hope", "emotion_alignment": "consistent", "emotional_richness": "rich",
            "culture_elements": "no culture element", "cultural_relevance": "unrelated"}


def test_row_with_unquoted_comma_or_missing_cells_is_one_problem_and_missing_file_one_line(tmp_path):
    good = _csv([GOOD_ROW]).splitlines()
    path = tmp_path / "annotators.csv"
    # an unquoted multi-point sync splits into extra cells; a short row lacks cells
    path.write_text("\n".join([*good, good[1].replace('a1,"00:10,A"', "a2,00:10,A; 00:20,B"), "v1,a3,0,fast"]) + "\n")
    with pytest.raises(cons.SheetError) as err:
        cons.read_annotator_rows(path)
    assert err.value.errors == [
        "line 3 (id v1, annotator a2): 14 cell(s), the header has 12; a value with commas "
        "(a sync such as 00:10,A; 00:20,B) must be in double quotes",
        "line 4 (id v1, annotator a3): 4 cell(s), the header has 12"]
    with pytest.raises(HarmonySetError, match=r"^nope\.csv: cannot read the sheet \(No such file or directory\)$"):
        cons.read_annotator_rows("nope.csv")
    with pytest.raises(HarmonySetError, match="cannot read the sheet"):
        review.read_sheet(tmp_path / "nope.csv")
    with pytest.raises(HarmonySetError, match="--tolerance must be >= 0 seconds, got -1"):
        cons.run_consensus(path, tmp_path / "out", tolerance=-1)


def test_missing_or_broken_jsonl_input_is_one_error_line(tmp_path, capsys):
    assert cli_main(["annotate", "review", "--consensus", str(tmp_path / "nope.jsonl"),
                     "--export", str(tmp_path / "s.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"harmonyset: error: {tmp_path / 'nope.jsonl'}: no such file"
    broken = tmp_path / "consensus.jsonl"
    broken.write_text('{"id": 1\n{"id": 2}\n')
    assert cli_main(["annotate", "review", "--consensus", str(broken), "--export", str(tmp_path / "s.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"harmonyset: error: {broken}:1: not valid JSON (Expecting ',' delimiter)"


def test_malformed_annotator_sheet_names_row_column_and_valid_values(tmp_path, capsys):
    rows = [dict(GOOD_ROW), {**GOOD_ROW, "annotator": "a2", "rhythm_alignment": "precize"},
            {**GOOD_ROW, "annotator": "a3", "sync": "00:10,D"}, {**GOOD_ROW, "annotator": ""},
            {**GOOD_ROW, "annotator": "a1", "culture_elements": "clothes|customs"}]
    path = tmp_path / "annotators.csv"
    path.write_text(_csv(rows))
    with pytest.raises(cons.SheetError) as err:
        cons.read_annotator_rows(path)
    text = str(err.value)
    assert "line 3 (id v1, annotator a2), column rhythm_alignment: 'precize'" in text
    assert "precise, appropriate, irrelevant, mismatch" in text
    assert "line 4 (id v1, annotator a3), column sync" in text and "CODE: A, B or C" in text
    assert "line 5 (id v1, annotator ?), column annotator: empty" in text
    assert "line 6 (id v1, annotator a1), column culture_elements" in text and "landmarks" in text
    assert "lines 2, 6 (id v1), column annotator: 'a1' rated this item 2 times" in text
    assert cli_main(["annotate", "consensus", "--input", str(path), "--out", str(tmp_path / "c")]) == 2
    assert "column rhythm_alignment" in capsys.readouterr().err
    path.write_text("id,annotator,sync\nv1,a1,0\n")
    with pytest.raises(cons.SheetError, match="missing column"):
        cons.read_annotator_rows(path)
    path.write_text(_csv([GOOD_ROW, {**GOOD_ROW, "annotator": "a2"}]))
    with pytest.raises(cons.SheetError, match="2 rating"):
        cons.consensus_records(cons.read_annotator_rows(path), raters=3)


# --------------------------------------------------------------------------------------------
# Review
# --------------------------------------------------------------------------------------------
def _fill_sheet(sheet: Path, release: dict, rate) -> None:
    """Play the reviewer: fill undecided cells from the release's labels, rate every item."""
    rows = list(csv.DictReader(sheet.open()))
    for row in rows:
        truth = release[row["id"]]
        for key in schema.LABELS:
            if not row[key]:
                value = truth["labels"][key]
                row[key] = "|".join(value) if isinstance(value, list) else value
        if "sync" in row["needs_review"]:
            row["sync"] = truth["sync"]
        row["rating"] = rate(row["id"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    sheet.write_text(buf.getvalue())


def _release(mini_dir: Path) -> dict:
    return {it["id"]: it for name in ("HarmonySet_Train.json", "HarmonySet_Test.json")
            for it in json.loads((mini_dir / "release" / name).read_text())}


def test_review_sheet_round_trip_gives_table3(mini_dir, tmp_path):
    cons.run_consensus(mini_dir / "release" / "annotators.csv", tmp_path)
    sheet = tmp_path / "sheet.csv"
    assert review.export_sheet(tmp_path / "consensus.jsonl", sheet) == 24
    release = _release(mini_dir)
    ids = sorted(release)
    ratings = {i: ("Low" if n % 12 == 0 else "Medium" if n % 8 == 1 else "High") for n, i in enumerate(ids)}
    ratings[ids[5]] = ""  # not rated: counted apart
    _fill_sheet(sheet, release, ratings.get)
    summary = review.apply_sheet(tmp_path / "consensus.jsonl", sheet, tmp_path / "out")
    t = summary["table3"]
    rated = [r for r in ratings.values() if r]
    assert t["rated"] == len(rated) and t["unrated"] == 1
    for level in review.RATINGS:
        assert t["counts"][level] == rated.count(level)
        assert t["shares"][level] == pytest.approx(rated.count(level) / len(rated), abs=1e-4)
    assert t["paper"] == {"Low": 0.03, "Medium": 0.05, "High": 0.92}
    reviewed = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "reviewed.jsonl")}
    for item_id, rec in reviewed.items():
        assert not rec["review"]
        for key, value in release[item_id]["labels"].items():
            assert cons.value_key(rec["labels"][key]) == cons.value_key(value)
    assert summary["items_fixed"] == sum(1 for r in reviewed.values() if r["fixes"]) > 0


def test_review_sheet_errors_name_line_and_column(mini_dir, tmp_path):
    cons.run_consensus(mini_dir / "release" / "annotators.csv", tmp_path)
    sheet = tmp_path / "sheet.csv"
    review.export_sheet(tmp_path / "consensus.jsonl", sheet, queue_only=True)
    rows = list(csv.DictReader(sheet.open()))
    assert rows and all(r["needs_review"] for r in rows)
    rows[0]["rating"] = "Great"
    rows[0]["music_pace"] = "speedy"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    sheet.write_text(buf.getvalue())
    with pytest.raises(cons.SheetError) as err:
        review.apply_sheet(tmp_path / "consensus.jsonl", sheet, tmp_path / "out")
    text = str(err.value)
    assert f"line 2 (id {rows[0]['id']}), column rating: 'Great' is not valid; valid: Low, Medium, High" in text
    assert "column music_pace: 'speedy'" in text and "fast, slow, medium, diverse" in text
    assert "empty (no majority" in text and "a value is required" in text


# --------------------------------------------------------------------------------------------
# The local OpenAI-compatible annotator (network edge) and its replies
# --------------------------------------------------------------------------------------------
CODE_WORDS = {"A": "the music changes exactly with it", "B": "the music shifts close to it without locking in",
              "C": "the music carries on without any change"}


def _tags(text: str) -> dict[str, str]:
    return dict(re.findall(r"(?m)^(sync_answer\.value|title|" + "|".join(schema.LABELS) + r"): (.*)$", text))


def good_annotation(text: str) -> str:
    """A valid annotation written from the prompt's tags, as a careful MLLM would."""
    t = _tags(text)
    rhythm = (f"The soundtrack keeps a {t['music_pace']} pace and its beat feels {t['rhythm_alignment']} against "
              f"the cuts of {t['title']}.")
    for p in parse_sync(t["sync_answer.value"]):
        rhythm += f" Around {format_timestamp(p.time)} the picture turns and {CODE_WORDS[p.code]}."
    return (f"Rhythm and Synchronization: {rhythm}\n"
            f"Theme and Content: The music is {t['content_alignment']} to what is shown and works as "
            f"{t['narrative_supplement']} for the story it tells.\n"
            f"Emotion: The images feel {' and '.join(t['video_emotions'].split(', '))}; the music meets them in a "
            f"{t['emotion_alignment']} way with a {t['emotional_richness']} emotional palette.\n"
            f"Cultural Relevance: The video shows {t['culture_elements']} and the fit of the music to that "
            f"cultural setting is {t['cultural_relevance']}.")


UNRELATED = ("Quarterly tax filings for small retail shops are due at the end of March in most regions, "
             "and late forms carry a modest penalty fee. ")


def mc_reply_text(subtitle: str, flaw: str | None) -> str:
    """Four blocks: the section as option A (correct), reshuffled words as B-D; optionally one flaw."""
    sections = find_sections(subtitle).sections
    out = []
    for aspect in schema.ASPECTS:
        words = sections[aspect].split()
        options = [sections[aspect], " ".join(words[::-1]), " ".join(words[1:] + words[:1]),
                   " ".join(words[2:] + words[:2])]
        if flaw == "duplicate":
            options[2] = options[1]
        elif flaw == "unfaithful":
            options[0] = (UNRELATED * 8)[: len(options[0])]
        out.append(f"{schema.CANONICAL_HEADERS[aspect]}:\n" + "\n".join(f"{x}.{o}" for x, o in zip("ABCD", options))
                   + "\nCorrect Answer: A")
    return "\n".join(out)


def annotator_reply(body: dict) -> str:
    """The test server's reply: annotations for the Fig. 10 prompt, MC blocks for Fig. 14; flawed first asks."""
    text = request_text(body)
    reask = any(m.get("role") == "assistant" for m in body["messages"])
    if text.startswith("Please design multiple-choice questions"):
        subtitle = text.split("Provided subtitles:\n\n", 1)[1].split("\n\n\nThe output format", 1)[0]
        flaw = None if reask else [None, "duplicate", "unfaithful"][sum(map(ord, subtitle)) % 3]
        return mc_reply_text(subtitle, flaw)
    good = good_annotation(text)
    if reask:
        return good
    kind = len(_tags(text)["title"]) % 3
    if kind == 0:  # a section left out
        return good.split("\nCultural Relevance:")[0]
    if kind == 1:  # the tag wording copied
        return good.replace("The soundtrack keeps", f"Given rhythm_alignment: {_tags(text)['rhythm_alignment']}, "
                                                    "the soundtrack keeps", 1)
    return good


RECORD = {"id": "v1", "sync": "00:10,A; 00:20,C",
          "sync_points": [{"time": 10.0, "code": "A"}, {"time": 20.0, "code": "C"}],
          "labels": {"music_pace": "fast", "rhythm_alignment": "precise", "content_alignment": "strongly related",
                     "narrative_supplement": "enhancement", "video_emotions": ["happy", "hope"],
                     "emotion_alignment": "consistent", "emotional_richness": "rich",
                     "culture_elements": ["no culture element"], "cultural_relevance": "unrelated"}}
META = {"title": "Morning run by the sea", "audio_labels": ["Music", "Speech", "Wind", "Ocean", "Drum", "Guitar",
                                                            "Pop music", "Vehicle", "Bird", "Silence"]}


def test_describe_prompt_is_the_paper_prompt_then_the_tags():
    assert generation_prompt() == (PROMPTS / "annotation_generation.txt").read_text(encoding="utf-8").rstrip("\n")
    prompt = build_prompt(RECORD, META)
    assert prompt.startswith(generation_prompt() + "\n\n")
    assert "sync_answer.value: 00:10,A; 00:20,C" in prompt
    assert "video_emotions: happy, hope" in prompt and "title: Morning run by the sea" in prompt
    assert "music tags: Music, Speech, Wind, Ocean, Drum, Guitar, Pop music, Vehicle, Bird, Silence" in prompt


def test_validate_annotation():
    good = good_annotation(build_prompt(RECORD, META))
    assert validate_annotation(good, RECORD) == []
    assert any("missing sections: Cultural Relevance" in p
               for p in validate_annotation(good.split("\nCultural Relevance:")[0], RECORD))
    assert any("names a tag field" in p for p in validate_annotation(good + " (music_pace fast)", RECORD))
    assert any("raw sync point" in p for p in validate_annotation(good.replace("Around 00:10", "At 00:10,A"),
                                                                  RECORD))
    assert any("quotes the label" in p for p in validate_annotation(good + ' It is "precise".', RECORD))
    assert any("refers to the labels" in p for p in validate_annotation(good + " As the labels indicate.", RECORD))
    missing = validate_annotation(good.replace("Around 00:20", "Later"), RECORD)
    assert missing == ["the key timestamp 00:20 is not discussed in Rhythm and Synchronization"]
    without_points = {k: v for k, v in RECORD.items() if k != "sync_points"}  # read from the sync string
    assert validate_annotation(good.replace("Around 00:20", "Later"), without_points) == missing
    assert validate_annotation(good.replace("Around 00:20", "At the 20-second mark"), RECORD) == []
    assert validate_annotation("", RECORD) == ["the reply is empty"]


def test_missing_inputs_of_describe_instruct_mc_are_one_error_line(mini_dir, tmp_path, capsys, monkeypatch):
    for key, value in {"MODEL": "m", "BASE_URL": "http://127.0.0.1:9/v1", "API_KEY": "k"}.items():
        monkeypatch.setenv(f"HARMONYSET_ANNOTATOR_{key}", value)  # an endpoint is set, never called
    work, meta = tmp_path / "work", str(mini_dir / "release" / "HarmonySet_Train.json")
    assert cli_main(["annotate", "consensus", "--input", str(mini_dir / "release" / "annotators.csv"),
                     "--out", str(work)]) == 0
    cons_path, missing = str(work / "consensus.jsonl"), str(tmp_path / "nope")
    (tmp_path / "bad.json").write_text("{bad")
    cases = {
        ("describe", "--consensus", cons_path, "--metadata", meta, "--videos", missing, "--out", missing,
         "--dry-run"): f"{missing}: no such folder (--videos",
        ("describe", "--consensus", cons_path, "--metadata", missing, "--videos", str(mini_dir / "videos"),
         "--out", missing, "--dry-run"): f"{missing}: no such file (metadata",
        ("instruct", "--annotations", missing, "--consensus", cons_path, "--metadata", meta,
         "--out", missing): f"{missing}: no such file (annotations",
        ("instruct", "--annotations", cons_path, "--consensus", cons_path, "--metadata", str(tmp_path / "bad.json"),
         "--out", missing): "bad.json: not a JSON / JSON Lines metadata file",
        ("mc", "--annotations", missing, "--out", missing): f"{missing}: no such file (annotations",
        ("mc", "--annotations", cons_path, "--ids", missing, "--out", missing): f"{missing}: no such file (ids",
    }
    capsys.readouterr()
    for argv, message in cases.items():
        assert cli_main(["annotate", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("harmonyset: error: ") and message in err and "Traceback" not in err, (argv, err)


def test_describe_dry_run_shows_the_model_from_the_environment(mini_dir, tmp_path, monkeypatch, capsys):
    assert cli_main(["annotate", "consensus", "--input", str(mini_dir / "release" / "annotators.csv"),
                     "--out", str(tmp_path)]) == 0
    monkeypatch.setenv("HARMONYSET_ANNOTATOR_MODEL", "env-mllm")
    capsys.readouterr()
    assert cli_main(["annotate", "describe", "--consensus", str(tmp_path / "consensus.jsonl"), "--metadata",
                     str(mini_dir / "release" / "HarmonySet_Train.json"), "--videos", str(mini_dir / "videos"),
                     "--out", str(tmp_path / "a.jsonl"), "--dry-run", "--limit", "1", "--frames", "2"]) == 0
    assert [r["model"] for r in json.loads(capsys.readouterr().out)] == ["env-mllm"]


def test_describe_skips_fails_and_resumes(mini_dir, tmp_path):
    from harmonyset_hf.annotation.describe import Describer, read_annotations, read_metadata_files
    from harmonyset_hf.llm import LLMClient

    release = _release(mini_dir)
    ids = sorted(release)[:3]
    records = [{"id": i, "sync": release[i]["sync"], "labels": release[i]["labels"], "review": [],
                "sync_points": [p.as_dict() for p in parse_sync(release[i]["sync"])]} for i in ids]
    records[2] = {**records[2], "labels": {**records[2]["labels"], "music_pace": None},
                  "review": ["music_pace: no majority (fast / slow / medium)"]}
    metas = read_metadata_files([mini_dir / "release" / "HarmonySet_Train.json",
                                 mini_dir / "release" / "HarmonySet_Test.json"])
    metas[ids[1]] = {**metas[ids[1]], "video": "missing.mp4"}
    metas[ids[2]] = {**metas[ids[2]], "video": "../escape.mp4"}
    out = tmp_path / "annotations.jsonl"
    with FakeOpenAIServer(reply=annotator_reply) as srv:
        client = LLMClient(model="m", base_url=srv.base_url, api_key="k", cache_dir=str(tmp_path / "cache"),
                           max_attempts=1)
        describer = Describer(client, frames=2, max_attempts=1)
        todo, skipped = describer.plan(records, metas, mini_dir / "videos")
        assert [t[0]["id"] for t in todo] == ids[:1]
        why = {s["id"]: s["error"] for s in skipped}
        assert "'missing.mp4' not found" in why[ids[1]]
        assert "in the review queue" in why[ids[2]] and "escapes the video root" in why[ids[2]]
        srv.inject("500", times=1)  # the call fails for good (1 attempt): the item is failed, not written
        first = describer.run(todo, out, progress=False)
        assert first["failed"] == 1 and read_annotations(out) == {}
        # with one ask only, an invalid first reply fails the item and the reasons are kept
        second = describer.run(todo, out, progress=False)
        flawed_first_reply = len(release[ids[0]]["metadata"]["title"]) % 3 != 2  # see annotator_reply
        assert second["failed"] == flawed_first_reply
        last = list(read_jsonl(out))[-1]
        assert bool(last["annotation"]) != flawed_first_reply
        if flawed_first_reply:
            assert last["error"].startswith("invalid reply") and last["last_reply"]
        describer.max_attempts = 3
        third = describer.run(todo, out, progress=False)
        assert set(read_annotations(out)) == set(ids[:1]) and third["failed"] == 0
        served = srv.total_served
        assert describer.run(todo, out, progress=False)["already_done"] == 1 and srv.total_served == served
        client.close()


# --------------------------------------------------------------------------------------------
# MC
# --------------------------------------------------------------------------------------------
def test_mc_prompt_parse_and_checks():
    annotation = good_annotation(build_prompt(RECORD, META))
    prompt = curation_prompt(annotation)
    head, tail = curation_template().split("{input_subtitle}")
    assert prompt == head + annotation + tail
    assert curation_template() == (PROMPTS / "mc_curation.txt").read_text(encoding="utf-8").rstrip("\n")
    blocks = parse_mc_reply(mc_reply_text(annotation, None))
    assert set(blocks) == set(schema.ASPECTS) and all(b["answer"] == "A" for b in blocks.values())
    assert blocks["rhythm"]["options"][0] == find_sections(annotation).sections["rhythm"]
    assert check_block(blocks["theme"], 0.95) == []
    dup = parse_mc_reply(mc_reply_text(annotation, "duplicate"))["theme"]
    assert "two options are the same" in check_block(dup, 0.95)
    short = {"options": ["a" * 100, "b" * 40, "c" * 100, "d" * 160], "answer": "A"}
    assert "B (40 chars), D (160 chars)" in check_block(short, None)[0]
    assert "not faithful" in check_block(blocks["theme"], 0.2)[0]
    with pytest.raises(MCParseError, match="Emotion: expected options A, B, C, D in order"):
        parse_mc_reply(mc_reply_text(annotation, None).replace("\nD.", "\nE.", 3))
    with pytest.raises(MCParseError, match="missing sections"):
        parse_mc_reply("Rhythm and Synchronization:\nA.x\nB.y\nC.z\nD.w\nCorrect Answer: A")


def test_mc_faithfulness_uses_the_packaged_encoder(tmp_path):
    from harmonyset_hf.annotation.mc import MCCurator

    annotation = good_annotation(build_prompt(RECORD, META))
    curator = MCCurator(model="unused", base_url="http://127.0.0.1:9/v1", api_key="unused", cache_dir=str(tmp_path))
    blocks, problems = curator.validate(mc_reply_text(annotation, None), annotation)
    assert problems == [] and all(b["similarity"] > 0.99 for b in blocks.values())
    blocks, problems = curator.validate(mc_reply_text(annotation, "unfaithful"), annotation)
    assert blocks is None and len(problems) == 4 and all("is not faithful to the annotation" in p for p in problems)
    curator.client.close()


def test_mc_items_from_a_release_file_or_describe_output(mini_dir, tmp_path):
    from harmonyset_hf.annotation.instruct import read_ids
    from harmonyset_hf.annotation.mc import load_items

    test_file = mini_dir / "release" / "HarmonySet_Test.json"
    release = json.loads(test_file.read_text())
    items = load_items(test_file)
    assert [it["id"] for it in items] == [it["id"] for it in release]
    assert all(it["video"] == rel["video"] and it["annotation"] == rel["conversations"][1]["value"]
               for it, rel in zip(items, release))
    (tmp_path / "ids.json").write_text(json.dumps([release[1]["id"]]))
    (tmp_path / "ann.jsonl").write_text(json.dumps({"id": release[1]["id"], "annotation": "x"}) + "\n"
                                        + json.dumps({"id": release[0]["id"], "annotation": None}) + "\n")
    picked = load_items(tmp_path / "ann.jsonl", [test_file], read_ids(tmp_path / "ids.json"))
    assert picked == [{"id": release[1]["id"], "annotation": "x", "video": release[1]["video"]}]


def test_rebalance_spreads_letters_uniformly_and_keeps_the_correct_text():
    questions = [{"id": f"q{i}", "options": [f"opt{i}-{j}" for j in range(4)], "answer": "A"} for i in range(4 * 7 + 2)]
    out = rebalance(questions, seed=5)
    counts = [sum(q["answer"] == x for q in out) for x in "ABCD"]
    assert max(counts) - min(counts) <= 1 and sum(counts) == len(questions)
    for before, after in zip(questions, out):
        assert after["options"]["ABCD".index(after["answer"])] == before["options"][0]
        assert [o for o in after["options"] if o != before["options"][0]] == before["options"][1:]
        assert after["original_answer"] == "A"
    assert rebalance(questions, seed=5) == out and rebalance(questions, seed=6) != out


def test_instruct_template_choice_is_seeded_per_item():
    templates = instruction_templates()
    assert list(templates) == json.loads((PROMPTS / "instruction_templates.json").read_text(encoding="utf-8"))
    picks = [choose_template(f"hs{i:06d}", seed=0) for i in range(200)]
    assert picks == [choose_template(f"hs{i:06d}", seed=0) for i in range(200)]
    assert len(set(picks)) == len(templates)  # every template is used over 200 items
    assert picks != [choose_template(f"hs{i:06d}", seed=1) for i in range(200)]


# --------------------------------------------------------------------------------------------
# Music filter with a tiny random-weight AST
# --------------------------------------------------------------------------------------------
def _tiny_ast(path: Path, music_bias: float) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    from harmonyset_hf.annotation.music_filter import audioset_labels

    labels = audioset_labels()
    config = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       num_labels=len(labels), id2label=dict(enumerate(labels)),
                       label2id={name: i for i, name in enumerate(labels)})
    torch.manual_seed(0)
    model = ASTForAudioClassification(config)
    with torch.no_grad():
        model.classifier.dense.bias[labels.index("Music")] = music_bias
    model.save_pretrained(path)
    with warnings.catch_warnings():  # AST's default 128 mel bins leave some filters empty (transformers warns)
        warnings.simplefilter("ignore", UserWarning)
        ASTFeatureExtractor().save_pretrained(path)
    return path


def test_audioset_labels_data():
    from harmonyset_hf.annotation.music_filter import audioset_labels

    labels = audioset_labels()
    assert len(labels) == 527 == len(set(labels))
    assert labels[0] == "Speech" and labels[137] == "Music" and labels[1] == "Male speech, man speaking"
    assert labels[109] == "Roaring cats (lions, tigers)" and labels[526] == "Field recording"


def test_music_filter_keeps_music_in_top2_and_writes_top10(mini_dir, tmp_path, capsys):
    from harmonyset_hf.annotation.music_filter import MusicFilter

    videos = tmp_path / "videos"
    videos.mkdir()
    for src in sorted((mini_dir / "videos").glob("*.mp4"))[:2]:
        (videos / src.name).symlink_to(src)
    keep = _tiny_ast(tmp_path / "ast-music", 20.0)
    out = tmp_path / "filter.jsonl"
    assert cli_main(["annotate", "filter", "--videos", str(videos), "--out", str(out), "--model", str(keep)]) == 0
    rows = list(read_jsonl(out))
    assert [r["id"] for r in rows] == sorted(p.stem for p in videos.glob("*.mp4"))
    for r in rows:
        assert r["kept"] and r["music_rank"] == 1 and r["audio_labels"][0] == "Music"
        assert len(r["audio_labels"]) == 10 and r["audio_scores"] == sorted(r["audio_scores"], reverse=True)
    assert "2 kept, 0 dropped" in capsys.readouterr().out
    assert cli_main(["annotate", "filter", "--videos", str(videos), "--out", str(out), "--model", str(keep)]) == 0
    assert len(list(read_jsonl(out))) == 2  # resumed: nothing screened twice
    drop = MusicFilter(str(_tiny_ast(tmp_path / "ast-quiet", -20.0)))
    wave = np.random.default_rng(0).normal(0, 0.1, 16000 * 25).astype(np.float32)
    verdict = drop.screen_audio(wave)
    assert not verdict["kept"] and verdict["music_rank"] == 527 and "Music" not in verdict["audio_labels"]


# --------------------------------------------------------------------------------------------
# The chain: annotators.csv -> consensus -> review -> describe -> instruct + mc -> build -> load_dataset
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_end_to_end_from_annotators_to_load_dataset(mini_dir, tmp_path, monkeypatch, capsys):
    from harmonyset_hf.data.hub import load

    release = _release(mini_dir)
    work = tmp_path / "work"
    assert cli_main(["annotate", "consensus", "--input", str(mini_dir / "release" / "annotators.csv"),
                     "--out", str(work)]) == 0
    sheet = work / "sheet.csv"
    assert cli_main(["annotate", "review", "--consensus", str(work / "consensus.jsonl"), "--export", str(sheet)]) == 0
    _fill_sheet(sheet, release, lambda i: "High")
    assert cli_main(["annotate", "review", "--consensus", str(work / "consensus.jsonl"), "--apply", str(sheet),
                     "--out", str(work)]) == 0
    assert "High 100%" in capsys.readouterr().out

    # a handful of items: 4 train, 2 test, with key points and review-queue items among them
    reviewed = {r["id"]: r for r in read_jsonl(work / "reviewed.jsonl")}
    queue = {r["id"] for r in read_jsonl(work / "consensus.jsonl") if r["review"]}
    split = {it["id"]: name for name in ("Train", "Test")
             for it in json.loads((mini_dir / "release" / f"HarmonySet_{name}.json").read_text())}
    train = sorted((i for i in split if split[i] == "Train"), key=lambda i: (i not in queue, i))[:4]
    test = sorted(i for i in split if split[i] == "Test")[:2]
    assert queue & set(train)
    chosen = train + test
    subset = work / "subset.jsonl"
    subset.write_text("".join(json.dumps(reviewed[i]) + "\n" for i in chosen))
    assert any(reviewed[i]["sync_points"] for i in chosen)
    (work / "test_ids.txt").write_text("\n".join(test) + "\n")
    meta = [str(mini_dir / "release" / "HarmonySet_Train.json"), str(mini_dir / "release" / "HarmonySet_Test.json")]

    monkeypatch.setenv("HARMONYSET_ANNOTATOR_API_KEY", "sk-annotator-SECRET-123456")
    monkeypatch.setenv("HARMONYSET_ANNOTATOR_MODEL", "local-mllm")
    monkeypatch.setenv("HARMONYSET_CACHE_DIR", str(tmp_path / "cache"))
    with FakeOpenAIServer(reply=annotator_reply, keep_bodies=True) as srv:
        monkeypatch.setenv("HARMONYSET_ANNOTATOR_BASE_URL", srv.base_url)
        ann = work / "annotations.jsonl"
        describe = ["annotate", "describe", "--consensus", str(subset), "--videos", str(mini_dir / "videos"),
                    "--out", str(ann), "--frames", "4", *sum((["--metadata", m] for m in meta), [])]
        assert cli_main([*describe, "--dry-run", "--limit", "1"]) == 0
        dry = json.loads(capsys.readouterr().out)
        assert srv.total_received == 0 and len(dry) == 1
        parts = dry[0]["messages"][0]["content"]
        assert sum(p["type"] == "image_url" for p in parts) == 4 and parts[-1]["text"].startswith(generation_prompt())
        assert "base64 chars" in json.dumps(parts) and "data:image" not in json.dumps(parts)

        assert cli_main(describe) == 0
        out = capsys.readouterr().out
        first_asks = [b for b in srv.stats.bodies if not any(m["role"] == "assistant" for m in b["messages"])]
        reasks = len(srv.stats.bodies) - len(first_asks)
        assert len(first_asks) == len(chosen) and reasks > 0 and f"{reasks} after a re-ask" in out
        media = first_asks[0]["messages"][0]["content"]
        assert sum(p["type"] == "image_url" for p in media) == 4 and sum(p["type"] == "input_audio" for p in media) == 1
        annotations = {r["id"]: r for r in read_jsonl(ann) if r["annotation"]}
        assert set(annotations) == set(chosen)
        for item_id, rec in annotations.items():
            assert validate_annotation(rec["annotation"], reviewed[item_id]) == []
        served = srv.total_served
        assert cli_main(describe) == 0 and srv.total_served == served  # resumed: nothing asked again

        assert cli_main(["annotate", "instruct", "--annotations", str(ann), "--consensus", str(subset),
                         "--out", str(work / "release"), "--test-ids", str(work / "test_ids.txt"),
                         *sum((["--metadata", m] for m in meta), [])]) == 0
        assert cli_main(["annotate", "mc", "--annotations", str(ann), "--ids", str(work / "test_ids.txt"),
                         "--out", str(work / "release"), "--seed", "7",
                         *sum((["--metadata", m] for m in meta), [])]) == 0
        mc_asks = [b for b in srv.stats.bodies if request_text(b).startswith("Please design")]
        assert len(mc_asks) > len(test)  # flawed first replies were asked again
    secret_free = [p for p in tmp_path.rglob("*") if p.is_file() and b"SECRET" in p.read_bytes()]
    assert secret_free == []
    manifest = json.loads((work / "release" / "manifests" / "mc.json").read_text())
    assert manifest["seed"] == 7 and manifest["answer_letters_before"]["A"] == 4 * len(test)
    after = manifest["answer_letters_after"]
    assert max(after.values()) - min(after.values()) <= 1 and manifest["failures"] == []

    hub = tmp_path / "hub"
    assert cli_main(["build", "--release", str(work / "release"), "--videos", str(mini_dir / "videos"),
                     "--out", str(hub)]) == 0
    rows = list(load(hub, "instruct")) + list(load(hub, "oe"))
    assert sorted(r["id"] for r in rows) == sorted(chosen)
    templates = {t.removeprefix("<video>\n").strip() for t in instruction_templates()}
    for row in rows:
        assert row["instruction"] in templates
        assert row["annotation"].startswith("Rhythm and Synchronization:")
        assert find_sections(row["annotation"]).sections["rhythm"] == row["rhythm"]
        for key, value in reviewed[row["id"]]["labels"].items():
            assert cons.value_key(row["labels"][key]) == cons.value_key(value)
        assert row["sync"] == reviewed[row["id"]]["sync"]
        assert row["metadata"]["title"] == release[row["id"]]["metadata"]["title"]
    assert {r["id"] for r in load(hub, "oe")} == set(test)
    mc_rows = list(load(hub, "mc"))
    assert len(mc_rows) == 4 * len(test)
    for q in mc_rows:
        section = find_sections(annotations[q["id"]]["annotation"]).sections[q["aspect"]]
        assert q["options"]["ABCD".index(q["answer"])] == section  # the correct option survived re-balancing
