"""Frames and music from any clip: a path, bytes or a `datasets` Video value, decoded in-process.

One pass demuxes the file: it indexes the video packets (presentation order, keyframes) and decodes
and resamples the audio on the way. Frames are then decoded with PyAV (default; `seek="exact"`
seeks to the keyframe before each target and decodes forward only as far as needed, skipping
non-reference frames nobody asked for; `seek="keyframe"` decodes only the keyframes nearest the
targets), or read by decord / torchcodec at the same indices (see `backends.py`).
Every failure is a `MediaError` naming the file and the reason.

Every call is bounded by the media budget (`media_budget()`, raised by `set_media_budget()`, the
`--max-pixels`/`--max-duration` flags or `$HARMONYSET_MAX_PIXELS`/`$HARMONYSET_MAX_DURATION`):
frames over 4096x4096 pixels or streams over 600 s are refused from the file's headers before
anything is decoded, and frames come back at most `DEFAULT_MAX_SIDE` pixels on their long side
unless `size=` or `max_side=` say otherwise.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ._av import (  # noqa: F401  (errors, budget, open_media, pick_streams, resolve_source: part of this API)
    DEFAULT_MAX_DURATION,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_PIXELS,
    BackendNotInstalledError,
    DecodeTimeoutError,
    EmptyFileError,
    MediaBudget,
    MediaError,
    MediaTooLargeError,
    MissingFileError,
    NotMediaError,
    NoVideoStreamError,
    TruncatedFileError,
    _check,
    _decode_exact,
    _decode_keyframes,
    _Index,
    _looks_like_media,
    _nearest_keyframes,
    _rotation_steps,
    _scan,
    _to_rgb,
    check_budget,
    check_output,
    media_budget,
    open_media,
    output_size,
    pick_streams,
    resolve_source,
    set_media_budget,
)
from .backends import read_frames

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_SIDE = 1920  # long side of returned frames when neither size= nor max_side= is given (Shorts: unchanged)
BACKENDS = ("pyav", "decord", "torchcodec")
SEEK_MODES = ("exact", "keyframe")
AUDIO_MODES = ("full", "videollama2", "none")


@dataclass
class Clip:
    """Frames (uint8 [T, H, W, 3], rotation applied) and mono float32 audio of one video."""

    frames: np.ndarray
    frame_indices: np.ndarray
    frame_times: np.ndarray
    fps: float
    duration: float
    audio: np.ndarray | None
    has_audio: bool
    sample_rate: int
    audio_start: float = 0.0      # time (s) of audio[0] in the file's clock (frame_times use the same clock)
    num_video_frames: int = 0
    rotation: int = 0
    source: str = ""
    backend: str = "pyav"
    seek: str = "exact"
    warnings: list[str] = field(default_factory=list)


def sample_frame_indices(num_total: int, k: int) -> np.ndarray:
    """VideoLLaMA2's segment-midpoint rule: `seg=(N-1)/k; idx=round(seg*(i+0.5))`, exactly as it rounds.

    Always returns `k` non-decreasing indices in [0, N-1]; with fewer frames than asked (N < k)
    indices repeat (each frame at least once when N > 1), as VideoLLaMA2's decord loader did.
    """
    if num_total < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1 (got num_total={num_total}, k={k})")
    seg = float(num_total - 1) / k
    mids = [(seg * i + seg * (i + 1)) / 2 for i in range(k)]
    return np.round(np.array(mids) + 1e-6).astype(np.int64)


def videollama2_audio_clips(wave: np.ndarray, sample_rate: int, clips: int = 8, clip_seconds: float = 2.0,
                            total_seconds: float = 30.0) -> np.ndarray:
    """VideoLLaMA2's audio input: `clips` windows of `clip_seconds` spread evenly, concatenated, zero-padded."""
    duration = wave.shape[0] / sample_rate
    max_start = Fraction(max(duration - clip_seconds, 0))  # pytorchvideo's ConstantClipsPerVideoSampler
    step = max_start / max(clips - 1, 1)
    parts = []
    for i in range(clips):
        start = step * i
        parts.append(wave[int(start * sample_rate): int((start + Fraction(clip_seconds)) * sample_rate)])
    out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    total = int(total_seconds * sample_rate)
    out = out[:total]
    return np.pad(out, (0, total - out.shape[0])).astype(np.float32)


# --- public API ------------------------------------------------------------------------------------

