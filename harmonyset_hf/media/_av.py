"""PyAV internals of harmonyset_hf.media (private): where a source is, the one demux pass, and frame decoding.

Private to the media modules; the public API (and these errors) is re-exported by `harmonyset_hf.media`.
"""

from __future__ import annotations

import bisect
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import HarmonySetError


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


class MediaTooLargeError(MediaError):
    """The file's headers promise more pixels per frame, duration or output than the media budget allows."""


class BackendNotInstalledError(HarmonySetError, ImportError):
    """An optional decoding backend is not installed; the message says which extra to install."""


# --- the media budget ------------------------------------------------------------------------------
# HarmonySet's clips are YouTube Shorts: at most 64 s and 1080x1920. The defaults leave room for 4K
# and 10-minute videos; anything past them is refused from its headers, before a frame is decoded
# (an 8192x8192 frame needs 200 MB as RGB; 10 h of audio 2.3 GB as float32 at 16 kHz).
DEFAULT_MAX_PIXELS = 4096 * 4096         # per frame, as coded
DEFAULT_MAX_DURATION = 600.0             # seconds, of the longest stream
DEFAULT_MAX_OUTPUT_BYTES = 1 << 30       # the frames one call returns, as uint8 RGB
BUDGET_ENV = {"max_pixels": "HARMONYSET_MAX_PIXELS", "max_duration": "HARMONYSET_MAX_DURATION"}


@dataclass(frozen=True)
class MediaBudget:
    """The most a media file may ask of memory and time before anything is decoded."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_duration: float = DEFAULT_MAX_DURATION
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES


def _budget_from_env() -> MediaBudget:
    values: dict[str, Any] = {}
    for name, var in BUDGET_ENV.items():
        text = os.environ.get(var)
        if text:
            try:
                values[name] = int(text) if name == "max_pixels" else float(text)
            except ValueError:
                raise HarmonySetError(f"{var} must be a number, not {text!r}") from None
    return MediaBudget(**values)


_BUDGET: list[MediaBudget] = []


def media_budget() -> MediaBudget:
    """The budget in force: from :func:`set_media_budget` (the CLI flags), else the environment, else the defaults."""
    if not _BUDGET:
        _BUDGET.append(_budget_from_env())
    return _BUDGET[0]


def set_media_budget(max_pixels: int | None = None, max_duration: float | None = None,
                     max_output_bytes: int | None = None) -> MediaBudget:
    """Raise (or lower) the media budget of this process; None keeps a limit as it is."""
    current = media_budget()
    for name, value in (("max_pixels", max_pixels), ("max_duration", max_duration),
                        ("max_output_bytes", max_output_bytes)):
        if value is not None and not value > 0:
            raise HarmonySetError(f"{name} must be above 0, not {value}")
    _BUDGET[0] = MediaBudget(max_pixels=int(max_pixels or current.max_pixels),
                             max_duration=float(max_duration or current.max_duration),
                             max_output_bytes=int(max_output_bytes or current.max_output_bytes))
    return _BUDGET[0]


def header_duration(container) -> float | None:
    """The longest duration the container or any of its streams declares, in seconds (None when none does)."""
    found = [container.duration / 1_000_000] if container.duration else []
    for s in container.streams:
        if s.duration and s.time_base:
            found.append(float(s.duration * s.time_base))
    return max(found) if found else None


def check_budget(container, vs, src: _Source, budget: MediaBudget | None = None) -> None:
    """Refuse, from the headers alone, a file whose frames or duration exceed the budget (nothing decoded yet)."""
    budget = budget or media_budget()
    if vs is not None:
        cc = vs.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        if width * height > budget.max_pixels:
            raise MediaTooLargeError(src.name, f"{width}x{height} frames ({width * height / 1e6:.1f} megapixels) "
                                               f"exceed the budget of {budget.max_pixels / 1e6:.1f} megapixels per "
                                               "frame; raise it with --max-pixels (or $HARMONYSET_MAX_PIXELS)")
    duration = header_duration(container)
    if duration is not None and duration > budget.max_duration:
        raise MediaTooLargeError(src.name, f"lasts {duration:.0f} s, over the budget of {budget.max_duration:g} s; "
                                           "raise it with --max-duration (or $HARMONYSET_MAX_DURATION)")


def check_output(src: _Source, frames: int, width: int, height: int, budget: MediaBudget | None = None) -> None:
    """Refuse a request whose frames would take more memory than the budget, before decoding them."""
    budget = budget or media_budget()
    size = frames * width * height * 3
    if size > budget.max_output_bytes:
        raise MediaTooLargeError(src.name, f"{frames} frames of {width}x{height} need {size / 2**20:.0f} MiB, over "
                                           f"the budget of {budget.max_output_bytes / 2**20:.0f} MiB; ask for fewer "
                                           "or smaller frames (max_side=, size=)")


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
    except PermissionError as err:
        raise MediaError(src.name, "cannot be read (permission denied)") from err
    except (av.error.FFmpegError, OSError, ValueError) as err:
        if _looks_like_media(src.head()):
            raise TruncatedFileError(src.name, f"looks like a media file but FFmpeg cannot open it; most likely "
                                               f"truncated or corrupt ({err})") from err
        raise NotMediaError(src.name, f"not a media file FFmpeg can read ({err})") from err


def pick_streams(container, src: _Source):
    """The clip's video stream (cover art left out) and its first audio stream (or None)."""
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
    audio_start: float        # time (s) of audio[0]: the first decoded audio frame
    audio_rate: int | None
    audio_channels: int | None
    duration: float
    fps: float
    warnings: list[str]


