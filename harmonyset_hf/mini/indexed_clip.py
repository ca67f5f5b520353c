"""Synthetic clips whose content is known: frame colours encode the frame index, the audio is a sine.

Used by the media tests and benchmarks (and handy for checking a decoder by hand):
`read_frame_index(frame)` recovers the index that `write_clip` painted into a frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

LEVELS = (32, 96, 160, 224)  # base-4 digits as grey levels, 64 apart: robust to lossy coding
DIGITS = 4                   # 4 bands -> indices 0..255


def index_frame(i: int, width: int, height: int, noise: np.ndarray | None = None) -> np.ndarray:
    """An RGB frame whose top half has 4 grey bands spelling `i` in base 4 (bottom half: optional noise)."""
    frame = np.zeros((height, width, 3), np.uint8)
    top = max(height // 2, 1)
    for b in range(DIGITS):
        digit = (i // 4 ** (DIGITS - 1 - b)) % 4
        frame[:top, b * width // DIGITS:(b + 1) * width // DIGITS] = LEVELS[digit]
    if noise is not None:
        frame[top:] = noise[: height - top, :width]
    return frame


def read_frame_index(frame: np.ndarray) -> int:
    """The index painted by `index_frame` into an (upright, possibly resized) RGB frame."""
    height, width = frame.shape[:2]
    top = max(height // 2, 1)
    value = 0
    for b in range(DIGITS):
        x0, x1 = b * width // DIGITS, (b + 1) * width // DIGITS
        pad_x, pad_y = max((x1 - x0) // 4, 0), max(top // 4, 0)
        band = frame[pad_y: max(top - pad_y, pad_y + 1), x0 + pad_x: max(x1 - pad_x, x0 + pad_x + 1)]
        level = float(band.mean())
        value = value * 4 + int(np.argmin([abs(level - v) for v in LEVELS]))
    return value


def write_clip(path: str | Path, *, seconds: float = 2.0, fps: int = 25, width: int = 64, height: int = 48,
               vcodec: str | None = "libx264", pix_fmt: str = "yuv420p", acodec: str | None = "aac",
               sample_rate: int = 44100, layout: str = "stereo", tone_hz: float = 440.0, gop: int | None = None,
               frame_times: list[float] | None = None, options: dict | None = None, noise: bool = False,
               seed: int = 0) -> Path:
    """Encode a clip with PyAV: frame i shows index i (see `index_frame`), the audio is a `tone_hz` sine.

    `frame_times` (seconds) gives a variable frame rate; `vcodec=None` or `acodec=None` leaves that stream out.
    """
    import av

    path = Path(path)
    rng = np.random.default_rng(seed)
    times = frame_times if frame_times is not None else [i / fps for i in range(round(seconds * fps))]
    with av.open(str(path), "w") as out:
        vs = aus = None
        if vcodec:
            vs = out.add_stream(vcodec, rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
            opts = dict(options or {})
            if gop:
                vs.codec_context.gop_size = gop
                if vcodec == "libx264":
                    opts.setdefault("x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0")
            vs.options = opts
            if frame_times is not None:  # millisecond clock for the encoder too, or close pts collide
                vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        if acodec:
            aus = out.add_stream(acodec, rate=sample_rate)
            aus.layout = layout
        if vs is not None:
            texture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if noise else None
            for i, t in enumerate(times):
                frame = av.VideoFrame.from_ndarray(index_frame(i, width, height, texture), format="rgb24")
                if frame_times is not None:
                    frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
                if texture is not None:
                    texture = np.roll(texture, 3, axis=1)
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if aus is not None:
            channels = av.AudioLayout(layout).nb_channels
            total = int(round(seconds * sample_rate))
            wave = (0.5 * np.sin(2 * np.pi * tone_hz * np.arange(total) / sample_rate)).astype(np.float32)
            chunk = aus.codec_context.frame_size or 1024
            for start in range(0, total, chunk):
                part = np.ascontiguousarray(np.repeat(wave[None, start:start + chunk], channels, axis=0))
                frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = sample_rate, start
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path
