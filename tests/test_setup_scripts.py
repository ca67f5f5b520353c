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


def _script(tmp_path: Path, name: str, *args: str, env: dict[str, str] | None = None,
            stand_ins: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run scripts/``name`` with the stand-in apt-get (:data:`FAKE`, logging under ``tmp_path``) and the executables
    ``stand_ins`` (name: bash body) first in PATH, ``env`` added to the environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for exe, body in {"apt-get": FAKE, **(stand_ins or {})}.items():
        (bin_dir / exe).write_text(body)
        (bin_dir / exe).chmod(0o755)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path), "LOCKED": "0",
                "APT_LOCK_POLL": "1", **(env or {})}
    return subprocess.run(["bash", str(ROOT / "scripts" / name), *args], env=full_env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def _run(tmp_path: Path, locked: int, wait: int, broken: str = "") -> subprocess.CompletedProcess:
    """apt_install.sh ffmpeg, the stand-in apt-get's ``update`` finding the lock held ``locked`` times."""
    return _script(tmp_path, "apt_install.sh", "ffmpeg",
                   env={"LOCKED": str(locked), "APT_LOCK_WAIT": str(wait), "BROKEN": broken})


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
    r = _script(tmp_path, "ensure_ffmpeg.sh", stand_ins={
        "ldconfig": "#!/usr/bin/env bash\necho '\tlibavcodec.so.59 (libc6,x86-64) => /x/libavcodec.so.59'\n"
                    "yes '\tlibfoo.so.1 (libc6,x86-64) => /x/libfoo.so.1' | head -n 20000\n",
        "ffprobe": "#!/usr/bin/env bash\nexit 0\n"})
    assert r.returncode == 0, r.stderr
    assert "missing" not in r.stderr
    assert not (tmp_path / "calls").exists()
