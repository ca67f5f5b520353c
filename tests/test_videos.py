"""`harmonyset videos download` against a local HTTP server that misbehaves in every way YouTube can, and the use of
the downloaded folder (build --videos, --videos / $HARMONYSET_VIDEO_DIR for predict, harness, sync, train).

The server (127.0.0.1 only) serves HarmonySet-mini's mp4 files through yt-dlp's generic extractor; some ids
answer 404 or 410, one connection is cut mid-file, one answer is an HTML page, one stalls past --timeout,
one is a file cut short with an honest Content-Length, and one answers 429 (with Retry-After) first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harmonyset_hf.cli import main
from harmonyset_hf.data import video_fetch, video_folder, videos
from harmonyset_hf.data.hub import build_hub, load

pytest.importorskip("yt_dlp")

ROOT = Path(__file__).resolve().parents[1]
# How the server answers the scenario ids (picked from HarmonySet-mini's splits by `plan`); others are served plainly.
TRAIN_BAD = ("410", "cut", "html", "stall", "short")
EXPECTED = {"404": ("unavailable", "removed"), "410": ("unavailable", "removed"), "cut": ("failed", "incomplete"),
            "html": ("unavailable", "not-a-video"), "stall": ("timed_out", "timed-out"),
            "short": ("failed_check", "check")}
# --timeout for the runs: a plain file from this local server must always arrive within it, and the stall must
# outlast it. At 0.5 s a plain file timed out once in a full `make test` on 2 cores (the server is a thread of the
# busy test process); 2 s leaves a margin four times as wide, and the stall stays 3 times longer.
STALL_SECONDS = 6.0
TIMEOUT = "2"


class Handler(BaseHTTPRequestHandler):
    """Serves ``/<id>.mp4`` from the mini's videos, misbehaving as the plan says; logs every request."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "video/mp4", length: int | None = None,
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        item_id = self.path.strip("/").removesuffix(".mp4")
        with server.lock:
            server.requests[item_id].append(time.monotonic())
            count = len(server.requests[item_id])
        path = server.videos / f"{item_id}.mp4"
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        how = server.behaviour.get(item_id)
        if server.delay:
            time.sleep(server.delay)
        if how in ("404", "410"):
            return self.send_error(int(how))
        if how == "429" and count == 1:
            return self._send(429, b"", content_type="text/plain", headers={"Retry-After": "1"})
        if how == "html":
            return self._send(200, b"<html><head><title>Video</title></head><body>consent page</body></html>",
                              content_type="text/html; charset=utf-8")
        if how == "cut":  # promises the whole file, sends half, hangs up
            self._send(200, data[:len(data) // 2], length=len(data))
            self.close_connection = True
            return None
        if how == "stall":  # promises the file, sends a little, then nothing for longer than --timeout
            self._send(200, data[:2048], length=len(data))
            self.wfile.flush()
            time.sleep(STALL_SECONDS)
            self.close_connection = True
            return None
        if how == "short":  # an honest but truncated file: only the check can tell
            return self._send(200, data[:len(data) // 2])
        return self._send(200, data)


@pytest.fixture(scope="module")
def plan(mini_dir) -> dict:
    """Scenario ids of HarmonySet-mini: five bad train ids, one 429 then good, two plain train ids, two plain test
    ids and one 404 test id; ``ids`` lists them all (the rest of the release is left out with --ids)."""
    release = mini_dir / "release"
    train = [it["id"] for it in json.loads((release / "HarmonySet_Train.json").read_text())]
    test = [it["id"] for it in json.loads((release / "HarmonySet_Test.json").read_text())]
    behaviour = dict(zip(train, TRAIN_BAD))
    behaviour[train[5]], behaviour[test[2]] = "429", "404"
    good = [train[5], train[6], train[7], test[0], test[1]]
    return {"behaviour": behaviour, "good": good, "plain": good[1:], "limited": train[5],
            "bad": {i: how for i, how in behaviour.items() if how != "429"},
            "ids": [*train[:8], *test[:3]], "all": train + test}


@pytest.fixture(scope="module")
def server(mini_dir, plan):
    """The misbehaving server on 127.0.0.1 (a free port); ``.template`` is the --url-template to use."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.videos, httpd.behaviour, httpd.delay = mini_dir / "videos", plan["behaviour"], 0.0
    httpd.requests, httpd.lock = defaultdict(list), threading.Lock()
    httpd.template = f"http://127.0.0.1:{httpd.server_address[1]}/{{id}}.mp4"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def first_run(mini_dir, plan, server, tmp_path_factory):
    """One download of the scenario ids: (videos folder, exit code, printed lines, seconds, report)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("download")
    ids = root / "ids.txt"
    ids.write_text("# the scenario ids\n" + "\n".join(plan["ids"]) + "\n", encoding="utf-8")
    out = root / "videos"
    printed = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(printed):
        code = main(_argv(mini_dir, out, server, "--ids", str(ids)))
    seconds = time.monotonic() - started
    return {"out": out, "ids": ids, "code": code, "printed": printed.getvalue(), "seconds": seconds,
            "report": json.loads((out / videos.REPORT_NAME).read_text())}


def _argv(mini: Path, out: Path, server, *extra: str) -> list[str]:
    return ["videos", "download", "--release", str(mini / "release"), "--out", str(out), "--url-template",
            server.template, "--timeout", TIMEOUT, "--concurrency", "4", "--no-progress", *extra]


def _files(out: Path) -> dict[str, bytes]:
    """Every file under the videos folder except the report and journal, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and p.name not in (videos.REPORT_NAME, videos.JOURNAL_NAME)}


def _source(mini_dir: Path, ids: list[str]) -> dict[str, bytes]:
    return {f"{i}.mp4": (mini_dir / "videos" / f"{i}.mp4").read_bytes() for i in ids}


def test_download_reports_every_failure_and_keeps_only_good_files(mini_dir, plan, server, first_run):
    """Good ids arrive byte-identical; each bad one has its status, cause and reason and leaves no file."""
    out, report = first_run["out"], first_run["report"]
    assert first_run["code"] == 1  # some are missing
    items = report["items"]
    assert list(items) == [i for i in plan["all"] if i in plan["ids"]] and report["total"] == len(plan["ids"])
    for item_id, how in plan["bad"].items():
        assert (items[item_id]["status"], items[item_id]["cause"]) == EXPECTED[how], (how, items[item_id])
        assert items[item_id]["reason"] and items[item_id]["file"] is None
    assert {how: items[i]["reason"] for i, how in plan["bad"].items() if how in ("404", "410")} == {
        how: f"[generic] {i}: Unable to download webpage: HTTP Error {how}: {'Gone' if how == '410' else 'Not Found'} "
             f"(caused by <HTTPError {how}: {'Gone' if how == '410' else 'Not Found'}>)"
        for i, how in plan["bad"].items() if how in ("404", "410")}
    for item_id in plan["good"]:
        assert items[item_id]["status"] == "downloaded", (item_id, items[item_id])
    assert items[plan["limited"]]["attempts"] == 2  # the 429, then the file
    first, second = server.requests[plan["limited"]][:2]
    assert second - first >= 0.9  # Retry-After: 1 was honoured
    # Only the good files, byte for byte, and nothing half-written anywhere (no .part, no scratch folder).
    assert _files(out) == _source(mini_dir, plan["good"])
    assert not (out / videos.PARTIAL_DIR).exists()
    assert report["counts"] == {"downloaded": 5, "present": 0, "unavailable": 3, "failed_check": 1,
                                "timed_out": 1, "failed": 1}
    assert sorted(report["missing"]) == sorted(plan["bad"]) and report["missing_count"] == 6
    assert report["by_split"] == {"test": {"present": 2, "missing": 1}, "train": {"present": 3, "missing": 5}}
    assert sum(c.get("missing", 0) for c in report["by_category"].values()) == 6
    assert "6 missing" in first_run["printed"] and "by split: test 2/3, train 3/8" in first_run["printed"]
    assert "missing by cause: check 1, incomplete 1, not-a-video 1, removed 2, timed-out 1" in first_run["printed"]
    assert first_run["seconds"] < 30, first_run["seconds"]  # the stall is bounded by --timeout, not by the server


def test_rerun_fetches_nothing_it_has_and_retries_what_may_work(mini_dir, plan, server, first_run, tmp_path):
    """A rerun asks for no file it has and not again for what is gone for good (404, 410, an HTML page); timeouts,
    cut connections and failed checks are tried again; --retry-unavailable asks again for the rest."""
    out = tmp_path / "videos"
    shutil.copytree(first_run["out"], out)
    html = next(i for i, how in plan["bad"].items() if how == "html")
    (out / f"{html}.mp4").write_bytes(b"not a video, and not ours to delete")  # a file someone else put there
    before = {k: len(v) for k, v in server.requests.items()}
    assert main(_argv(mini_dir, out, server, "--ids", str(first_run["ids"]))) == 1
    after = {k: len(v) for k, v in server.requests.items()}
    rerun = json.loads((out / videos.REPORT_NAME).read_text())["items"]
    for item_id in plan["good"]:
        assert after[item_id] == before[item_id] and rerun[item_id]["status"] == "present"
    for item_id, how in plan["bad"].items():
        again = how in ("cut", "stall", "short")
        assert (after[item_id] > before[item_id]) == again, (how, before[item_id], after[item_id])
        if item_id != html:
            assert (rerun[item_id]["status"], rerun[item_id]["cause"]) == EXPECTED[how]
    assert (rerun[html]["status"], rerun[html]["cause"]) == ("failed_check", "existing-file")
    assert (out / f"{html}.mp4").read_bytes() == b"not a video, and not ours to delete"
    (out / f"{html}.mp4").unlink()
    assert _files(out) == _source(mini_dir, plan["good"])

    gone = next(i for i, how in plan["bad"].items() if how == "404")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{gone}  # just this one\n", encoding="utf-8")
    assert main(_argv(mini_dir, out, server, "--ids", str(ids), "--retry-unavailable")) == 1
    assert len(server.requests[gone]) == after[gone] + 1
    only = json.loads((out / videos.REPORT_NAME).read_text())
    assert list(only["items"]) == [gone] and only["total"] == 1


def test_kill_9_mid_run_then_rerun_loses_nothing(mini_dir, plan, server, tmp_path):
    """A download killed with SIGKILL leaves finished files in place and no partial one; the rerun completes
    the rest without fetching again what had arrived."""
    out = tmp_path / "videos"
    cut = next(i for i, how in plan["bad"].items() if how == "cut")
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join([*plan["plain"], cut]), encoding="utf-8")
    # One at a time, each answer delayed (well inside --timeout) so that the kill lands mid-run.
    argv = [sys.executable, "-m", "harmonyset_hf.cli", *_argv(mini_dir, out, server, "--ids", str(ids),
                                                              "--concurrency", "1", "--timeout", "10")]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    server.delay = 0.5
    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob("*.mp4")) and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, f"the download ended (status {proc.returncode}) before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        server.delay = 0.0
    arrived = {p.name: p.read_bytes() for p in out.glob("*.mp4")}
    assert arrived, "nothing arrived before the kill"
    assert len(arrived) < len(plan["plain"]), "the run finished before it could be killed"
    assert arrived == _source(mini_dir, [name[:-4] for name in arrived])
    seen = {k: len(v) for k, v in server.requests.items()}

    assert main(_argv(mini_dir, out, server, "--ids", str(ids))) == 1  # the cut one stays missing
    report = json.loads((out / videos.REPORT_NAME).read_text())["items"]
    for name in arrived:
        assert report[name[:-4]]["status"] == "present"
        assert len(server.requests[name[:-4]]) == seen[name[:-4]]  # not fetched again
    assert report[cut]["status"] == "failed"
    assert _files(out) == _source(mini_dir, plan["plain"])


def test_build_with_the_downloaded_folder_loads_and_lists_the_missing(mini_dir, plan, first_run, tmp_path):
    """`build --videos` on a download folder gives a Hub folder that load_dataset reads, with every item
    whose video is missing listed in build_report.json."""
    import datasets

    hub = tmp_path / "hub"
    assert main(["build", "--release", str(mini_dir / "release"), "--videos", str(first_run["out"]),
                 "--out", str(hub)]) == 0
    built = json.loads((hub / "build_report.json").read_text())
    present = set(plan["good"])
    assert sorted(built["missing_videos"]["ids"]) == sorted(set(plan["all"]) - present)
    assert built["missing_videos"]["count"] == len(plan["all"]) - len(present)
    loaded = set()
    for config in ("instruct", "oe", "mc"):
        ds = datasets.load_dataset(str(hub), config, split="train" if config == "instruct" else "test",
                                   cache_dir=str(tmp_path / "cache"))
        assert isinstance(ds.features["video"], datasets.Video)
        loaded |= set(ds["id"])
    assert loaded == present


def test_usage_errors_exit_2(mini_dir, tmp_path, capsys):
    """A bad URL template, a missing --ids file, a missing cookie file and a missing source are usage errors."""
    base = ["videos", "download", "--release", str(mini_dir / "release"), "--out", str(tmp_path / "v")]
    assert main([*base, "--url-template", "http://127.0.0.1:1/{nope}.mp4"]) == 2
    assert main([*base, "--ids", str(tmp_path / "none.txt")]) == 2
    assert main([*base, "--cookies", str(tmp_path / "cookies.txt")]) == 2
    with pytest.raises(SystemExit) as err:
        main(["videos", "download", "--out", str(tmp_path / "v")])
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert "{id} and {youtube_id}" in err_text and "none.txt" in err_text and "cookies.txt" in err_text
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(("message", "status", "cause"), [
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "unavailable",
     "private"),
    ("ERROR: [youtube] abc: This video has been removed by the uploader", "unavailable", "removed"),
    ("ERROR: [youtube] abc: Video unavailable. This video is no longer available because the YouTube account "
     "associated with this video has been terminated.", "unavailable", "removed"),
    ("ERROR: [youtube] abc: Video unavailable. The uploader has not made this video available in your country",
     "unavailable", "geo-blocked"),
    ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.",
     "unavailable", "age-gated"),
    ("ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies",
     "unavailable", "sign-in-required"),
    ("ERROR: [youtube] abc: Video unavailable", "unavailable", "unavailable"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests", "failed", "rate-limited"),
    ("ERROR: [youtube] abc: This content isn't available, try again later. The current session has been "
     "rate-limited by YouTube for up to an hour.", "failed", "rate-limited"),
    ("ERROR: \r[download] Got error: Read timed out.. Giving up after 2 retries", "timed_out", "timed-out"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable", "failed",
     "server-error"),
])
def test_classify_youtube_wordings(message, status, cause):
    """yt-dlp's YouTube error texts map onto the report's status and cause (they cannot be fetched offline)."""
    assert video_fetch.classify(message) == (status, cause)


def test_video_dir_for_predict_harness_and_sync(mini_dir, plan, first_run, tmp_path, monkeypatch, caplog):
    """--videos / $HARMONYSET_VIDEO_DIR make an annotations-only folder usable: rows with a video get its
    file, the others are skipped and counted (predict's rows, the harness docs, the sync evaluation)."""
    from harmonyset_hf.errors import ConfigError
    from harmonyset_hf.evaluation.predict import load_split
    from harmonyset_hf.harness.tasks import prepare_docs
    from harmonyset_hf.sync.evaluate import load_rows

    out, present = first_run["out"], set(plan["good"])
    plain = tmp_path / "plain"
    build_hub(mini_dir / "release", None, plain, annotations_only=True)
    test_ids = {r["id"] for r in load(plain, "oe").to_list()}
    with pytest.raises(ConfigError, match="--videos"):
        load_split(plain, "mc", media=True)
    with caplog.at_level("WARNING"):
        rows = load_split(plain, "mc", media=True, video_dir=out)
    assert {r["id"] for r in rows} == test_ids & present and len(rows) == 4 * len(test_ids & present)
    assert all(Path(r["video"]["path"]).read_bytes() == (mini_dir / "videos" / f"{r['id']}.mp4").read_bytes()
               for r in rows)
    assert f"{len(test_ids - present)} items skipped: their video is not in {out}" in caplog.text

    monkeypatch.setenv(video_folder.VIDEO_DIR_ENV, str(out))
    docs = prepare_docs(load(plain, "oe"))
    assert set(docs["id"]) == test_ids & present
    assert all(Path(p).is_file() for p in docs["video_path"])
    ((config, part),) = load_rows(plain, ("oe",))
    assert config == "oe" and set(part["id"]) == test_ids & present
    assert all(Path(v["path"]).is_file() for v in part["video"])

    # lm-eval's --metadata key and the training config key name the folder too (they win over the environment).
    from harmonyset_hf.harness.tasks import load_docs
    from harmonyset_hf.train import build_data
    from harmonyset_hf.train.config import TrainConfig

    monkeypatch.setenv(video_folder.VIDEO_DIR_ENV, str(tmp_path / "nowhere"))
    docs = load_docs("mc", data=str(plain), video_dir=str(out))["test"]
    assert set(docs["id"]) == test_ids & present and len(docs) == 4 * len(test_ids & present)
    train_ids = {r["id"] for r in load(plain, "instruct").to_list()}
    dataset, _ = build_data(TrainConfig(data=str(plain), video_dir=str(out)), processor=None)
    assert set(dataset.rows["id"]) == train_ids & present and len(dataset) == len(train_ids & present)
    assert all(Path(v["path"]).is_file() for v in dataset.rows["video"])


def test_download_from_a_hub_folder_shards_and_exits_0(mini_dir, plan, server, tmp_path, monkeypatch):
    """--data takes the ids from an annotations-only Hub folder; past the per-folder limit files go to NNN/
    sub-folders (as in the Hub folder), a rerun still finds them, and all present means exit status 0."""
    plain = tmp_path / "plain"
    build_hub(mini_dir / "release", None, plain, annotations_only=True)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(plan["plain"]), encoding="utf-8")
    monkeypatch.setattr(videos, "MAX_FILES_PER_FOLDER", 10)  # the real limit is 10,000 a folder
    out = tmp_path / "videos"
    argv = ["videos", "download", "--data", str(plain), "--out", str(out), "--url-template", server.template,
            "--timeout", TIMEOUT, "--ids", str(ids), "--no-progress"]
    assert main(argv) == 0
    index = {i: n for n, i in enumerate(plan["all"])}  # shards follow the release order, whatever --ids picks
    expected = {f"{index[i] // 10:03d}/{i}.mp4": (mini_dir / "videos" / f"{i}.mp4").read_bytes()
                for i in plan["plain"]}
    assert _files(out) == expected and len({k.split("/")[0] for k in expected}) > 1
    before = {i: len(server.requests[i]) for i in plan["plain"]}
    assert main(argv) == 0
    assert {i: len(server.requests[i]) for i in plan["plain"]} == before
    finder = video_folder.VideoFolder(out)
    assert [i for i in plan["all"] if finder.find(f"{i}.mp4", i)] == plan["plain"]


def test_release_video_found_by_id_when_its_file_name_differs(tmp_path):
    """A release whose `video` names another file (e.g. by YouTube id) finds the download named by the item's id."""
    from release_fixtures import item, make_clip

    from harmonyset_hf.data.release import read_release

    make_clip(tmp_path / "videos" / "a1.mp4")
    release = tmp_path / "HarmonySet_Train.json"
    release.write_text(json.dumps([item("a1", video="yt_Xy12.mp4"), item("b2", video="yt_Zz34.mp4")]))
    rel = read_release(release, tmp_path / "videos")
    assert [r["video"] for r in rel.records["instruct"]] == [str((tmp_path / "videos" / "a1.mp4").resolve())]
    assert [(p.id, p.reason.split(":")[0]) for p in rel.problems] == [("b2", "missing video")]


def test_retry_after_reads_seconds_and_dates_and_urls_lose_their_secrets():
    """Retry-After in seconds or as an HTTP date (capped), read from yt-dlp's own HTTPError; URL tokens are masked."""
    import email.utils
    import io

    from yt_dlp.networking import Response
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import DownloadError

    def error(status: int, headers: dict) -> DownloadError:
        cause = HTTPError(Response(io.BytesIO(b""), "http://127.0.0.1/x.mp4", headers, status=status))
        return DownloadError(f"ERROR: HTTP Error {status}", exc_info=(HTTPError, cause, None))

    assert video_fetch.retry_after(error(429, {"Retry-After": "7"})) == 7.0
    assert video_fetch.retry_after(error(429, {"Retry-After": "99999"})) == video_fetch.MAX_RETRY_AFTER
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= video_fetch.retry_after(error(429, {"Retry-After": when})) <= 31
    assert video_fetch.retry_after(error(429, {})) == 0.0  # a 429 without the header: the caller doubles
    assert video_fetch.retry_after(error(404, {})) is None
    masked = video_fetch.clean_message("ERROR: Unsupported URL: https://user:pw@mirror.example/a.mp4?token=s3cr3t&x=1")
    assert "s3cr3t" not in masked and "pw" not in masked and masked.endswith("a.mp4?token=***&x=***")


@pytest.mark.parametrize(("portrait", "max_height", "merge", "chosen"), [
    (True, 720, True, "h264-720+m4a"),      # a portrait Short: 720x1280 is its 720p
    (False, 720, True, "h264-720+m4a"),     # the same sizes turned landscape
    (True, 1080, True, "h264-1080+m4a"),
    (True, 480, True, "both-360"),          # the only video within 480p (it carries its own AAC)
    (True, 720, False, "both-360"),         # no FFmpeg: only a file that holds video and audio
])
def test_format_choice_on_a_youtube_like_format_list(portrait, max_height, merge, chosen):
    """yt-dlp's own selector, run offline on a format list shaped like a Short's, picks h264 + AAC at the
    largest size whose short side is within --max-height (vp9 and opus are passed over)."""
    import yt_dlp

    def video(fid, codec, ext, short, long):
        width, height = (short, long) if portrait else (long, short)
        return {"format_id": fid, "url": f"http://127.0.0.1/{fid}", "ext": ext, "vcodec": codec, "acodec": "none",
                "width": width, "height": height, "tbr": short}

    formats = [video("h264-1080", "avc1.640028", "mp4", 1080, 1920),
               video("h264-720", "avc1.64001f", "mp4", 720, 1280),
               video("vp9-720", "vp09.00.40.08", "webm", 720, 1280),
               video("vp9-1440", "vp09.00.50.08", "webm", 1440, 2560),
               {"format_id": "m4a", "url": "http://127.0.0.1/a", "ext": "m4a", "vcodec": "none", "acodec": "mp4a.40.2",
                "abr": 128},
               {"format_id": "opus", "url": "http://127.0.0.1/o", "ext": "webm", "vcodec": "none", "acodec": "opus",
                "abr": 160},
               {**video("both-360", "avc1.42001E", "mp4", 360, 640), "acodec": "mp4a.40.2"}]
    options = video_fetch.ytdlp_options(Path("/nonexistent"), 1.0, max_height, None, "x", merge=merge)
    with yt_dlp.YoutubeDL({**options, "simulate": True}) as ydl:
        info = ydl.process_ie_result({"id": "x", "title": "x", "formats": formats, "extractor": "test",
                                      "extractor_key": "Test", "webpage_url": "http://127.0.0.1/x"}, download=False)
    assert info["format_id"] == chosen
