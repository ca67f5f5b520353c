"""data/release.py: tolerant reading of release files into canonical records, and every skip reason."""

from __future__ import annotations

import json

import pytest
from release_fixtures import ANNOTATION, item, make_clip, make_release, mc_item

from harmonyset_hf import schema
from harmonyset_hf.data.release import (
    ReleaseError,
    discover_files,
    iter_json_items,
    parse_answer,
    parse_options,
    read_release,
)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name in ("a.mp4", "b.mp4", "c.mp4", "sub/d.mp4", "e.mkv"):
        make_clip(root / name, seconds=0.5)
    return root


def write(path, items, jsonl=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(i) + "\n" for i in items) if jsonl else json.dumps(items, indent=1)
    path.write_text(text, encoding="utf-8")
    return path


def reasons(release):
    return {p.id: p.reason for p in release.problems}


def test_clean_release_gives_canonical_records(tmp_path):
    release_dir, videos_dir = make_release(tmp_path, train=3, test=2)
    rel = read_release(release_dir, videos_dir)
    assert not rel.problems
    assert [len(rel.records[c]) for c in schema.CONFIGS] == [3, 2, 8]
    rec = rel.records["instruct"][0]
    assert set(rec) == set(schema.features("instruct"))
    assert rec["category"] == "life_emotion" and rec["subcategory"] == "Family"
    assert rec["instruction"] == "Analyze the video and its music."
    assert rec["rhythm"].startswith("The cuts land") and rec["culture"] == "No specific cultural element."
    assert rec["sync_points"] == [{"time": 5.0, "code": "A"}] and rec["sync"] == "00:05,A"
    assert rec["labels"]["video_emotions"] == ["happy", "hope"]
    assert rec["metadata"]["video_width"] == 64 and rec["metadata"]["youtube_id"] == "yttr000"
    assert rec["video"] == str((videos_dir / "tr000.mp4").resolve())
    mc = rel.records["mc"]
    assert [r["question_id"] for r in mc[:4]] == [f"te000:{a}" for a in schema.ASPECTS]
    assert mc[1]["answer"] == "B" and mc[0]["options"] == ["one", "two", "three", "four"]
    assert mc[0]["category"] == "knowledge" and mc[0]["video"] == rel.records["oe"][0]["video"]


def test_every_skip_reason_is_reported_and_the_rest_goes_on(tmp_path, videos):
    items = [
        item("a", video="a.mp4"),
        item("x", video="missing.mp4"),  # neither its file nor one named by its id
        item("a", video="c.mp4"),  # duplicate id
        item("c", category="Cooking Shows"),
        item("d", sync="00:10;A"),
        item("e", annotation="Rhythm and Synchronization: ok.\nTheme and Content: ok."),
        item("f", video="../videos/a.mp4"),
        item("g", video=str(videos / "b.mp4")),  # absolute path, even inside the root
        item("h", subcategory="Family", category="Knowledge"),
    ]
    rel = read_release(write(tmp_path / "HarmonySet_Train.json", items), videos)
    got = {(p.id, p.reason.split(":")[0]) for p in rel.problems}
    assert got == {("x", "missing video"), ("a", "duplicate id"), ("c", "unknown category"),
                   ("d", "malformed sync"), ("e", "missing sections"), ("f", "video path escapes the video root"),
                   ("g", "video path escapes the video root"), ("h", "unknown subcategory")}
    assert [r["id"] for r in rel.records["instruct"]] == ["a"]
    problem = next(p for p in rel.problems if p.id == "c")
    assert "closest" in problem.reason and problem.source == "HarmonySet_Train.json[3]"
    assert "Emotion" in reasons(rel)["e"] and "Cultural Relevance" in reasons(rel)["e"]
    report = rel.report()
    assert report["skipped_count"] == 8 and report["skipped_by_reason"]["video path escapes the video root"] == 2


def test_strict_stops_at_the_first_problem(tmp_path, videos):
    path = write(tmp_path / "train.json", [item("a"), item("zz", video="nope.mp4"), item("b")])
    with pytest.raises(ReleaseError, match=r"train.json\[1\] id='zz'.*missing video"):
        read_release(path, videos, strict=True)