def _scan(container, vs, audio_stream, src: _Source, deadline: float, sample_rate: int, want_audio: bool) -> _Index:
    """Demux once: index the video packets, decode + resample the audio (mono float32) on the way.

    Packets past the duration budget stop the scan (headers can understate a stream's length).
    """
    import av

    max_end = media_budget().max_duration + 1.0
    warnings: list[str] = []
    pts: list[int] = []
    keys: list[int] = []
    seen_video = 0
    last_end = 0.0
    chunks: list[np.ndarray] = []
    audio_start: float | None = None
    audio_errors = 0
    decode_audio = want_audio and audio_stream is not None
    # s16 like `ffmpeg -ac 1 -f s16le` (VideoLLaMA2's loader): swresample then normalises the downmix
    # matrix so 5.1 -> mono cannot clip; float output would not.
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate) if decode_audio else None
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
                        if audio_start is None and frame.time is not None:
                            audio_start = float(frame.time)
                        for out in resampler.resample(frame):
                            chunks.append(out.to_ndarray().reshape(-1))
                except av.error.FFmpegError:
                    audio_errors += 1
            if packet.pts is not None and packet.size:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                last_end = max(last_end, end)
                if end > max_end:
                    raise MediaTooLargeError(src.name, f"a stream runs past {max_end - 1:g} s, the duration budget "
                                                       "(raise it with --max-duration)")
    except av.error.FFmpegError as err:
        raise TruncatedFileError(src.name, f"the file breaks off while reading packets ({err})") from err
    if not pts:
        raise TruncatedFileError(src.name, "the video stream holds no frames")
    header_frames = vs.frames or 0
    cont_duration = container.duration / 1_000_000 if container.duration else None
    if header_frames and seen_video < header_frames:
        raise TruncatedFileError(src.name, f"the header promises {header_frames} video frames but only "
                                           f"{seen_video} are in the file (truncated)")
    if not header_frames and cont_duration and last_end < 0.9 * cont_duration - 0.1:
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
        audio = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
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
    return _Index(pts, keys, tb, audio, audio_start or 0.0, rate, ch, duration, fps, warnings)


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


def _decode_packet(packet, bad: list[int]) -> list:
    """The frames of one packet; a packet the decoder rejects is counted in `bad` and skipped."""
    import av

    try:
        return packet.decode()
    except av.error.FFmpegError:
        bad[0] += 1
        return []


def _decode_exact(container, vs, index: _Index, wanted: list[int], convert: Callable, src: _Source,
                  deadline: float, bad: list[int]) -> dict[int, Any]:
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
            for frame in _decode_packet(packet, bad):
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
                      deadline: float, bad: list[int]) -> dict[int, Any]:
    """Decode only the keyframes whose pts are in `wanted`: seek, feed one packet, drain."""
    cc = vs.codec_context
    out: dict[int, Any] = {}
    for key in sorted(set(wanted)):
        _check(deadline, src.name, "decoding keyframes")
        container.seek(key, stream=vs, backward=True, any_frame=False)
        cc.skip_frame = "NONKEY"
        frames = []
        for packet in container.demux(vs):
            _check(deadline, src.name, "looking for a keyframe")
            if packet.size == 0:
                frames += _decode_packet(packet, bad)
                break
            if packet.pts != key:
                continue
            frames += _decode_packet(packet, bad)
            frames += cc.decode(None)  # drain now instead of feeding the rest of the GOP
            break
        cc.skip_frame = "DEFAULT"
        if frames:
            out[key] = convert(frames[0])
    missing = set(wanted) - out.keys()
    if missing:  # a keyframe that does not decode alone (rare): decode it the exact way
        index = _Index(sorted(missing), sorted(missing), Fraction(vs.time_base), None, 0.0, None, None, 0, 0, [])
        out.update(_decode_exact(container, vs, index, sorted(missing), convert, src, deadline, bad))
    return out


def _nearest_keyframes(index: _Index, targets: list[int]) -> list[int]:
    keys = index.keyframes
    chosen = []
    for t in targets:
        i = bisect.bisect_left(keys, t)
        options = [keys[j] for j in (i - 1, i) if 0 <= j < len(keys)]
        chosen.append(min(options, key=lambda k: (abs(k - t), k)))
    return chosen
