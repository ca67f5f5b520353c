"""Frames and music from any clip: a path, bytes or a `datasets` Video value, decoded in-process.

One pass demuxes the file: it indexes the video packets (presentation order, keyframes) and decodes
and resamples the audio on the way. Frames are then decoded with PyAV (default; `seek="exact"`
seeks to the keyframe before each target and decodes forward only as far as needed, skipping
non-reference frames nobody asked for; `seek="keyframe"` decodes only the keyframes nearest the
targets), or read by decord / torchcodec at the same indices (see `media_backends.py`).
Every failure is a `MediaError` naming the file and the reason.
"""

from __future__ import annotations

import bisect
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import HarmonySetError

DEFAULT_TIMEOUT = 60.0
BACKENDS = ("pyav", "decord", "torchcodec")
SEEK_MODES = ("exact", "keyframe")
AUDIO_MODES = ("full", "videollama2", "none")


class MediaError(HarmonySetError):
    """A clip could not be read; `source` names the file and `reason` says why."""

    def __init__(self, source: str, reason: str):
        self.source, self.reason = str(source), reason
        super().__init__(f"{source}: {reason}")

    def __reduce__(self):
        return (self.__class__, (self.source, self.reason))


class MissingFileError(MediaError, FileNotFoundError):
    """The file does not exist."""


class EmptyFileError(MediaError):
    """The file (or the bytes given) is empty."""


class TruncatedFileError(MediaError):
    """The file starts like a media file but is cut short or corrupt."""


class NotMediaError(MediaError):
    """The file is not something FFmpeg can read as media."""


class NoVideoStreamError(MediaError):
    """The file holds no video stream (audio only, or only a cover image)."""


class DecodeTimeoutError(MediaError):
    """Decoding ran past its deadline (`timeout=`)."""


class BackendNotInstalledError(HarmonySetError, ImportError):
    """An optional decoding backend is not installed; the message says which extra to install."""


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


# --- sources -------------------------------------------------------------------------------------

@dataclass
class _Source:
    name: str
    path: str | None = None
    data: bytes | None = None

    def open_arg(self) -> Any:
        return self.path if self.path is not None else io.BytesIO(self.data)

    def head(self, n: int = 512) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as fh:
            return fh.read(n)


def resolve_source(source: Any) -> _Source:
    """A path, bytes, a `{"path", "bytes"}` dict or a datasets/torchcodec `VideoDecoder` -> where to read it."""
    if isinstance(source, _Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise MissingFileError(path, "no such file")
        if os.path.isdir(path):
            raise NotMediaError(path, "is a directory, not a media file")
        if os.path.getsize(path) == 0:
            raise EmptyFileError(path, "the file is empty (0 bytes)")
        return _Source(path, path=path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise EmptyFileError("<bytes>", "no bytes given (empty)")
        return _Source("<bytes>", data=bytes(source))
    if isinstance(source, dict):  # datasets Video(decode=False)
        path, data = source.get("path"), source.get("bytes")
        if path and os.path.isfile(path):
            return resolve_source(path)
        if data is not None:
            if len(data) == 0:
                raise EmptyFileError(path or "<bytes>", "no bytes given (empty)")
            return _Source(path or "<bytes>", data=bytes(data))
        if path:
            return resolve_source(path)
        raise MediaError("<dict>", "the video value has neither 'path' nor 'bytes'")
    encoded = getattr(source, "_hf_encoded", None)  # datasets sets it on the VideoDecoder it returns
    if isinstance(encoded, dict):
        return resolve_source(encoded)
    meta_path = getattr(getattr(source, "metadata", None), "path", None)
    if meta_path:
        return resolve_source(meta_path)
    raise MediaError(type(source).__name__, "unsupported source: give a path, bytes, a {'path', 'bytes'} dict "
                     "or a datasets Video value")


def _looks_like_media(head: bytes) -> bool:
    """Whether the first bytes carry a known container signature (truncated vs. not media at all)."""
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
            or head.startswith((b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"FLV", b"ID3", b"fLaC",
                                b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))
            or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47))


def _check(deadline: float, name: str, what: str) -> None:
    if time.monotonic() > deadline:
        raise DecodeTimeoutError(name, f"decoding took longer than the time limit while {what} (raise timeout=)")


