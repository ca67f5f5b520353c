"""Hostile text inputs: judge replies that defeat a regex, broken release files, outputs that are not ours."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from release_fixtures import item

from harmonyset_hf.cli import main
from harmonyset_hf.data.release import ReleaseError, iter_json_items
from harmonyset_hf.evaluation.scoring import parse_rating
from harmonyset_hf.judge import ScoreParseError, parse_judge_scores

# Replies built to make a backtracking regex work hard (long runs of what a pattern starts or repeats on).
N = 16_000
HOSTILE = {"digits": "1" * N, "dotted digits": "1." + "1" * N, "letters": "a" * N, "labels": "Rhythm " * (N // 7),
           "labels without numbers": "Rhythm score " * (N // 13), "dots": "1.1." * (N // 4),
           "colons": "1:" * (N // 2), "rating words": "rating " * (N // 7), "dashes": "a -" * (N // 3),
           "label characters": "Emotion&/- " * (N // 11), "newlines": "\n" * N, "numbered lines": "\n1" * (N // 2),
           "spaces": " " * N + "x", "out of": "1 out of " * (N // 9)}


def _seconds(fn, text: str) -> float:
    start = time.perf_counter()
    try:
        fn(text)
    except ScoreParseError:
        pass
    return time.perf_counter() - start


@pytest.mark.parametrize("fn", [parse_judge_scores, parse_rating], ids=["judge", "rating"])
def test_score_parsers_take_milliseconds_on_16_kb_of_hostile_text(fn):
    """Every pattern is linear: 16 KB built against backtracking parses in well under a second (was 15-40 s)."""
    slow = {name: round(s, 3) for name, text in HOSTILE.items() if (s := _seconds(fn, text)) > 0.5}
    assert not slow, f"slow on: {slow}"


@pytest.mark.parametrize("fn", [parse_judge_scores, parse_rating], ids=["judge", "rating"])
def test_a_50_mb_reply_is_refused_at_once(fn):
    """How much of a reply is parsed is bounded: 50 MB is refused as too long, not scanned."""
    assert _seconds(fn, "7 " + "x" * (50 << 20)) < 1.0
    with pytest.raises(ScoreParseError, match="too long"):
        parse_judge_scores("7,6,8,5" + " " * (50 << 20))
    assert parse_rating("7" + " " * (50 << 20)).value is None


@pytest.mark.parametrize("reply", ["7,6,-8,5", "Rhythm: 7, Theme: 6, Emotion: -8, Culture: 5", "7, 6, −8, 5",
                                   "7,6,11,5", "0,6,8,5"])
def test_the_judge_parser_refuses_negative_and_out_of_range_scores(reply):
    """`7,6,-8,5` is not emotion 8: a negative or off-scale number fails the reply."""
    with pytest.raises(ScoreParseError, match="out of range"):
        parse_judge_scores(reply)
    assert parse_judge_scores("7,6,8,5")["emotion"] == 8.0
    assert parse_judge_scores("Rhythm - 7, Theme - 6, Emotion - 8, Culture - 5")["emotion"] == 8.0


@pytest.mark.parametrize("reply", ["-8", "Rating: -8", "I'd give it -7/10", "−3"])
def test_the_rating_parser_refuses_negative_numbers(reply):
    """A negative number is no rating (it used to read as its absolute value)."""
    assert parse_rating(reply).value is None
    assert parse_rating("Rating: 8").value == 8.0 and parse_rating("Rating - 8").value == 8.0


def _error_lines(capsys) -> list[str]:
    """The CLI's error lines on stderr (progress bars left out); a traceback would fail the caller's count."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("harmonyset: error:")]


def _release_list(path: Path, n: int, bad: int | None = None, pad: int = 0) -> Path:
    """A JSON list of ``n`` items, one per line; item ``bad`` misses a comma between two fields."""
    lines = []
    for i in range(n):
        text = json.dumps(item(f"it{i}", annotation="word " * pad or "x"))
        if i == bad:
            text = text.replace('", "conversations"', '" "conversations"', 1)
        lines.append(text)
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")
    return path