def probe(source: Any, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """A cheap summary of a media file: format, duration, size, streams (codec, fps, frames, rotation, audio rate)."""
    return _without_decoders(_probe, source, timeout)


def _without_decoders(fn, *args):
    """Call `fn`; a MediaError leaves with its tracebacks (and those of its causes) dropped.

    Their frames hold PyAV decoders and resamplers, which own FFmpeg threads. Kept alive by a
    traceback they end up as cyclic garbage, and if a forked DataLoader worker is the one to collect
    them it joins threads that do not exist there and hangs forever.
    """
    try:
        return fn(*args)
    except MediaError as err:
        error, seen = err, set()
        while err is not None and id(err) not in seen:
            seen.add(id(err))
            err.__traceback__ = None
            err = err.__cause__ or err.__context__
    raise error


def _probe(source: Any, timeout: float) -> dict:
    import av

    src = resolve_source(source)
    deadline = time.monotonic() + timeout
    with open_media(src) as container:
        vs, audio_stream = pick_streams(container, src)
        check_budget(container, vs, src)  # from the headers: the first frame below is decoded only within budget
        streams = []
        for s in container.streams:
            cc = s.codec_context
            info: dict[str, Any] = {"index": s.index, "type": s.type, "codec": cc.name if cc else None}
            if s.type == "video":
                info.update(width=cc.width, height=cc.height, frames=s.frames or None,
                            fps=float(s.average_rate) if s.average_rate else None, pix_fmt=cc.pix_fmt)
            elif s.type == "audio":
                info.update(sample_rate=cc.sample_rate, channels=cc.channels, layout=cc.layout.name)
            streams.append(info)
        rotation = 0
        if vs is not None:
            try:
                for frame in container.decode(vs):
                    _check(deadline, src.name, "decoding the first frame")
                    rotation = int(frame.rotation or 0)
                    break
            except av.error.FFmpegError as err:
                raise TruncatedFileError(src.name, f"the first frame does not decode ({err})") from err
        k = _rotation_steps(rotation)
        width = vs.codec_context.width if vs is not None else None
        height = vs.codec_context.height if vs is not None else None
        return {
            "source": src.name,
            "format": container.format.name,
            "duration": container.duration / 1_000_000 if container.duration else None,
            "bit_rate": container.bit_rate or None,
            "has_video": vs is not None,
            "has_audio": audio_stream is not None,
            "width": (height if k % 2 else width) if vs is not None else None,
            "height": (width if k % 2 else height) if vs is not None else None,
            "rotation": rotation,
            "fps": float(vs.average_rate) if vs is not None and vs.average_rate else None,
            "streams": streams,
        }


def _check_output(size: tuple[int, int] | None, max_side: int | None, sample_rate: int) -> None:
    """Refuse sizes and rates that would silently give 1-pixel frames or ignored values."""
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (width, height) of positive ints, not {size!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, not {max_side}")
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")


def load_clip(source: Any, num_frames: int = 16, sample_rate: int = 16000, backend: str = "pyav",
              seek: str = "exact", *, audio_mode: str = "full", size: tuple[int, int] | None = None,
              max_side: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> Clip:
    """Frames at VideoLLaMA2's segment midpoints (or nearest keyframes) and the mono audio of one clip.

    `size=(W, H)` or `max_side=` resize the frames (as displayed, after rotation; without either,
    the long side is cut to `DEFAULT_MAX_SIDE`); `audio_mode`: "full" (the whole track),
    "videollama2" (8 x 2 s clips, zero-padded to 30 s) or "none". Files beyond the media budget
    raise `MediaTooLargeError` before decoding.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if seek not in SEEK_MODES:
        raise ValueError(f"seek must be one of {SEEK_MODES}, not {seek!r}")
    if audio_mode not in AUDIO_MODES:
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, not {num_frames}")
    _check_output(size, max_side, sample_rate)
    if size is None and max_side is None:  # a bounded array by default: 16 frames of 8192x8192 would be 3.2 GB
        max_side = DEFAULT_MAX_SIDE
    return _without_decoders(_load, source, sample_rate, backend, seek, audio_mode, size, max_side, timeout,
                             lambda idx: [idx.pts[i] for i in sample_frame_indices(len(idx.pts), num_frames)],
                             num_frames)


def load_frames_at_fps(source: Any, fps: float = 10.0, size: tuple[int, int] | None = None,
                       max_side: int | None = None, *, audio_mode: str = "none", sample_rate: int = 16000,
                       timeout: float = DEFAULT_TIMEOUT) -> Clip:
    """Frames on a regular time grid (the frame shown at each multiple of 1/fps), e.g. small ones for cut detection."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    _check_output(size, max_side, sample_rate)
    if size is None and max_side is None:
        max_side = DEFAULT_MAX_SIDE

    def grid(idx: _Index) -> list[int]:
        start = idx.pts[0]
        last = float((idx.pts[-1] - start) * idx.time_base)
        step = 1 / (fps * idx.time_base)
        return [idx.pts[max(bisect.bisect_right(idx.pts, start + int(j * step)) - 1, 0)]
                for j in range(int(last * fps + 1e-9) + 1)]

    return _without_decoders(_load, source, sample_rate, "pyav", "exact", audio_mode, size, max_side, timeout,
                             grid, None)


def _load(source, sample_rate, backend, seek, audio_mode, size, max_side, timeout, choose, num_frames) -> Clip:
    import av

    src = resolve_source(source)
    deadline = time.monotonic() + timeout
    with open_media(src) as container:
        vs, audio_stream = pick_streams(container, src)
        if vs is None:
            what = "audio only" if audio_stream is not None else "no audio or video stream either"
            if audio_stream is None and not _looks_like_media(src.head()):
                raise NotMediaError(src.name, "not a media file: no streams FFmpeg recognises")
            raise NoVideoStreamError(src.name, f"no video stream ({what})")
        check_budget(container, vs, src)  # before the demux pass decodes any audio or a frame
        index = _scan(container, vs, audio_stream, src, deadline, sample_rate, audio_mode != "none")
        warnings = list(index.warnings)
        targets = choose(index)
        out_w, out_h = output_size(vs.codec_context.width, vs.codec_context.height, size, max_side)
        check_output(src, len(targets), out_w, out_h)
        if seek == "keyframe":
            targets = _nearest_keyframes(index, targets)
        if num_frames is not None and len(index.pts) < num_frames:
            warnings.append(f"the video has {len(index.pts)} frames, fewer than the {num_frames} asked: "
                            "indices repeat (segment-midpoint rule)")
        indices = [bisect.bisect_left(index.pts, t) for t in targets]
        rotation = 0
        if backend == "pyav":
            vs.thread_type = "AUTO"

            def convert(frame):
                nonlocal rotation
                rotation = int(frame.rotation or 0)
                return _to_rgb(frame, size, max_side)

            bad = [0]
            try:
                if seek == "keyframe":
                    decoded = _decode_keyframes(container, vs, targets, convert, src, deadline, bad)
                else:
                    decoded = _decode_exact(container, vs, index, targets, convert, src, deadline, bad)
            except av.error.FFmpegError as err:
                raise TruncatedFileError(src.name, f"decoding failed ({err})") from err
            if bad[0]:
                warnings.append(f"{bad[0]} video packets could not be decoded (corrupt data?) and were skipped")
            frames = np.stack([decoded[t] for t in targets])
        else:
            frames, rotation, note = read_frames(backend, src, container, vs, indices, len(index.pts), size,
                                                 max_side, deadline)
            warnings += note
    audio = index.audio
    has_audio = audio_stream is not None
    if audio_stream is None:
        warnings.append("the clip has no audio track")
    if audio_mode == "videollama2":
        audio = videollama2_audio_clips(audio if audio is not None else np.zeros(0, np.float32), sample_rate)
    times = np.array([float(t * index.time_base) for t in targets], dtype=np.float64)
    return Clip(frames=frames, frame_indices=np.array(indices, dtype=np.int64), frame_times=times, fps=index.fps,
                duration=index.duration, audio=audio, has_audio=has_audio, sample_rate=sample_rate,
                audio_start=index.audio_start if audio_mode == "full" else 0.0, num_video_frames=len(index.pts),
                rotation=rotation, source=src.name, backend=backend, seek=seek, warnings=warnings)


def describe(source: Any, num_frames: int = 16, backend: str = "pyav", seek: str = "exact",
             sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """`probe` plus what `load_clip` makes of the file (sampled indices/times, audio peak, time taken, warnings)."""
    report = probe(source, timeout=timeout)
    start = time.perf_counter()
    try:
        clip = load_clip(source, num_frames=num_frames, sample_rate=sample_rate, backend=backend, seek=seek,
                         timeout=timeout)
    except MediaError as err:
        report["error"] = {"type": type(err).__name__, "reason": err.reason}
        return report
    audio_streams = [s for s in report["streams"] if s["type"] == "audio"]
    report["sampled"] = {
        "backend": backend, "seek": seek, "num_video_frames": clip.num_video_frames,
        "frame_indices": clip.frame_indices.tolist(), "frame_times": [round(t, 4) for t in clip.frame_times],
        "frame_shape": list(clip.frames.shape), "seconds": round(time.perf_counter() - start, 4),
    }
    if clip.audio is not None:
        report["audio"] = {
            "source_rate": audio_streams[0]["sample_rate"] if audio_streams else None,
            "source_channels": audio_streams[0]["channels"] if audio_streams else None,
            "rate": clip.sample_rate, "seconds": round(clip.audio.shape[0] / clip.sample_rate, 4),
            "start": round(clip.audio_start, 4),
            "peak": round(float(np.abs(clip.audio).max()), 4) if clip.audio.size else 0.0,
            "rms": round(float(np.sqrt(np.mean(np.square(clip.audio)))), 4) if clip.audio.size else 0.0,
        }
    report["warnings"] = clip.warnings
    return report
