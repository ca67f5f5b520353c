"""scripts/apt_install.sh, which `make setup` uses to install FFmpeg and FluidSynth: a held apt lock is waited
out (bounded), any other apt error fails at once. Run against a stand-in apt-get on PATH, so no root is needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE = """#!/usr/bin/env bash
# a stand-in apt-get: logs its arguments; `update` fails with apt's lock message $LOCKED times, then passes
echo "$*" >> "$STATE/calls"
if [ "$1" = "update" ]; then
    n=$(cat "$STATE/n" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/n"
    if [ "$n" -lt "$LOCKED" ]; then
        echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)" >&2; exit 100
    fi
fi
if [ -n "${BROKEN:-}" ] && [ "$1" != "update" ]; then echo "E: Unable to locate package $BROKEN" >&2; exit 100; fi
exit 0
"""


def _run(tmp_path: Path, locked: int, wait: int, broken: str = "") -> subprocess.CompletedProcess:
    """Run apt_install.sh ffmpeg with the stand-in apt-get first in PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "apt-get"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path), "LOCKED": str(locked),
           "APT_LOCK_WAIT": str(wait), "APT_LOCK_POLL": "1", "BROKEN": broken}
    return subprocess.run(["bash", str(ROOT / "scripts" / "apt_install.sh"), "ffmpeg"], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_a_held_apt_lock_is_waited_out_then_the_packages_install(tmp_path):
    r = _run(tmp_path, locked=2, wait=30)
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[:3] == ["update -qq"] * 3
    assert calls[3].endswith("install -y -qq --no-install-recommends ffmpeg")
    assert "waiting up to 30 s" in r.stderr


def test_a_lock_held_past_the_wait_fails_with_a_clear_line(tmp_path):
    r = _run(tmp_path, locked=100, wait=2)
    assert r.returncode != 0
    assert "Could not get lock" in r.stderr
    assert "still locked by another process after 2 s" in r.stderr
    assert "install" not in (tmp_path / "calls").read_text()


def test_any_other_apt_error_fails_at_once(tmp_path):
    r = _run(tmp_path, locked=0, wait=30, broken="ffmpeg")
    assert r.returncode != 0
    assert "Unable to locate package ffmpeg" in r.stderr
    assert "waiting" not in r.stderr
    assert len((tmp_path / "calls").read_text().splitlines()) == 2  # update, one install: no retry


def test_ensure_ffmpeg_reads_the_whole_library_list(tmp_path):
    """libavcodec listed first in a long `ldconfig -p` (past the pipe's buffer): found, nothing installed. With
    `grep -q` the list's writer died of SIGPIPE once grep had its match and, under pipefail, FFmpeg read as missing
    (4 runs in 300 on this machine's real list)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ldconfig").write_text("#!/usr/bin/env bash\n"
                                      "echo '\tlibavcodec.so.59 (libc6,x86-64) => /x/libavcodec.so.59'\n"
                                      "yes '\tlibfoo.so.1 (libc6,x86-64) => /x/libfoo.so.1' | head -n 20000\n")
    (bin_dir / "ffprobe").write_text("#!/usr/bin/env bash\nexit 0\n")
    (bin_dir / "apt-get").write_text(FAKE)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path), "LOCKED": "0"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_ffmpeg.sh")], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "missing" not in r.stderr
    assert not (tmp_path / "calls").exists()