def open_media(src: _Source):
    """Open with PyAV; a failure becomes Missing/Truncated/NotMedia error naming the file."""
    import av

    try:
        return av.open(src.open_arg(), metadata_errors="ignore")
    except FileNotFoundError as err:
        raise MissingFileError(src.name, "no such file") from err
    except (av.error.FFmpegError, OSError, ValueError) as err:
        if _looks_like_media(src.head()):
            raise TruncatedFileError(src.name, f"looks like a media file but FFmpeg cannot open it; most likely "
                                               f"truncated or corrupt ({err})") from err
        raise NotMediaError(src.name, f"not a media file FFmpeg can read ({err})") from err


def _pick_streams(container, src: _Source):
    import av

    videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    audio = container.streams.audio[0] if container.streams.audio else None
    return (videos[0] if videos else None), audio


# --- the one demux pass ------------------------------------------------------------------------

@dataclass
class _Index:
    pts: list[int]            # video packet timestamps in presentation order: pts[i] is frame i
    keyframes: list[int]      # sorted pts of keyframe packets
    time_base: Fraction
    audio: np.ndarray | None
    audio_rate: int | None
    audio_channels: int | None
    duration: float
    fps: float
    warnings: list[str]


def _scan(container, vs, audio_stream, src: _Source, deadline: float, sample_rate: int, want_audio: bool) -> _Index:
    """Demux once: index the video packets, decode + resample the audio (mono float32) on the way."""
    import av

    warnings: list[str] = []
    pts: list[int] = []
    keys: list[int] = []
    seen_video = 0
    last_end = 0.0
    chunks: list[np.ndarray] = []
    audio_errors = 0
    decode_audio = want_audio and audio_stream is not None
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate) if decode_audio else None
    streams = [vs] + ([audio_stream] if audio_stream is not None else [])
    try:
        for n, packet in enumerate(container.demux(streams)):
            if n % 64 == 0:
                _check(deadline, src.name, "reading packets")
            if packet.stream_index == vs.index:
                t = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or t is None:
                    continue
                seen_video += 1
                if packet.is_discard:
                    continue
                pts.append(t)
                if packet.is_keyframe:
                    keys.append(t)
            elif decode_audio:
                try:
                    for frame in packet.decode():
                        for out in resampler.resample(frame):
                            chunks.append(out.to_ndarray().reshape(-1))
                except av.error.FFmpegError:
                    audio_errors += 1
            if packet.pts is not None and packet.size:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                last_end = max(last_end, end)
    except av.error.FFmpegError as err:
        raise TruncatedFileError(src.name, f"the file breaks off while reading packets ({err})") from err
    if not pts:
        raise TruncatedFileError(src.name, "the video stream holds no frames")
    header_frames = vs.frames or 0
    cont_duration = container.duration / 1_000_000 if container.duration else None
    if header_frames and seen_video < header_frames:
        raise TruncatedFileError(src.name, f"the header promises {header_frames} video frames but only "
                                           f"{seen_video} are in the file (truncated)")
    if not header_frames and cont_duration and last_end < 0.8 * cont_duration - 1.0:
        raise TruncatedFileError(src.name, f"the header says {cont_duration:.2f} s but the streams end at "
                                           f"{last_end:.2f} s (truncated)")
    pts.sort()
    keys.sort()
    if not keys:
        keys = [pts[0]]
        warnings.append("no keyframe flags in the video stream; decoding from the start")
    audio = None
    if decode_audio:
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        if audio_errors:
            warnings.append(f"{audio_errors} audio packets could not be decoded and were skipped")
    tb = Fraction(vs.time_base)
    fps = float(vs.average_rate) if vs.average_rate else 0.0
    if cont_duration:
        duration = cont_duration
    elif vs.duration:
        duration = float(vs.duration * tb)
    else:
        duration = last_end
    if fps <= 0:
        fps = len(pts) / duration if duration > 0 else 0.0
    ch = audio_stream.codec_context.channels if audio_stream is not None else None
    rate = audio_stream.codec_context.sample_rate if audio_stream is not None else None
    return _Index(pts, keys, tb, audio, rate, ch, duration, fps, warnings)


# --- frame decoding (PyAV) -------------------------------------------------------------------------

def output_size(width: int, height: int, size: tuple[int, int] | None, max_side: int | None) -> tuple[int, int]:
    """(width, height) to resize a displayed frame to: `size` as given, or scaled so its long side <= `max_side`."""
    if size is not None:
        return int(size[0]), int(size[1])
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def _rotation_steps(rotation: float | int | None) -> int:
    """Quarter turns counter-clockwise (np.rot90's k) for FFmpeg's display-matrix rotation in degrees."""
    return int(round((rotation or 0) / 90.0)) % 4