def test_jsonl_aliases_and_video_forms(tmp_path, videos):
    flat = {"video_id": "b", "vid": "ignored", "path": "b", "prompt": "<video>\nDescribe.",  # bare id as video
            "response": ANNOTATION, "Category": "Art&Shows", "sub_category": "dance", "length": "12.5",
            "key_points": [{"time": 3, "code": "b"}], "music_pace": "Fast", "video_emotions": "sad|fear",
            "meta": {"width": "320", "height": 180, "audio_labels": "Music|Speech"}}
    rows = [
        {**item("a"), "video": "videos/../a.mp4"},  # '..' is refused even when it would stay inside
        flat,
        {"youtube_id": "d", "video": "sub/d.mp4", "conversations": item("x")["conversations"]},  # a path
        {"id": "e", "video": "e", "annotation": ANNOTATION},  # a bare id with another extension
        {"id": 7, "file_name": "c.mp4", "annotation": ANNOTATION},  # numeric id, a file name
    ]
    rel = read_release(write(tmp_path / "HarmonySet_Test.jsonl", rows, jsonl=True), videos)
    assert [p.id for p in rel.problems] == ["a"]
    by_id = {r["id"]: r for r in rel.records["oe"]}
    assert set(by_id) == {"b", "d", "e", "7"}
    b = by_id["b"]
    assert b["video"].endswith("b.mp4") and b["instruction"] == "Describe."
    assert (b["category"], b["subcategory"], b["duration"]) == ("art_performance", "Dance", 12.5)
    assert b["sync_points"] == [{"time": 3.0, "code": "B"}] and b["sync"] == "00:03,B"
    assert b["labels"]["music_pace"] == "fast" and b["labels"]["video_emotions"] == ["sad", "fear"]
    assert b["metadata"]["video_width"] == 320 and b["metadata"]["audio_labels"] == ["Music", "Speech"]
    assert by_id["d"]["video"].endswith("sub/d.mp4") and by_id["e"]["video"].endswith("e.mkv")
    assert by_id["d"]["category"] is None and rel.missing_fields["category"] == 3


def test_field_map_for_an_unseen_layout(tmp_path, videos):
    rows = [{"clip": {"uid": "a", "file": "a.mp4"}, "text": {"analysis": ANNOTATION, "ask": "Rate it."},
             "taxonomy": ["Sports & Fitness", "Fitness"], "tags": {"pace": "slow"}, "secs": 9}]
    field_map = {"id": "clip.uid", "video": "clip.file", "annotation": "text.analysis",
                 "instruction": "text.ask", "category": "taxonomy_cat", "duration": "secs",
                 "music_pace": "tags.pace"}
    rows[0]["taxonomy_cat"] = rows[0]["taxonomy"][0]
    rel = read_release(write(tmp_path / "train.json", rows), videos, field_map=json.dumps(field_map))
    assert not rel.problems
    rec = rel.records["instruct"][0]
    assert (rec["id"], rec["instruction"], rec["category"], rec["duration"]) == ("a", "Rate it.", "sports_outdoors",
                                                                                  9.0)
    assert rec["labels"]["music_pace"] == "slow" and rec["video"].endswith("a.mp4")
    with pytest.raises(ReleaseError, match="unknown fields"):
        read_release(tmp_path / "train.json", videos, field_map="identifier=clip.uid")
    simple = "id=clip.uid,video=clip.file,annotation=text.analysis"
    rel = read_release(tmp_path / "train.json", videos, field_map=simple)
    assert rel.records["instruct"][0]["id"] == "a"
    # a broken map is an error, never silently an empty one
    for bad, why in (('{"id": ', "not valid JSON"), ("map.json", "neither a JSON object"), ('["id"]', "JSON object")):
        with pytest.raises(ReleaseError, match=why):
            read_release(tmp_path / "train.json", videos, field_map=bad)


