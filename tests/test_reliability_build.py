"""`harmonyset build` never deletes what it did not make, and takes videos only from inside the videos root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from release_fixtures import make_release

from harmonyset_hf.cli import main
from harmonyset_hf.data.hub import build_hub, push_hub, upload_files
from harmonyset_hf.errors import HarmonySetError

MARKER = ".harmonyset-build"  # build_out.MARKER, spelled out so that this file also runs against older code


@pytest.fixture
def release(tmp_path):
    """(release dir, videos dir): 2 train and 2 test items with real tiny mp4s."""
    return make_release(tmp_path / "src", train=2, test=2)


def _build(release, out, **kw):
    return build_hub(release_dir=release[0], videos_dir=release[1], out_dir=out, card=False, **kw)


def test_a_folder_that_is_not_a_build_is_never_replaced(release, tmp_path):
    """A folder holding the user's own files is refused, and left exactly as it was."""
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.txt").write_text("three years of work")
    with pytest.raises(HarmonySetError, match="not an earlier build"):
        _build(release, out)
    assert (out / "thesis.txt").read_text() == "three years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "thesis"]  # no temp folder left


def test_an_earlier_build_is_replaced_and_carries_the_marker(release, tmp_path):
    """A build writes the marker; a second build over it replaces it; an empty folder is fine too."""
    out = tmp_path / "hub"
    out.mkdir()  # empty: nothing to lose
    _build(release, out)
    assert json.loads((out / MARKER).read_text())["tool"] == "harmonyset-hf"
    (out / "stale.parquet").write_text("from the earlier build")
    _build(release, out)
    assert not (out / "stale.parquet").exists() and (out / "oe.parquet").is_file()
    assert MARKER not in {name for name, _ in upload_files(out)}  # hidden: never pushed


def test_an_older_build_without_marker_is_recognised_only_when_it_holds_nothing_else(release, tmp_path):
    """Builds from before the marker are replaced; the same folder with a user file added is not."""
    out = tmp_path / "hub"
    _build(release, out)
    (out / MARKER).unlink()  # as written by an older version
    _build(release, out)
    (out / MARKER).unlink()
    (out / "notes.md").write_text("mine")
    with pytest.raises(HarmonySetError, match="not an earlier build"):
        _build(release, out)
    assert (out / "notes.md").read_text() == "mine"


@pytest.mark.parametrize("which", ["release", "videos", "parent of release"])
def test_an_output_that_is_or_holds_an_input_is_refused(release, which, tmp_path):
    """--out equal to the release folder, the videos folder (even with symlinks) or a parent of them is refused."""
    release_dir, videos_dir = release
    out = {"release": release_dir, "videos": videos_dir, "parent of release": release_dir.parent}[which]
    before = sorted(str(p) for p in out.rglob("*"))
    (out / MARKER).write_text("{}")  # even a folder that looks like a build: an input is never replaced
    with pytest.raises(HarmonySetError, match="input"):
        _build(release, out, link_mode="symlink")
    (out / MARKER).unlink()
    assert sorted(str(p) for p in out.rglob("*")) == before


def test_out_dot_is_a_one_line_error(release, tmp_path, capsys, monkeypatch):
    """`--out .` (and a folder above the current one) is a one-line error, with no temp folder left behind."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = ["build", "--release", str(release[0]), "--videos", str(release[1]), "--out"]
    assert main([*argv, "."]) == 2
    assert main([*argv, ".."]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("harmonyset: error: --out .") for line in err)
    assert "current folder" in err[0] and "above" in err[1]
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["src", "work"]


def _killed_build_temp(out: Path, marked: bool) -> tuple[Path, int]:
    """A temp folder as a build killed with -9 leaves it: named after a process that no longer exists."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(proc.stdout)
    temp = out.parent / f".{out.name}.building-{pid}"
    (temp / "videos").mkdir(parents=True)
    if marked:
        (temp / MARKER).write_text("{}")
    return temp, pid


def test_stale_temp_folders_of_killed_builds_are_cleaned(release, tmp_path):
    """Marked temp folders of dead processes go; unmarked ones and those of live processes stay."""
    out = tmp_path / "hub"
    dead, _ = _killed_build_temp(out, marked=True)
    unmarked = tmp_path / ".hub.building-999999999"  # no such process, but not marked as ours
    unmarked.mkdir()
    alive = tmp_path / f".hub.old-{os.getppid()}"  # a live process (pytest's parent)
    alive.mkdir()
    (alive / MARKER).write_text("{}")
    _build(release, out)
    assert not dead.exists()
    assert unmarked.is_dir() and alive.is_dir()


def test_a_symlink_out_of_the_video_root_and_a_fifo_are_skipped_with_their_reason(release, tmp_path):
    """Links leading outside the root (file or folder) and non-regular files never enter the build or a push."""
    release_dir, videos_dir = release
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    (secret_dir / "diary.mp4").write_bytes((videos_dir / "tr000.mp4").read_bytes())
    # tr000 is a link to a file outside the root; te000 sits in a linked folder; tr001 is a FIFO.
    (videos_dir / "tr000.mp4").unlink()
    (videos_dir / "tr000.mp4").symlink_to(secret_dir / "diary.mp4")
    os.rename(videos_dir / "te000.mp4", secret_dir / "te000.mp4")
    (videos_dir / "linked").symlink_to(secret_dir, target_is_directory=True)
    test = json.loads((release_dir / "HarmonySet_Test.json").read_text())
    test[0]["video"] = "linked/te000.mp4"
    (release_dir / "HarmonySet_Test.json").write_text(json.dumps(test))
    (videos_dir / "tr001.mp4").unlink()
    os.mkfifo(videos_dir / "tr001.mp4")
    out = tmp_path / "hub"
    report = build_hub(release_dir=release_dir, videos_dir=videos_dir, out_dir=out, link_mode="copy")
    reasons = {(p["id"], p["config"]): p["reason"] for p in report["skipped"]}
    assert "outside the video root" in reasons["tr000", "instruct"]
    assert "outside the video root" in reasons["te000", "oe"]
    assert "not a regular file but a FIFO" in reasons["tr001", "instruct"]
    assert report["counts"]["instruct"] == 0 and report["counts"]["oe"] == 1
    listing = [name for name, _ in push_hub(out, "org/name", dry_run=True)["listing"]]
    assert not any(name.endswith(("tr000.mp4", "tr001.mp4", "te000.mp4")) for name in listing)
    assert any(name.endswith("te001.mp4") for name in listing)


def test_derive_swap_follows_the_same_rule(hub_dir, tmp_path, capsys):
    """`derive swap --out` has build's rule: a folder of the user's is refused and kept, the source never replaced."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["derive", "swap", "--data", str(hub_dir), "--limit", "2", "--out"]
    assert main([*argv, str(out)]) == 2
    assert main([*argv, str(hub_dir)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harmonyset: error:")]
    assert len(err) == 2 and "not an earlier build" in err[0] and "is the data input" in err[1]
    assert (out / "notes.txt").read_text() == "mine" and (hub_dir / "oe.parquet").is_file()


def test_demo_never_removes_a_results_folder_it_did_not_make(tmp_path, capsys):
    """`demo --out DIR` clears its own parts only in a folder that carries the demo's marker."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.csv").write_text("a,b")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "results" / "table.csv").read_text() == "a,b"