def _to_rgb(frame, size, max_side) -> np.ndarray:
    k = _rotation_steps(frame.rotation)
    disp_w, disp_h = (frame.height, frame.width) if k % 2 else (frame.width, frame.height)
    out_w, out_h = output_size(disp_w, disp_h, size, max_side)
    coded_w, coded_h = (out_h, out_w) if k % 2 else (out_w, out_h)
    if (coded_w, coded_h) == (frame.width, frame.height):
        arr = frame.to_ndarray(format="rgb24")
    else:
        arr = frame.to_ndarray(format="rgb24", width=coded_w, height=coded_h, interpolation="BILINEAR")
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


def _decode_exact(container, vs, index: _Index, wanted: list[int], convert: Callable, src: _Source,
                  deadline: float) -> dict[int, Any]:
    """Decode the frames whose pts are in `wanted`: seek to the keyframe before each, decode forward."""
    cc = vs.codec_context
    want = set(wanted)
    out: dict[int, Any] = {}
    pos: int | None = None  # pts of the last frame the decoder gave back
    for target in sorted(want):
        if target in out:
            continue
        key = index.keyframes[max(bisect.bisect_right(index.keyframes, target) - 1, 0)]
        if pos is None or key > pos:
            container.seek(key, stream=vs, backward=True, any_frame=False)
        for packet in container.demux(vs):
            _check(deadline, src.name, "decoding frames")
            # Only frames someone asked for or that others refer to need decoding.
            cc.skip_frame = "DEFAULT" if (packet.pts is None or packet.pts in want) else "NONREF"
            for frame in packet.decode():
                pos = frame.pts
                if frame.pts in want and frame.pts not in out:
                    out[frame.pts] = convert(frame)
            if target in out:
                break
        if target not in out:
            break  # end of stream: anything still missing is reported below
    cc.skip_frame = "DEFAULT"
    missing = want - out.keys()
    if missing:
        raise TruncatedFileError(src.name, f"{len(missing)} of the {len(want)} frames asked for could not be decoded")
    return out


def _decode_keyframes(container, vs, wanted: list[int], convert: Callable, src: _Source,
                      deadline: float) -> dict[int, Any]:
    """Decode only the keyframes whose pts are in `wanted`: seek, feed one packet, drain."""
    cc = vs.codec_context
    out: dict[int, Any] = {}
    for key in sorted(set(wanted)):
        _check(deadline, src.name, "decoding keyframes")
        container.seek(key, stream=vs, backward=True, any_frame=False)
        cc.skip_frame = "NONKEY"
        frames = []
        for packet in container.demux(vs):
            if packet.size == 0:
                frames += packet.decode()
                break
            if packet.pts != key:
                continue
            frames += packet.decode()
            frames += cc.decode(None)  # drain now instead of feeding the rest of the GOP
            break
        cc.skip_frame = "DEFAULT"
        if frames:
            out[key] = convert(frames[0])
    missing = set(wanted) - out.keys()
    if missing:  # a keyframe that does not decode alone (rare): decode it the exact way
        index = _Index(sorted(missing), sorted(missing), Fraction(vs.time_base), None, None, None, 0, 0, [])
        out.update(_decode_exact(container, vs, index, sorted(missing), convert, src, deadline))
    return out


def _nearest_keyframes(index: _Index, targets: list[int]) -> list[int]:
    keys = index.keyframes
    chosen = []
    for t in targets:
        i = bisect.bisect_left(keys, t)
        options = [keys[j] for j in (i - 1, i) if 0 <= j < len(keys)]
        chosen.append(min(options, key=lambda k: (abs(k - t), k)))
    return chosen


# --- public API ------------------------------------------------------------------------------------

