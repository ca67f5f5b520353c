"""harmonyset_hf.media on real files made here with PyAV/ffmpeg: content, audio, backends, bad files, dataset, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest

from harmonyset_hf.media import (
    BackendNotInstalledError,
    DecodeTimeoutError,
    EmptyFileError,
    MediaError,
    MissingFileError,
    NotMediaError,
    NoVideoStreamError,
    TruncatedFileError,
    load_clip,
    load_frames_at_fps,
    probe,
    sample_frame_indices,
    videollama2_audio_clips,
)
from harmonyset_hf.mini.indexed_clip import read_frame_index, write_clip

VFR_TIMES = [0, 0.02, 0.1, 0.13, 0.3, 0.32, 0.5, 0.7, 0.71, 0.9, 1.2, 1.25, 1.5, 1.6, 1.9, 1.95, 2.0, 2.2, 2.21, 2.5]

# name -> (write_clip options, source channels, source rate)
CLIPS = {
    "h264_aac.mp4": ({}, 2, 44100),
    "mono8k.mp4": ({"layout": "mono", "sample_rate": 8000}, 1, 8000),
    "vp9_opus.webm": ({"vcodec": "libvpx-vp9", "acodec": "libopus", "sample_rate": 48000}, 2, 48000),
    "h264_51.mkv": ({"layout": "5.1", "sample_rate": 48000}, 6, 48000),
    "pcm_22k.mov": ({"acodec": "pcm_s16le", "layout": "mono", "sample_rate": 22050}, 1, 22050),
    "odd.webm": ({"vcodec": "libvpx-vp9", "width": 33, "height": 25, "acodec": "libopus", "sample_rate": 48000,
                  "layout": "mono"}, 1, 48000),
    "vfr.mkv": ({"frame_times": VFR_TIMES, "seconds": 2.5}, 2, 44100),
    "gop.mp4": ({"seconds": 4, "gop": 10, "tone_hz": 1000.0}, 2, 44100),
    "short.mp4": ({"seconds": 0.2}, 2, 44100),
    "noaudio.mp4": ({"acodec": None}, 0, 0),
    "long.mp4": ({"seconds": 65, "fps": 2, "width": 32, "height": 24, "layout": "mono", "sample_rate": 8000}, 1, 8000),
}
FORMATS = ["h264_aac.mp4", "vp9_opus.webm", "h264_51.mkv", "pcm_22k.mov", "odd.webm", "vfr.mkv", "gop.mp4",
           "short.mp4", "noaudio.mp4", "long.mp4", "rot90.mp4"]


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Tiny clips of every kind the loaders must handle, plus broken ones."""
    root = tmp_path_factory.mktemp("media")
    paths = {name: write_clip(root / name, **opts) for name, (opts, _, _) in CLIPS.items()}
    paths["audio_only.m4a"] = write_clip(root / "audio_only.m4a", vcodec=None)
    # Rotation as phones write it (display matrix); ffmpeg's `rotate` tag sets it without re-encoding.
    paths["rot90.mp4"] = root / "rot90.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(paths["h264_aac.mp4"]), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(paths["rot90.mp4"])], check=True)
    data = paths["h264_aac.mp4"].read_bytes()
    (root / "empty.mp4").write_bytes(b"")
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: cannot open
    faststart = root / "faststart.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(paths["h264_aac.mp4"]), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True)
    fs = faststart.read_bytes()
    (root / "truncated_faststart.mp4").write_bytes(fs[: len(fs) // 2])  # opens, but frames are missing
    webm = paths["vp9_opus.webm"].read_bytes()
    (root / "truncated.webm").write_bytes(webm[: len(webm) // 3])
    (root / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    for name in ("empty.mp4", "truncated.mp4", "truncated_faststart.mp4", "truncated.webm", "random.mp4"):
        paths[name] = root / name
    paths["missing.mp4"] = root / "missing.mp4"
    return paths


def _indices_in(frames: np.ndarray) -> list[int]:
    return [read_frame_index(f) for f in frames]


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[np.argmax(spectrum)])


def _reference_indices(n: int, k: int) -> list[int]:
    """VideoLLaMA2's frame_sample('uniform'), written out as in its mm_utils.py."""
    seg_size = float(n - 1) / k
    ids = [((seg_size * i) + (seg_size * (i + 1))) / 2 for i in range(k)]
    return [int(x) for x in np.round(np.array(ids) + 1e-6)]


def _packet_keyframes(path) -> list[int]:
    """Frame indices (presentation order) of the keyframes, read independently of harmonyset_hf.media."""
    with av.open(str(path)) as c:
        frames = sorted((f.pts, f.key_frame) for f in c.decode(video=0))
    return [i for i, (_, key) in enumerate(frames) if key]


# --- frame choice ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,k", [(900, 16), (750, 32), (1890, 64), (17, 16), (16, 16), (5, 16), (1, 16), (2, 3)])
def test_sample_frame_indices_is_videollama2s_rule(n, k):
    idx = sample_frame_indices(n, k)
    assert idx.tolist() == _reference_indices(n, k)
    assert len(idx) == k and idx.min() >= 0 and idx.max() <= n - 1 and np.all(np.diff(idx) >= 0)
    if 1 < n <= k:  # fewer frames than asked: repeats, every frame at least once
        assert set(idx.tolist()) == set(range(n))


def test_sample_frame_indices_small_worked_example():
    assert sample_frame_indices(10, 4).tolist() == [1, 3, 6, 8]  # seg 2.25: 1.125, 3.375, 5.625, 7.875
    with pytest.raises(ValueError):
        sample_frame_indices(0, 16)


@pytest.mark.parametrize("name", FORMATS)
def test_frames_are_the_indexed_ones(clips, name):
    clip = load_clip(clips[name], num_frames=16)
    assert clip.frames.dtype == np.uint8 and clip.frames.ndim == 4 and clip.frames.shape[0] == 16
    assert clip.frame_indices.tolist() == sample_frame_indices(clip.num_video_frames, 16).tolist()
    upright = clip.frames if clip.rotation == 0 else np.rot90(clip.frames, -clip.rotation // 90, axes=(1, 2))
    assert _indices_in(upright) == clip.frame_indices.tolist()
    assert np.all(np.diff(clip.frame_times) >= 0) and clip.duration > 0 and clip.fps > 0


@pytest.mark.parametrize("k", [32, 64])
def test_more_frames(clips, k):
    clip = load_clip(clips["gop.mp4"], num_frames=k)
    assert _indices_in(clip.frames) == clip.frame_indices.tolist() == _reference_indices(100, k)


def test_fewer_frames_than_asked_repeat_deterministically(clips):
    clip = load_clip(clips["short.mp4"], num_frames=16)
    assert clip.num_video_frames == 5
    assert clip.frame_indices.tolist() == _reference_indices(5, 16)
    assert _indices_in(clip.frames) == clip.frame_indices.tolist()
    assert any("fewer than the 16 asked" in w for w in clip.warnings)


def test_variable_frame_rate_times_and_content(clips):
    clip = load_clip(clips["vfr.mkv"], num_frames=8)
    assert clip.num_video_frames == len(VFR_TIMES)
    assert _indices_in(clip.frames) == clip.frame_indices.tolist()
    np.testing.assert_allclose(clip.frame_times, [VFR_TIMES[i] for i in clip.frame_indices], atol=1e-3)


def test_rotation_is_applied(clips):
    base = load_clip(clips["h264_aac.mp4"], num_frames=8)
    rot = load_clip(clips["rot90.mp4"], num_frames=8)
    assert rot.rotation == 90 and base.frames.shape[1:3] == (48, 64) and rot.frames.shape[1:3] == (64, 48)
    np.testing.assert_array_equal(rot.frames, np.rot90(base.frames, 1, axes=(1, 2)))
    # ffmpeg's own autorotation (the player's view) gives the same picture.
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips["rot90.mp4"]), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    first = np.frombuffer(raw, np.uint8).reshape(64, 48, 3)
    every = load_clip(clips["rot90.mp4"], num_frames=50)
    assert every.frame_indices[0] == 0 and np.abs(every.frames[0].astype(int) - first).mean() < 1.0
    assert probe(clips["rot90.mp4"])["width"] == 48


def test_odd_sizes_and_long_clip(clips):
    assert load_clip(clips["odd.webm"]).frames.shape == (16, 25, 33, 3)
    long = load_clip(clips["long.mp4"])
    assert long.duration > 60 and long.num_video_frames == 130
    assert abs(long.audio.shape[0] / 16000 - 65) < 0.2


def test_resize(clips):
    clip = load_clip(clips["h264_aac.mp4"], num_frames=4, max_side=32)
    assert clip.frames.shape == (4, 24, 32, 3)
    assert _indices_in(clip.frames) == clip.frame_indices.tolist()
    rot = load_clip(clips["rot90.mp4"], num_frames=4, size=(12, 16))  # size is (W, H) as displayed
    assert rot.frames.shape == (4, 16, 12, 3)


def test_frames_at_fps_for_cut_detection(clips):
    clip = load_frames_at_fps(clips["h264_aac.mp4"], fps=10, size=(16, 12))
    assert clip.frames.shape == (20, 12, 16, 3) and clip.audio is None
    assert clip.frame_indices.tolist() == [int(j * 2.5) for j in range(20)]  # 25 fps sampled at 10 fps
    assert _indices_in(clip.frames) == clip.frame_indices.tolist()


# --- keyframe seeking ------------------------------------------------------------------------------

def test_keyframe_mode_takes_the_nearest_keyframes(clips):
    path = clips["gop.mp4"]
    keys = _packet_keyframes(path)
    assert keys == list(range(0, 100, 10))
    clip = load_clip(path, num_frames=16, seek="keyframe")
    targets = _reference_indices(100, 16)
    for got, target in zip(clip.frame_indices.tolist(), targets):
        assert got in keys and abs(got - target) == min(abs(k - target) for k in keys)
    assert _indices_in(clip.frames) == clip.frame_indices.tolist()
    np.testing.assert_allclose(clip.frame_times, clip.frame_indices / 25.0, atol=1e-3)


# --- backends --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seek", ["exact", "keyframe"])
@pytest.mark.parametrize("name", ["h264_aac.mp4", "vp9_opus.webm", "h264_51.mkv", "pcm_22k.mov", "vfr.mkv",
                                  "odd.webm", "short.mp4", "gop.mp4", "rot90.mp4"])
def test_backends_agree(clips, name, seek):
    ref = load_clip(clips[name], num_frames=8, seek=seek)
    for backend in ("decord", "torchcodec"):
        other = load_clip(clips[name], num_frames=8, seek=seek, backend=backend)
        assert other.frame_indices.tolist() == ref.frame_indices.tolist()
        assert other.frames.shape == ref.frames.shape
        tolerance = 3.0 if (backend == "decord" and ref.rotation) else 1.0  # decord squeezes 90-degree video
        assert np.abs(other.frames.astype(int) - ref.frames).mean() < tolerance, backend
        assert not any("counts" in w for w in other.warnings), other.warnings


def test_missing_backend_says_which_extra(clips, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    with pytest.raises(BackendNotInstalledError, match=r"harmonyset-hf\[decord\]"):
        load_clip(clips["h264_aac.mp4"], backend="decord")


# --- audio -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["h264_aac.mp4", "mono8k.mp4", "vp9_opus.webm", "h264_51.mkv", "pcm_22k.mov",
                                  "gop.mp4"])
def test_audio_is_the_sine_at_16k(clips, name):
    opts, channels, rate = CLIPS[name]
    clip = load_clip(clips[name], num_frames=2)
    assert clip.has_audio and clip.audio.dtype == np.float32 and clip.audio.ndim == 1 and clip.sample_rate == 16000
    seconds = opts.get("seconds", 2.0)
    assert abs(clip.audio.shape[0] / 16000 - seconds) < 0.1
    assert abs(_peak_hz(clip.audio, 16000) - opts.get("tone_hz", 440.0)) < 3.0
    assert 0.3 < np.abs(clip.audio).max() < 1.0
    info = probe(clips[name])["streams"]
    assert [(s["channels"], s["sample_rate"]) for s in info if s["type"] == "audio"] == [(channels, rate)]


def test_audio_other_rate(clips):
    clip = load_clip(clips["h264_aac.mp4"], num_frames=1, sample_rate=22050)
    assert abs(clip.audio.shape[0] / 22050 - 2.0) < 0.1 and abs(_peak_hz(clip.audio, 22050) - 440) < 3


def test_no_audio_track_is_not_an_error(clips):
    clip = load_clip(clips["noaudio.mp4"])
    assert clip.has_audio is False and clip.audio is None
    assert any("no audio" in w for w in clip.warnings)


def test_videollama2_audio_clips(clips):
    full = load_clip(clips["long.mp4"], num_frames=1).audio
    vl2 = load_clip(clips["long.mp4"], num_frames=1, audio_mode="videollama2").audio
    assert vl2.shape == (30 * 16000,)
    np.testing.assert_array_equal(vl2, videollama2_audio_clips(full, 16000))
    step = (full.shape[0] / 16000 - 2) / 7
    for i in range(8):  # clip i of 2 s starts at i * (duration - 2) / 7
        start = int(i * step * 16000)
        np.testing.assert_allclose(vl2[i * 32000: i * 32000 + 1000], full[start: start + 1000], atol=1e-6)
    assert not vl2[16 * 16000:].any()
    short = videollama2_audio_clips(np.ones(16000, np.float32), 16000)  # 1 s: eight copies of it
    assert short[: 8 * 16000].all() and not short[8 * 16000:].any()


# --- sources ----------------------------------------------------------------------------------------

def test_sources_bytes_dict_and_datasets_video(clips):
    from datasets import Dataset, Video

    path = clips["h264_aac.mp4"]
    ref = load_clip(path, num_frames=4)
    ds = Dataset.from_dict({"video": [str(path)]}).cast_column("video", Video())
    decoder = ds[0]["video"]
    assert type(decoder).__name__ == "VideoDecoder"
    raw = ds.cast_column("video", Video(decode=False))[0]["video"]
    for source in (path.read_bytes(), {"path": None, "bytes": path.read_bytes()}, {"path": str(path)}, raw, decoder):
        clip = load_clip(source, num_frames=4)
        np.testing.assert_array_equal(clip.frames, ref.frames)
        np.testing.assert_array_equal(clip.audio, ref.audio)


# --- bad files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,error", [
    ("missing.mp4", MissingFileError), ("empty.mp4", EmptyFileError), ("truncated.mp4", TruncatedFileError),
    ("truncated_faststart.mp4", TruncatedFileError), ("truncated.webm", TruncatedFileError),
    ("random.mp4", NotMediaError), ("audio_only.m4a", NoVideoStreamError),
])
def test_bad_files_raise_the_right_media_error(clips, name, error):
    with pytest.raises(error) as info:
        load_clip(clips[name])
    assert isinstance(info.value, MediaError) and name in str(info.value) and info.value.reason


def test_bad_inputs_of_other_kinds(tmp_path, clips):
    with pytest.raises(EmptyFileError):
        load_clip(b"")
    with pytest.raises(NotMediaError):
        load_clip(tmp_path)  # a directory
    with pytest.raises(MissingFileError):
        load_clip({"path": str(tmp_path / "nope.mp4"), "bytes": None})
    assert isinstance(MissingFileError("x", "y"), FileNotFoundError)
    with pytest.raises(MediaError, match="unsupported source"):
        load_clip(12345)
    with pytest.raises(ValueError):
        load_clip(clips["h264_aac.mp4"], seek="fast")
    with pytest.raises(ValueError):
        load_clip(clips["h264_aac.mp4"], num_frames=0)
    # sizes and rates that used to give 1-pixel frames or be silently ignored
    for bad in ({"size": (0, 10)}, {"max_side": 0}, {"sample_rate": 0}):
        with pytest.raises(ValueError, match="must be"):
            load_clip(clips["h264_aac.mp4"], **bad)
    with pytest.raises(ValueError, match="size must be"):
        load_frames_at_fps(clips["h264_aac.mp4"], size=(64, -1))
    info = probe(clips["audio_only.m4a"])  # probing works on what load_clip refuses
    assert info["has_video"] is False and info["has_audio"] and info["width"] is None


def test_decode_deadline(clips):
    with pytest.raises(DecodeTimeoutError, match="h264_aac.mp4"):
        load_clip(clips["h264_aac.mp4"], timeout=0)


# --- dataset -----------------------------------------------------------------------------------------

def test_clip_dataset_in_workers_skips_and_counts(clips):
    import torch

    from harmonyset_hf.media.dataset import ClipDataset, collate_clips

    names = ["h264_aac.mp4", "random.mp4", "vp9_opus.webm", "missing.mp4", "pcm_22k.mov", "noaudio.mp4"]
    rows = [{"id": n, "video": str(clips[n])} for n in names]
    ds = ClipDataset(rows, num_frames=4, size=(32, 24), on_error="skip")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_clips)
    seen, skipped = [], []
    for batch in loader:
        seen += batch["id"]
        skipped += [s["id"] for s in batch["skipped"]]
        if batch["id"]:
            assert batch["frames"].shape[1:] == (4, 24, 32, 3) and batch["frames"].dtype == torch.uint8
            assert batch["audio"].shape[0] == len(batch["id"]) == batch["audio_lengths"].shape[0]
    assert seen == ["h264_aac.mp4", "vp9_opus.webm", "pcm_22k.mov", "noaudio.mp4"]  # in order
    assert skipped == ["random.mp4", "missing.mp4"]
    strict = ClipDataset(rows, num_frames=4, on_error="raise")
    with pytest.raises(NotMediaError):
        strict[1]


