"""The media budget: files that ask for too many pixels or too long a decode are refused from their headers."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from harmonyset_hf.cli import main
from harmonyset_hf.media import MediaError, load_clip, probe

REPO = Path(__file__).resolve().parents[1]


def _video(path: Path, width: int, height: int, frames: int = 1, audio_seconds: float = 0.0) -> Path:
    """An h264 mp4 of ``frames`` black frames at 1 fps, plus a silent AAC track whose packets run ``audio_seconds``.

    The audio is one encoded packet of silence repeated every 64 packets' time, so 10 h stay small.
    """
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=1)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=8000) if audio_seconds else None
        if audio is not None:
            audio.layout = "mono"
        black = av.VideoFrame.from_ndarray(np.zeros((height * 3 // 2, width), np.uint8), format="yuv420p")
        for _ in range(frames):
            for packet in video.encode(black):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            silence.sample_rate, silence.pts = 8000, 0
            first = next(p for p in [*audio.encode(silence), *audio.encode(None)] if p.size)
            for pts in range(0, int(audio_seconds * 8000), 1024 * 64):
                packet = av.Packet(bytes(first))
                packet.pts = packet.dts = pts
                packet.duration, packet.stream, packet.time_base = 1024, audio, Fraction(1, 8000)
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def huge_frame(tmp_path_factory) -> Path:
    """One 8192x8192 h264 frame: a 200 KB file whose frame needs 200 MB as RGB (3.2 GB for 16 frames)."""
    path = _video(tmp_path_factory.mktemp("media") / "huge.mp4", 8192, 8192)
    assert path.stat().st_size < 1 << 20
    return path


@pytest.fixture(scope="module")
def ten_hours_of_audio(tmp_path_factory) -> Path:
    """2 s of 64x64 video and an AAC track whose packets run to 10 h."""
    path = _video(tmp_path_factory.mktemp("media") / "long_audio.mp4", 64, 64, frames=2, audio_seconds=36000)
    assert path.stat().st_size < 1 << 20
    return path


def _peak_rss_mb(code: str) -> tuple[float, str]:
    """Peak resident memory (MB) of a fresh Python running ``code``, and what it printed."""
    script = f"import resource\n{code}\nprint('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    rss = float(proc.stdout.split("RSS")[-1]) if "RSS" in proc.stdout else float("inf")
    return rss, proc.stdout + proc.stderr


def test_probe_refuses_8192x8192_frames_before_decoding(huge_frame):
    """`probe` used 4 GB on this 200 KB file; now it is refused from the headers, in a bounded footprint."""
    with pytest.raises(MediaError, match="8192x8192 frames .* exceed the budget"):
        probe(huge_frame)
    rss, out = _peak_rss_mb(f"from harmonyset_hf.media import describe\ntry:\n    describe({str(huge_frame)!r})\n"
                            "except Exception as err:\n    print(type(err).__name__, err)")
    # What remains is FFmpeg's own stream probing inside av.open (0.2-1.6 GB seen under load); before: 3.6 GB.
    assert "MediaTooLargeError" in out and rss < 2500, out


@pytest.fixture
def restore_budget():
    """Put the process's media budget back after a test whose CLI flag raised it."""
    from dataclasses import asdict

    from harmonyset_hf.media import media_budget, set_media_budget

    before = media_budget()
    yield
    set_media_budget(**asdict(before))


def test_probe_cli_error_and_the_flag_that_raises_the_budget(ten_hours_of_audio, capsys, restore_budget):
    """The CLI prints one line naming the file and the flag; with the flag raised the file is read."""
    assert main(["probe", str(ten_hours_of_audio)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harmonyset: error:") and "\n" not in err and "--max-duration" in err
    assert main(["probe", str(ten_hours_of_audio), "--max-duration", "40000", "--frames", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["duration"] > 35000 and "error" not in report


def test_load_clip_refuses_10_hours_of_audio_before_decoding_it(ten_hours_of_audio):
    """Decoding 10 h of audio took 37 s and 5.9 GB; the duration in the headers stops it first."""
    with pytest.raises(MediaError, match="over the budget of 600 s"):
        load_clip(ten_hours_of_audio, num_frames=2)


def test_load_clip_without_max_side_returns_a_bounded_array(tmp_path):
    """Without size= or max_side=, frames come back at most 1920 pixels on their long side."""
    path = tmp_path / "wide.mp4"
    _video(path, 2560, 64, frames=2)
    clip = load_clip(path, num_frames=2, audio_mode="none")
    assert clip.frames.shape == (2, 48, 1920, 3)
    assert load_clip(path, num_frames=1, audio_mode="none", max_side=4096).frames.shape == (1, 64, 2560, 3)