def probe(source: Any, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """A cheap summary of a media file: format, duration, size, streams (codec, fps, frames, rotation, audio rate)."""
    src = resolve_source(source)
    deadline = time.monotonic() + timeout
    with open_media(src) as container:
        vs, audio_stream = _pick_streams(container, src)
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
            for frame in container.decode(vs):
                _check(deadline, src.name, "decoding the first frame")
                rotation = int(frame.rotation or 0)
                break
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


def load_clip(source: Any, num_frames: int = 16, sample_rate: int = 16000, backend: str = "pyav",
              seek: str = "exact", *, audio_mode: str = "full", size: tuple[int, int] | None = None,
              max_side: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> Clip:
    """Frames at VideoLLaMA2's segment midpoints (or nearest keyframes) and the mono audio of one clip.

    `size=(W, H)` or `max_side=` resize the frames (as displayed, after rotation); `audio_mode`:
    "full" (the whole track), "videollama2" (8 x 2 s clips, zero-padded to 30 s) or "none".
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if seek not in SEEK_MODES:
        raise ValueError(f"seek must be one of {SEEK_MODES}, not {seek!r}")
    if audio_mode not in AUDIO_MODES:
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
    return _load(source, sample_rate, backend, seek, audio_mode, size, max_side, timeout,
                 lambda idx: [idx.pts[i] for i in sample_frame_indices(len(idx.pts), num_frames)], num_frames)


def load_frames_at_fps(source: Any, fps: float = 10.0, size: tuple[int, int] | None = None,
                       max_side: int | None = None, *, audio_mode: str = "none", sample_rate: int = 16000,
                       timeout: float = DEFAULT_TIMEOUT) -> Clip:
    """Frames on a regular time grid (the frame shown at each multiple of 1/fps), e.g. small ones for cut detection."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")

    def grid(idx: _Index) -> list[int]:
        start = idx.pts[0]
        last = float((idx.pts[-1] - start) * idx.time_base)
        step = 1 / (fps * idx.time_base)
        return [idx.pts[max(bisect.bisect_right(idx.pts, start + int(j * step)) - 1, 0)]
                for j in range(int(last * fps + 1e-9) + 1)]

    return _load(source, sample_rate, "pyav", "exact", audio_mode, size, max_side, timeout, grid, None)


def _load(source, sample_rate, backend, seek, audio_mode, size, max_side, timeout, choose, num_frames) -> Clip:
    src = resolve_source(source)
    deadline = time.monotonic() + timeout
    with open_media(src) as container:
        vs, audio_stream = _pick_streams(container, src)
        if vs is None:
            what = "audio only" if audio_stream is not None else "no audio or video stream either"
            if audio_stream is None and not _looks_like_media(src.head()):
                raise NotMediaError(src.name, "not a media file: no streams FFmpeg recognises")
            raise NoVideoStreamError(src.name, f"no video stream ({what})")
        index = _scan(container, vs, audio_stream, src, deadline, sample_rate, audio_mode != "none")
        warnings = list(index.warnings)
        targets = choose(index)
        if seek == "keyframe":
            targets = _nearest_keyframes(index, targets)
        if num_frames is not None and len(index.pts) < num_frames:
            warnings.append(f"the video has {len(index.pts)} frames, fewer than the {num_frames} asked: "
                            "indices repeat (segment-midpoint rule)")
        rotation = 0
        if backend == "pyav":
            vs.thread_type = "AUTO"

            def convert(frame):
                nonlocal rotation
                rotation = int(frame.rotation or 0)
                return _to_rgb(frame, size, max_side)

            if seek == "keyframe":
                decoded = _decode_keyframes(container, vs, targets, convert, src, deadline)
            else:
                decoded = _decode_exact(container, vs, index, targets, convert, src, deadline)
            frames = np.stack([decoded[t] for t in targets])
        else:
            from .media_backends import read_frames

            indices = [bisect.bisect_left(index.pts, t) for t in targets]
            frames, rotation, note = read_frames(backend, src, container, vs, indices, len(index.pts), size,
                                                 max_side, deadline)
            warnings += note
    audio = index.audio
    has_audio = audio_stream is not None
    if audio_stream is None:
        warnings.append("the clip has no audio track")
    if audio_mode == "videollama2":
        audio = videollama2_audio_clips(audio if audio is not None else np.zeros(0, np.float32), sample_rate)
    indices = np.array([bisect.bisect_left(index.pts, t) for t in targets], dtype=np.int64)
    times = np.array([float(t * index.time_base) for t in targets], dtype=np.float64)
    return Clip(frames=frames, frame_indices=indices, frame_times=times, fps=index.fps, duration=index.duration,
                audio=audio, has_audio=has_audio, sample_rate=sample_rate, num_video_frames=len(index.pts),
                rotation=rotation, source=src.name, backend=backend, seek=seek, warnings=warnings)