# --- CLI -----------------------------------------------------------------------------------------------

def test_cli_probe(clips, capsys):
    from harmonyset_hf.cli import main

    assert main(["probe", str(clips["h264_51.mkv"]), "--frames", "4", "--seek", "keyframe"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rotation"] == 0 and report["has_audio"] and report["fps"] == 25.0
    assert len(report["sampled"]["frame_times"]) == 4
    assert report["audio"]["source_channels"] == 6 and report["audio"]["source_rate"] == 48000
    assert 0.3 < report["audio"]["peak"] <= 1.0
    assert main(["probe", str(clips["random.mp4"])]) == 2
    assert "random.mp4" in capsys.readouterr().err


def test_media_module_does_not_need_torch():
    code = "import sys, harmonyset_hf.media; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", ["h264_51.mkv", "vp9_opus.webm", "mono8k.mp4"])
def test_audio_matches_videollama2s_ffmpeg_subprocess(clips, name):
    """In-process decoding gives what `ffmpeg -i f -f s16le -ac 1 -ar 16000 -` gives, to a bit or two."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clips[name]), "-vn", "-acodec", "pcm_s16le", "-ac", "1",
           "-ar", "16000", "-f", "s16le", "-"]
    ref = np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, np.int16) / 32768.0
    audio = load_clip(clips[name], num_frames=1).audio
    assert abs(audio.shape[0] - ref.shape[0]) <= 16
    n = min(audio.shape[0], ref.shape[0])
    assert np.abs(audio[:n] - ref[:n]).max() <= 3 / 32768


@pytest.mark.parametrize("name", ["h264_aac.mp4", "vp9_opus.webm", "h264_51.mkv"])
@pytest.mark.parametrize("seed", range(4))
def test_corrupt_bytes_never_crash(clips, name, seed):
    """Random damage inside a file gives a Clip or a MediaError, nothing else."""
    data = bytearray(clips[name].read_bytes())
    rng = np.random.default_rng(seed)
    start = int(rng.integers(len(data) // 4, len(data) // 2))
    data[start:start + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    for seek in ("exact", "keyframe"):
        try:
            clip = load_clip(bytes(data), num_frames=8, seek=seek)
        except MediaError as err:
            assert "<bytes>" in str(err)
        else:
            assert clip.frames.shape[0] == 8


def test_clip_dataset_over_a_datasets_video_column(clips):
    from datasets import Dataset, Video

    from harmonyset_hf.media.dataset import ClipDataset, collate_clips

    names = ["h264_aac.mp4", "pcm_22k.mov"]
    ds = Dataset.from_dict({"id": names, "video": [str(clips[n]) for n in names]}).cast_column("video", Video())
    items = ClipDataset(ds, num_frames=2, audio_mode="videollama2")
    batch = collate_clips([items[0], items[1]])
    assert batch["id"] == names and batch["frames"].shape == (2, 2, 48, 64, 3)
    assert batch["audio"].shape == (2, 30 * 16000) and batch["audio_lengths"].tolist() == [480000, 480000]


def test_no_decoder_outlives_a_call(clips):
    """Decoders/resamplers own FFmpeg threads: none may survive a call, even one that raised (fork safety)."""
    import gc

    load_clip(clips["h264_aac.mp4"], num_frames=2)
    errors = []
    for name, kwargs in (("truncated_faststart.mp4", {}), ("h264_aac.mp4", {"timeout": 0}), ("random.mp4", {})):
        with pytest.raises(MediaError) as info:
            load_clip(clips[name], **kwargs)
        errors.append(info.value)  # kept alive, as pytest or a skip log would
    with pytest.raises(MediaError):
        probe(clips["truncated.mp4"])
    gc.collect()
    threaded = (av.audio.resampler.AudioResampler, av.filter.Graph, av.container.InputContainer,
                av.codec.context.CodecContext)
    alive = [type(o).__name__ for o in gc.get_objects() if issubclass(type(o), threaded)]
    assert alive == [] and len(errors) == 3