def test_mc_formats_are_tolerated_and_bad_questions_reported(tmp_path, videos):
    lines = "A. one\nB. two\nC. three\nD. four"
    flat_rows = [
        {"question_id": "a:emotion", "question": "Which mood?", "choices": ["one", "two", "three", "four"],
         "answer": "(c)", "video": "a.mp4"},
        {"id": "a", "aspect": "Culture", "question": "Which culture?\n" + lines, "answer": "four", "video": "a.mp4"},
        {"id": "a", "aspect": "Theme & Content", "question": "Which theme?", "options": lines, "answer": "B. two",
         "video": "a.mp4"},
        {"id": "a", "aspect": "Theme & Content", "question": "Again?", "options": lines, "answer": "A",
         "video": "a.mp4"},  # duplicate question_id
        {"id": "a", "aspect": "Rhythm", "question": "Beat?", "options": ["x", "y", "z"], "answer": "A",
         "video": "a.mp4"},  # 3 options
        {"id": "a", "aspect": "Rhythm", "question": "Beat?", "options": lines, "answer": "E", "video": "a.mp4"},
        {"id": "a", "aspect": "Harmony", "question": "?", "options": lines, "answer": "A", "video": "a.mp4"},
    ]
    write(tmp_path / "rel" / "HarmonySet_MC.json", flat_rows)
    write(tmp_path / "rel" / "HarmonySet_Test.json", [item("a")])
    rel = read_release(tmp_path / "rel", videos)
    rows = {r["question_id"]: r for r in rel.records["mc"]}
    assert set(rows) == {"a:emotion", "a:culture", "a:theme"}
    assert rows["a:emotion"]["answer"] == "C" and rows["a:culture"]["answer"] == "D"
    assert rows["a:culture"]["question"] == "Which culture?" and rows["a:theme"]["options"][1] == "two"
    assert rows["a:theme"]["category"] == "life_emotion"  # borrowed from the OE record
    kinds = sorted(p.reason.split(":")[0].split(" ")[0] for p in rel.problems)
    assert kinds == ["bad", "bad", "bad", "duplicate"]


def test_option_and_answer_parsers():
    assert parse_options({"a": "x", "B": "y", "c.": "z", "D": "w"}) == ["x", "y", "z", "w"]
    assert parse_options(["A. x", "B) y", "(C) z", "D: w"]) == ["x", "y", "z", "w"]
    assert parse_options("(A) x\n(B) y\n(C) z\n(D) w") == ["x", "y", "z", "w"]
    assert parse_answer(2, ["x", "y", "z", "w"]) == "C" and parse_answer("d", ["x", "y", "z", "w"]) == "D"
    for bad in ({"A": "x"}, "A. x\nC. y", ["x", ""], 5):
        with pytest.raises(Exception, match="bad options"):
            parse_options(bad)


def test_streamed_json_list_and_other_containers(tmp_path):
    items = [item(f"i{n}", annotation=ANNOTATION + " " + "word " * 50) for n in range(40)]
    path = write(tmp_path / "big.json", items)
    assert [i["id"] for i in iter_json_items(path, chunk_size=512)] == [f"i{n}" for n in range(40)]
    path.write_text(path.read_text()[:-200], encoding="utf-8")  # truncated
    with pytest.raises(ReleaseError, match="not valid JSON|not closed"):
        list(iter_json_items(path, chunk_size=512))
    wrapped = write(tmp_path / "wrapped.json", {"data": items[:2]})
    assert len(list(iter_json_items(wrapped))) == 2
    by_id = tmp_path / "map.json"
    by_id.write_text(json.dumps({"x1": {"video": "a.mp4"}, "x2": {"video": "b.mp4"}}), encoding="utf-8")
    assert [i["id"] for i in iter_json_items(by_id)] == ["x1", "x2"]


def test_discover_files(tmp_path):
    for name in ("HarmonySet_Train.json", "HarmonySet_Test.json", "HarmonySet_MC.jsonl", "annotators.csv"):
        (tmp_path / name).write_text("[]", encoding="utf-8")
    files = discover_files(tmp_path)
    assert {r: [p.name for p in ps] for r, ps in files.items()} == {
        "train": ["HarmonySet_Train.json"], "test": ["HarmonySet_Test.json"], "mc": ["HarmonySet_MC.jsonl"]}
    with pytest.raises(ReleaseError, match="does not exist"):
        discover_files(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="no release files"):
        discover_files(tmp_path / "empty")


def test_without_videos_the_reference_is_kept(tmp_path):
    path = write(tmp_path / "train.json", [item("a", video="clips/a.mp4"), item("b", video="/abs/b.mp4")])
    rel = read_release(path, None, check_videos=False)
    assert [r["video"] for r in rel.records["instruct"]] == ["clips/a.mp4"]
    assert "escapes" in rel.problems[0].reason


def test_mc_item_fixture_shape():
    assert len(mc_item("x")["questions"]) == 4
