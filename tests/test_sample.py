"""HarmonySet-mini (`harmonyset sample`): real media, release format, planted truth in the signal, determinism."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harmonyset_hf.cli import main
from harmonyset_hf.mini.sample import make_sample, plan_items
from harmonyset_hf.schema import (
    ASPECT_NAMES,
    CATEGORIES,
    LABELS,
    MULTI_LABELS,
    OPTION_LETTERS,
    normalize_category,
    normalize_label,
    normalize_subcategory,
)
from harmonyset_hf.text import format_timestamp, parse_sync, split_sections

RELEASE_FILES = ("HarmonySet_Train.json", "HarmonySet_Test.json", "HarmonySet_MC.json", "annotators.csv")


def _load(mini_dir: Path):
    rel = mini_dir / "release"
    train = json.loads((rel / "HarmonySet_Train.json").read_text())
    test = json.loads((rel / "HarmonySet_Test.json").read_text())
    truth = json.loads((mini_dir / "truth.json").read_text())["items"]
    return train, test, truth


def _ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                          str(path)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _audio_mono(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = [f.to_ndarray() for f in c.decode(stream)]
        return np.concatenate(chunks, axis=1).mean(axis=0), stream.rate


def _grey_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)])


def test_determinism_same_seed_same_bytes(tmp_path):
    a = make_sample(tmp_path / "a", n=3, seed=7, workers=1, progress=False)
    b = make_sample(tmp_path / "b", n=3, seed=7, workers=2, progress=False)
    for name in RELEASE_FILES:
        assert (tmp_path / "a/release" / name).read_bytes() == (tmp_path / "b/release" / name).read_bytes(), name
    assert (tmp_path / "a/truth.json").read_bytes() == (tmp_path / "b/truth.json").read_bytes()
    videos = sorted(p.name for p in (tmp_path / "a/videos").glob("*.mp4"))
    assert len(videos) == 3
    for name in videos:  # one encoder thread, no x264 lookahead, bitexact muxing: identical mp4 bytes
        assert (tmp_path / "a/videos" / name).read_bytes() == (tmp_path / "b/videos" / name).read_bytes(), name
    assert a["total_duration_s"] == b["total_duration_s"]
    assert plan_items(3, 7) == plan_items(3, 7) != plan_items(3, 8)


def test_every_mp4_has_h264_and_aac_and_the_json_duration(mini_dir):
    train, test, truth = _load(mini_dir)
    assert len(train) + len(test) == 24
    for rec in train + test:
        probe = _ffprobe(mini_dir / "videos" / rec["video"])
        kinds = Counter(s["codec_type"] for s in probe["streams"])
        assert kinds == {"video": 1, "audio": 1}, rec["id"]
        video = next(s for s in probe["streams"] if s["codec_type"] == "video")
        audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
        assert video["codec_name"] == "h264" and audio["codec_name"] == "aac", rec["id"]
        assert audio["channels"] == 2 and int(audio["sample_rate"]) in (44100, 48000)
        assert (video["width"], video["height"]) == (rec["metadata"]["video_width"], rec["metadata"]["video_height"])
        seconds = float(probe["format"]["duration"])
        for value in (rec["duration"], rec["metadata"]["duration"], truth[rec["id"]]["duration"]):
            assert abs(seconds - value) < 0.1, (rec["id"], seconds, value)
        assert 3.0 <= seconds <= 40.0
    assert sum(t["duration"] > 30 for t in truth.values()) >= 2


def test_splits_categories_and_fields(mini_dir):
    train, test, truth = _load(mini_dir)
    templates = json.loads((Path(__file__).parents[1] / "harmonyset_hf/prompts/instruction_templates.json")
                           .read_text())
    assert (len(train), len(test)) == (16, 8)
    ids = [r["id"] for r in train + test]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids)
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    for split in (train, test):
        assert {normalize_category(r["category"]) for r in split} == set(CATEGORIES)
    assert len({r["category"] for r in train + test}) > len(CATEGORIES)  # several paper spellings in use
    for rec in train + test:
        assert rec["video"] == f"{rec['id']}.mp4"
        human, gpt = rec["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"] in templates and human["value"].startswith("<video>\n")
        normalize_subcategory(rec["subcategory"], rec["category"])
        assert set(rec["labels"]) == set(LABELS)
        for sub, value in rec["labels"].items():
            assert normalize_label(sub, value) == value, (rec["id"], sub)
        meta = rec["metadata"]
        assert {"title", "author", "duration", "video_width", "video_height", "audio_labels", "youtube_id"} <= set(meta)
        assert len(meta["audio_labels"]) == 10 and "Music" in meta["audio_labels"][:2]
        assert len(meta["youtube_id"]) == 11
        assert truth[rec["id"]]["split"] == ("train" if rec in train else "test")
    keyed = sum(1 for r in train + test if r["sync"] != "0") / len(ids)
    assert 0.45 <= keyed <= 0.7  # the paper: 58 % of items carry key timestamps


def test_annotations_agree_with_the_planted_truth(mini_dir):
    train, test, truth = _load(mini_dir)
    for rec in train + test:
        t = truth[rec["id"]]
        sections = split_sections(rec["conversations"][1]["value"])
        words = len(rec["conversations"][1]["value"].split())
        assert 60 <= words <= 220, (rec["id"], words)
        points = parse_sync(rec["sync"])
        assert [(p.time, p.code) for p in points] == [(round(p["time"]), p["code"]) for p in t["sync_points"]]
        for p in points:
            assert format_timestamp(p.time) in sections["rhythm"], rec["id"]
        for tempo in t["tempo_bpm"]:
            assert str(tempo) in sections["rhythm"]
        codes = [p.code for p in points]
        if codes and codes.count("A") >= 2 / 3 * len(codes):
            assert rec["labels"]["rhythm_alignment"] == "precise", rec["id"]
        if codes and codes.count("C") >= 2 / 3 * len(codes):
            assert rec["labels"]["rhythm_alignment"] in ("mismatch", "irrelevant"), rec["id"]
        if len(t["tempo_bpm"]) == 1:
            expected = "slow" if t["tempo_bpm"][0] < 96 else "medium" if t["tempo_bpm"][0] < 124 else "fast"
            assert rec["labels"]["music_pace"] == expected
    profiles = Counter(t["profile"] for t in truth.values())
    assert profiles["sync"] >= 3 and profiles["nosync"] >= 3  # mostly-A and mostly-C items both present


def test_planted_cuts_and_music_changes_follow_the_codes(mini_dir):
    _, _, truth = _load(mini_dir)
    for item_id, t in truth.items():
        cuts = t["cuts"]
        assert all(2.0 <= c <= t["duration"] - 2.0 for c in cuts), item_id
        assert all(b - a >= 4.0 for a, b in zip(cuts, cuts[1:])), item_id
        assert len(t["sync_points"]) <= 3
        for cut, code in zip(cuts, t["cut_codes"]):
            nearest = min((abs(m - cut) for m in t["music_changes"]), default=99.0)
            if code == "A":
                assert nearest < 1e-6, item_id
            elif code == "B":
                assert 0.7 <= nearest <= 1.5, item_id
            else:
                assert nearest > 2.5, item_id
        bounds = [s["start"] for s in t["sections"][1:]]
        assert bounds == t["music_changes"]
        for prev, new in zip(t["sections"], t["sections"][1:]):
            assert prev["tempo_bpm"] != new["tempo_bpm"] and prev["key"] != new["key"]
            assert prev["timbre"] != new["timbre"]
            assert new["level_db"] - prev["level_db"] >= 9


def test_music_changes_and_cuts_are_in_the_signal(mini_dir):
    """A cheap detector check: loudness jumps at every planted change, is steady around C cuts; frames jump at cuts."""
    _, _, truth = _load(mini_dir)
    steps = {"A": [], "C": [], "steady": []}
    for item_id, t in truth.items():
        path = mini_dir / "videos" / f"{item_id}.mp4"
        y, sr = _audio_mono(path)
        hop = sr // 20
        frames = y[: len(y) // hop * hop].reshape(-1, hop)
        db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)

        def step(at: float, db: np.ndarray = db, width: float = 1.0) -> float:
            i, w = int(round(at * 20)), int(width * 20)
            return float(np.mean(db[i:i + w]) - np.mean(db[max(0, i - w):i]))
        for cut, code in zip(t["cuts"], t["cut_codes"]):
            if code in "AC" and 1.0 <= cut <= t["duration"] - 1.0:
                steps[code].append(step(cut))
        bounds = [0.0, *t["music_changes"], t["duration"]]
        for a, b in zip(bounds, bounds[1:]):
            if b - a >= 5:  # the middle of a long section: only beats, no change
                steps["steady"].append(abs(step((a + b) / 2)))
        grey = _grey_frames(path)
        diff = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
        at_cuts = [int(round(c * t["fps"])) - 1 for c in t["cuts"]]
        elsewhere = np.delete(diff, at_cuts)
        if at_cuts:
            assert diff[at_cuts].min() > 5 * elsewhere.max(), item_id
    assert steps["A"] and steps["C"] and steps["steady"]
    assert min(steps["A"]) > 6.0, steps["A"]  # every A cut: a >= ~10 dB jump in loudness
    assert max(abs(s) for s in steps["C"]) < 3.0, steps["C"]  # C cuts: the music goes on unchanged
    assert max(steps["steady"]) < 3.0


def test_mc_questions(mini_dir):
    _, test, _ = _load(mini_dir)
    mc = json.loads((mini_dir / "release/HarmonySet_MC.json").read_text())
    assert [m["id"] for m in mc] == [r["id"] for r in test]
    letters = Counter()
    for item in mc:
        assert item["video"] == f"{item['id']}.mp4"
        assert [q["aspect"] for q in item["questions"]] == list(ASPECT_NAMES.values())
        for q in item["questions"]:
            assert list(q["options"]) == list(OPTION_LETTERS) and q["answer"] in OPTION_LETTERS
            texts = list(q["options"].values())
            assert len(set(texts)) == 4 and q["question"].endswith("?")
            lengths = [len(x) for x in texts]
            assert max(lengths) <= 1.7 * min(lengths), q  # no option stands out by its length
            letters[q["answer"]] += 1
    assert sum(letters.values()) == 4 * len(test)
    assert all(letters[x] >= len(test) // 2 for x in OPTION_LETTERS), letters


def test_annotators_csv(mini_dir):
    train, test, truth = _load(mini_dir)
    records = {r["id"]: r for r in train + test}
    with (mini_dir / "release/annotators.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["id", "annotator", "sync", *LABELS]
        rows = list(reader)
    assert len(rows) == 3 * len(records)
    by_item: dict[str, list[dict]] = {}
    for row in rows:
        by_item.setdefault(row["id"], []).append(row)
    assert set(by_item) == set(records) and all(len(v) == 3 for v in by_item.values())
    agree, total, disagreements = 0, 0, 0
    for item_id, group in by_item.items():
        assert len({r["annotator"] for r in group}) == 3
        for row in group:
            for p in parse_sync(row["sync"]):
                assert 0 <= p.time <= truth[item_id]["duration"] + 1
        for sub in LABELS:
            values = [normalize_label(sub, r[sub].split("|") if sub in MULTI_LABELS else r[sub]) for r in group]
            consensus = records[item_id]["labels"][sub]
            agree += values.count(consensus) >= 2
            disagreements += len({json.dumps(v) for v in values}) > 1
            total += 1
    assert agree / total >= 0.9  # most sub-aspects have a 2-of-3 or 3-of-3 majority for the released label
    assert disagreements >= 0.1 * total  # ... and the annotators do disagree, as people do
    # Sync times are jittered by at most a second around the truth.
    for item_id, group in by_item.items():
        true_times = [p["time"] for p in truth[item_id]["sync_points"]]
        for row in group:
            matched = [min(abs(p.time - t) for t in true_times) for p in parse_sync(row["sync"]) if true_times]
            assert sum(d <= 1.0 for d in matched) >= len(matched) - 1


def test_cli_sample(tmp_path, capsys):
    (tmp_path / "m/videos").mkdir(parents=True)
    (tmp_path / "m/videos/hs000099.mp4").write_bytes(b"left from an earlier, larger run")
    (tmp_path / "m/videos/mine.mp4").write_bytes(b"not ours")
    assert main(["sample", "--out", str(tmp_path / "m"), "--n", "2", "--seed", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 videos (1 train, 1 test" in out and "4 MC questions" in out and "made in" in out
    assert sorted(p.name for p in (tmp_path / "m/videos").glob("*.mp4")) == ["hs000001.mp4", "hs000002.mp4", "mine.mp4"]
    for name in RELEASE_FILES:
        assert (tmp_path / "m/release" / name).is_file()
    assert main(["sample", "--out", str(tmp_path / "bad"), "--n", "1"]) == 2
    assert "at least 2 items" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("x")
    assert main(["sample", "--out", str(tmp_path / "a_file"), "--n", "2"]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("n", [3, 24, 60])
def test_plans_keep_their_constraints_for_many_seeds(n):
    for seed in range(15):
        plans = plan_items(n, seed)
        assert len({p["id"] for p in plans}) == n
        assert sum(p["planned_duration"] > 30 for p in plans) >= min(2, n)
        for p in plans:
            assert 3.0 <= p["planned_duration"] <= 40.0
            cuts = p["cuts"]
            assert all(2.0 <= c <= p["planned_duration"] - 2.0 for c in cuts)
            assert all(b - a >= 4.0 for a, b in zip(cuts, cuts[1:]))
            for cut, code in zip(cuts, p["cut_codes"]):
                nearest = min((abs(m - cut) for m in p["music_changes"]), default=99.0)
                assert {"A": nearest < 1e-6, "B": 0.7 <= nearest <= 1.5, "C": nearest > 2.5}[code], (seed, p["id"])
