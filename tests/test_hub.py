"""data/hub.py + data/card.py + the data verbs: build a Hub folder, load it with the real `datasets`, push, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import datasets
import pytest
from release_fixtures import item, make_clip, make_release

from harmonyset_hf import schema
from harmonyset_hf.cli import main
from harmonyset_hf.data import hub
from harmonyset_hf.data.folder import read_configs
from harmonyset_hf.data.hub import HubError, build_hub, export_videollama2, push_hub
from harmonyset_hf.data.release import ReleaseError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(release dir, videos dir): 3 train items, 3 test items with MC, plus one unusable item."""
    root = tmp_path_factory.mktemp("rel")
    release_dir, videos_dir = make_release(root, train=3, test=3)
    train = json.loads((release_dir / "HarmonySet_Train.json").read_text())
    train.append(item("bad", video="../escape.mp4"))
    (release_dir / "HarmonySet_Train.json").write_text(json.dumps(train))
    return release_dir, videos_dir


@pytest.fixture(scope="module")
def built(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "HarmonySet-tiny"
    report = build_hub(release_dir=release[0], videos_dir=release[1], out_dir=out)
    return out, report


def test_build_layout_and_report(built):
    out, report = built
    assert report["counts"] == {"instruct": 3, "oe": 3, "mc": 12}
    assert report["skipped_count"] == 1 and report["skipped"][0]["id"] == "bad"
    assert "escapes the video root" in report["skipped"][0]["reason"]
    assert json.loads((out / "build_report.json").read_text())["counts"] == report["counts"]
    assert sorted(p.name for p in (out / "videos/train/000").iterdir()) == ["tr000.mp4", "tr001.mp4", "tr002.mp4"]
    assert len(list((out / "videos/test/000").iterdir())) == 3  # OE and MC share the test videos
    assert [c["config_name"] for c in read_configs(out)] == ["instruct", "oe", "mc"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no leftover temp folders


@pytest.mark.parametrize("config", schema.CONFIGS)
def test_load_dataset_each_config(built, config, tmp_path):
    out, report = built
    ds = datasets.load_dataset(str(out), config, split=schema.SPLITS[config], cache_dir=str(tmp_path))
    assert len(ds) == report["counts"][config]
    assert ds.features == schema.features(config)
    row = ds[0]
    frames = row["video"].get_frames_in_range(0, 2)
    assert tuple(frames.data.shape[-2:]) == (48, 64)
    if config == "mc":
        assert row["question_id"] == f"{row['id']}:{row['aspect']}" and len(row["options"]) == 4
        assert row["answer"] in schema.OPTION_LETTERS
    else:
        assert row["sync_points"] == ([{"time": 5.0, "code": "A"}] if config == "instruct" else [])
        assert row["labels"]["video_emotions"] == ["happy", "hope"] and row["metadata"]["video_width"] == 64
        assert all(row[a] for a in schema.ASPECTS)


def test_streaming_and_load_helper(built, tmp_path):
    import harmonyset_hf

    out, _ = built
    stream = harmonyset_hf.load(out, "oe", streaming=True)
    first = next(iter(stream))
    assert first["id"] == "te000" and first["video"].metadata.num_frames == 8
    assert len(harmonyset_hf.load(out, "mc", cache_dir=str(tmp_path))) == 12
    with pytest.raises(HubError, match="unknown config"):
        harmonyset_hf.load(out, "train")


def test_load_of_a_wrong_path_says_what_it_is(release, tmp_path, monkeypatch):
    import harmonyset_hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a mistyped folder is tried as a Hub repo id
    with pytest.raises(HubError, match=r"no such folder, and as a Hub repo id"):
        harmonyset_hf.load(tmp_path / "no_such_hub", "mc")
    with pytest.raises(HubError, match=r"not a Hub folder.*harmonyset build"):
        harmonyset_hf.load(release[0], "mc")


def test_annotations_only(release, tmp_path):
    with pytest.raises(HubError, match="pass --videos DIR, or --annotations-only"):
        build_hub(release[0], None, tmp_path / "neither")
    out = tmp_path / "ann"
    report = build_hub(release[0], None, out, annotations_only=True)
    assert report["counts"] == {"instruct": 3, "oe": 3, "mc": 12} and not (out / "videos").exists()
    for config in schema.CONFIGS:
        ds = datasets.load_dataset(str(out), config, split=schema.SPLITS[config], cache_dir=str(tmp_path / "c"))
        assert ds.features["video"] == datasets.Value("string")
        assert ds[0]["video"].endswith(".mp4") and not os.path.isabs(ds[0]["video"])
        assert {k: v for k, v in ds.features.items() if k != "video"} == schema.features(config, with_video=False)
    assert "annotations only" in (out / "README.md").read_text()


def test_strict_failure_keeps_the_old_folder(release, built, tmp_path):
    out = tmp_path / "hub"
    build_hub(release[0], release[1], out, link_mode="copy")
    before = (out / "README.md").read_text()
    with pytest.raises(ReleaseError, match="id='bad'"):
        build_hub(release[0], release[1], out, strict=True)
    assert (out / "README.md").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_link_modes_and_sharding(release, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "MAX_FILES_PER_FOLDER", 2)
    for mode in ("hardlink", "symlink", "copy"):
        out = tmp_path / mode
        report = build_hub(release[0], release[1], out, link_mode=mode)
        video = out / "videos/train/000/tr000.mp4"
        src = release[1] / "tr000.mp4"
        assert sorted(p.name for p in (out / "videos/train").iterdir()) == ["000", "001"]
        assert (video.is_symlink()) == (mode == "symlink")
        assert (video.stat().st_ino == src.stat().st_ino) == (mode in ("hardlink", "symlink"))
        assert report["link_modes_used"] == {mode: 6}
    ds = datasets.load_dataset(str(tmp_path / "symlink"), "instruct", split="train", cache_dir=str(tmp_path / "c"))
    assert ds[2]["video"].metadata.num_frames == 8  # a video from the second sub-folder


def test_card_statistics_and_figures(built, tmp_path):
    out, _ = built
    assert main(["card", "--hub", str(out)]) == 0
    text = (out / "README.md").read_text()
    stats = json.loads((out / "figures/stats.json").read_text())
    assert stats["configs"]["instruct"]["rows"] == 3 and stats["configs"]["mc"]["items"] == 3
    assert stats["categories"] == {"life_emotion": 3, "knowledge": 3}
    assert stats["key_timestamp_share"] == 0.5  # train items carry a key point, test items "0"
    assert stats["labels"]["music_pace"] == {"fast": 6}
    assert "| Life & Emotion | 3 |" in text and "50.0%" in text and "license:" in text
    for name in ("categories.png", "duration.png", "words.png", "labels.png"):
        assert (out / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    assert "@inproceedings{zhou2025harmonyset" in text
    assert main(["card", "--hub", str(tmp_path / "no_such_hub")]) == 2  # one line: "no such folder"


def test_export_videollama2(built, tmp_path):
    out, _ = built
    target = tmp_path / "train.json"
    assert main(["export", "videollama2", "--hub", str(out), "--config", "instruct", "--out", str(target)]) == 0
    items = json.loads(target.read_text())
    assert len(items) == 3 and (out / items[0]["video"]).is_file()
    human, gpt = items[0]["conversations"]
    assert human["value"].startswith("<video>\n") and gpt["value"].startswith("Rhythm and Synchronization:")
    with pytest.raises(HubError, match="annotated config"):
        export_videollama2(out, "mc", tmp_path / "x.json")
    # --out naming a folder: one error line (exit 2), not an IsADirectoryError traceback
    assert main(["export", "videollama2", "--hub", str(out), "--config", "instruct", "--out", str(tmp_path)]) == 2


def test_push_dry_run_lists_files_and_never_prints_the_token(built, capsys, monkeypatch):
    out, _ = built
    token = "hf_SecretTokenValue12345"
    monkeypatch.setenv("HF_TOKEN", token)
    assert main(["push", "--hub", str(out), "--repo-id", "me/HarmonySet-tiny", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert token not in printed and '"token": "found"' in printed
    assert "videos/train/000/tr000.mp4" in printed and "README.md" in printed and "mc.parquet" in printed
    plan = push_hub(out, "me/x", dry_run=True)
    assert plan["files"] == len(plan["listing"]) and plan["bytes"] == sum(n for _, n in plan["listing"])
    with pytest.raises(HubError, match="bad repo id"):
        push_hub(out, "no-slash", dry_run=True)


class _EchoAuth(BaseHTTPRequestHandler):
    """A fake Hub at the network edge: refuses every call and echoes the Authorization header back."""

    def _refuse(self):
        auth = self.headers.get("authorization")
        body = json.dumps({"error": f"Invalid credentials in Authorization header: {auth}"})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args):
        pass


def test_push_failure_is_reported_with_the_token_masked(built):
    out, _ = built
    server = HTTPServer(("127.0.0.1", 0), _EchoAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "hf_SecretTokenValue12345"
    env = {**os.environ, "HF_TOKEN": token, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
           "HF_HUB_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
    try:
        proc = subprocess.run([sys.executable, "-m", "harmonyset_hf.cli", "push", "--hub", str(out),
                               "--repo-id", "me/HarmonySet-tiny"], env=env, capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
    finally:
        server.shutdown()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "push to me/HarmonySet-tiny failed" in output and "401" in output
    assert token not in output and "***" in output


def test_loading_script_builder(release, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "loading_script"))
    from harmonyset import HarmonySet

    builder = HarmonySet(config_name="mc", data_dir=str(release[0]), cache_dir=str(tmp_path))
    builder.download_and_prepare()
    ds = builder.as_dataset(split="test")
    assert len(ds) == 12 and ds.features == schema.features("mc")
    assert ds[0]["video"].metadata.num_frames == 8
    stream = builder.as_streaming_dataset(split="test")
    assert next(iter(stream))["question_id"] == "te000:rhythm"
    with pytest.raises(RuntimeError, match="Dataset scripts are no longer supported"):  # why the builder exists
        datasets.load_dataset(str(ROOT / "loading_script" / "harmonyset.py"), "mc")


def test_build_errors(tmp_path):
    with pytest.raises(HubError, match="annotations_only"):
        build_hub(tmp_path, None, tmp_path / "out")
    with pytest.raises(HubError, match="link mode"):
        build_hub(tmp_path, tmp_path, tmp_path / "out", link_mode="move")
    make_clip(tmp_path / "v" / "x.mp4", seconds=0.25)
    assert main(["build", "--release", str(tmp_path / "none"), "--videos", str(tmp_path / "v"),
                 "--out", str(tmp_path / "out")]) == 2


@pytest.mark.slow
def test_harmonyset_mini_hub_matches_its_truth(mini_dir, hub_dir, tmp_path):
    """The shared HarmonySet-mini fixture builds cleanly and loads with the splits and sync points of truth.json."""
    truth = json.loads((mini_dir / "truth.json").read_text())["items"]
    report = json.loads((hub_dir / "build_report.json").read_text())
    assert report["skipped_count"] == 0
    for config in schema.CONFIGS:
        ds = datasets.load_dataset(str(hub_dir), config, split=schema.SPLITS[config], cache_dir=str(tmp_path))
        assert ds.features == schema.features(config)
        split = "train" if config == "instruct" else "test"
        assert sorted(set(ds["id"])) == sorted(i for i, t in truth.items() if t["split"] == split)
        if config == "mc":
            assert len(ds) == 4 * len(set(ds["id"]))
            continue
        for row in ds.select_columns(["id", "sync_points", "category"]):
            expected = truth[row["id"]]
            got = [(round(p["time"]), p["code"]) for p in row["sync_points"]]
            assert got == [(round(p["time"]), p["code"]) for p in expected["sync_points"]]
            assert row["category"] == expected["category"]
    first = datasets.load_dataset(str(hub_dir), "oe", split="test", cache_dir=str(tmp_path))[0]
    assert first["video"].metadata.width == truth[first["id"]]["width"]


def test_one_video_per_split_still_gives_a_video_column(tmp_path):
    """datasets infers the builder from the first config's files (ties go to parquet): a 1+1 build must still work."""
    release_dir, videos_dir = make_release(tmp_path, train=1, test=1)
    report = build_hub(release_dir, videos_dir, tmp_path / "hub")
    assert report["warnings"] == []
    for config in schema.CONFIGS:
        ds = datasets.load_dataset(str(tmp_path / "hub"), config, split=schema.SPLITS[config],
                                   cache_dir=str(tmp_path / "c"))
        assert ds.features == schema.features(config) and ds[0]["video"].metadata.num_frames == 8


def test_hardlink_falls_back_to_copy_across_devices(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm) to cross")
    src = shm / f"hs-link-{os.getpid()}.mp4"
    src.write_bytes(b"not really a video")
    try:
        assert hub.link_file(src, tmp_path / "a.mp4", "hardlink") == "copy"
        assert (tmp_path / "a.mp4").read_bytes() == src.read_bytes()
        assert hub.link_file(tmp_path / "a.mp4", tmp_path / "b.mp4", "hardlink") == "hardlink"
    finally:
        src.unlink()
    with pytest.raises(HubError, match="link mode"):
        hub.link_file(tmp_path / "a.mp4", tmp_path / "c.mp4", "move")