def test_a_bad_item_is_reported_at_once_by_position_line_and_id(tmp_path):
    """The reader stops at the bad item (no re-reading of the rest: a 2 GB release used to never finish)."""
    path = _release_list(tmp_path / "HarmonySet_Train.json", 4000, bad=3, pad=800)  # ~17 MB after the bad item
    start = time.perf_counter()
    with pytest.raises(ReleaseError) as err:
        list(iter_json_items(path, chunk_size=4096))
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "\n" not in message and "HarmonySet_Train.json" in message
    assert "list item 3" in message and "line 5" in message and "'it3'" in message


def test_a_large_item_is_read_in_linear_time(tmp_path):
    """An item much larger than the read chunk is decoded once per doubling, not once per chunk."""
    path = _release_list(tmp_path / "HarmonySet_Train.json", 3, pad=400_000)  # items of 2 MB, chunks of 4 KB
    start = time.perf_counter()
    assert [i["id"] for i in iter_json_items(path, chunk_size=4096)] == ["it0", "it1", "it2"]
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("kind", ["deep list", "deep object", "deep JSON Lines", "latin-1", "binary"])
def test_deep_nesting_and_non_utf8_bytes_are_one_line_errors(kind, tmp_path, capsys):
    """JSON nested a million deep and bytes that are not UTF-8 end in one error line, not a traceback."""
    release = tmp_path / "release"
    release.mkdir()
    path = release / ("HarmonySet_Train.jsonl" if "Lines" in kind else "HarmonySet_Train.json")
    deep = 1_000_000
    data = {"deep list": b"[" + b"[" * deep + b"]" * deep + b"]",
            "deep object": b'{"data": ' + b'{"a":' * deep + b"1" + b"}" * deep + b"}",
            "deep JSON Lines": b'{"id": "x"}\n' + b"[" * deep + b"]" * deep + b"\n",
            "latin-1": json.dumps([item("caf\u00e9")], ensure_ascii=False).encode("latin-1"),
            "binary": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"}[kind]
    path.write_bytes(data)
    with pytest.raises(ReleaseError):
        list(iter_json_items(path))
    code = main(["build", "--release", str(release), "--annotations-only", "--out", str(tmp_path / "hub")])
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1
    assert ("nested too deeply" in err[0]) if "deep" in kind else ("not UTF-8" in err[0])


def test_eval_out_naming_a_file_is_a_one_line_error(hub_dir, tmp_path, capsys):
    """`eval mc --out FILE` says the output is a file (it used to end in a FileExistsError traceback)."""
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"question_id": "x:rhythm", "response": "A"}) + "\n")
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    code = main(["eval", "mc", "--data", str(hub_dir), "--predictions", str(preds), "--out", str(out)])
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1 and "is a file" in err[0]
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("content", ["my notes, not predictions", "my notes, not predictions\n"])
def test_predict_never_cuts_a_line_it_did_not_write(hub_dir, tmp_path, capsys, content):
    """`predict --out` on a one-line non-JSON file refuses with a clear error and leaves the file as it was."""
    out = tmp_path / "notes.txt"
    out.write_text(content)
    code = main(["predict", "--data", str(hub_dir), "--config", "mc", "--model", "baseline-random",
                 "--limit", "2", "--out", str(out)])
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1 and "notes.txt" in err[0]
    assert out.read_text() == content


def test_atomic_writes_get_the_permissions_a_plain_write_would(tmp_path):
    """A new file gets 666 less the umask (not mkstemp's private 600: results and package data are read by
    others); a replaced file keeps its own permissions."""
    from harmonyset_hf.io import atomic_write_bytes

    old = os.umask(0o022)
    try:
        fresh = atomic_write_bytes(tmp_path / "results.json", b"{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_bytes(tmp_path / "private.json", b"{}").stat().st_mode) == 0o600
        fresh.chmod(0o640)
        atomic_write_bytes(fresh, b"[]")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640 and fresh.read_bytes() == b"[]"
    finally:
        os.umask(old)
