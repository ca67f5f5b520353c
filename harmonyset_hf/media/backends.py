"""The optional frame readers behind `load_clip(backend=...)`: decord and torchcodec, at the indices PyAV chose.

Both get the frame indices from the media package's packet index, so every backend returns the same frames;
each backend's own frame count is checked against it and a mismatch is reported as a warning.
Audio always comes from PyAV (media/__init__.py). Resizing here uses Pillow (bilinear), so resized frames
differ from PyAV's (swscale) by a few grey levels.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ._av import BackendNotInstalledError, TruncatedFileError, _check, _rotation_steps, _Source, output_size

INSTALL_HINT = {
    "decord": "pip install harmonyset-hf[decord]",
    "torchcodec": "pip install torchcodec (it also needs the system FFmpeg libraries, e.g. apt-get install ffmpeg)",
}


def _import(backend: str):
    try:
        if backend == "decord":
            import decord

            return decord
        from torchcodec.decoders import VideoDecoder

        return VideoDecoder
    except (ImportError, OSError, RuntimeError) as err:
        raise BackendNotInstalledError(f"the {backend!r} backend is not available ({err}); install it with: "
                                       f"{INSTALL_HINT[backend]}") from err


def _stream_rotation(container, vs) -> int:
    """The display rotation (degrees) of the video stream, read from its first decoded frame."""
    container.seek(0, stream=vs, backward=True, any_frame=False)
    for frame in container.decode(vs):
        return int(frame.rotation or 0)
    return 0


def _resize(frames: np.ndarray, size, max_side) -> np.ndarray:
    from PIL import Image

    h, w = frames.shape[1:3]
    out_w, out_h = output_size(w, h, size, max_side)
    if (out_w, out_h) == (w, h):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((out_w, out_h), Image.BILINEAR)) for f in frames])


def read_frames(backend: str, src: _Source, container, vs, indices: list[int], n_total: int,
                size: tuple[int, int] | None, max_side: int | None, deadline: float) -> tuple[np.ndarray, int, list]:
    """Frames at `indices` (uint8 [T, H, W, 3], rotation applied) read with `backend`, its rotation, warnings."""
    module = _import(backend)
    warnings: list[str] = []
    unique = sorted(set(indices))
    try:
        if backend == "decord":
            rotation = _stream_rotation(container, vs)
            data: Any = src.path if src.path is not None else io.BytesIO(src.data)
            # decord applies the rotation itself, but for 90/270 degrees it allocates the coded size and
            # fails; forcing the coded size gives the rotated picture squeezed, which is resized back.
            coded = (vs.codec_context.width, vs.codec_context.height)
            quarter = _rotation_steps(rotation) % 2 == 1
            shape = {"width": coded[0], "height": coded[1]} if quarter else {}
            reader = module.VideoReader(data, ctx=module.cpu(0), num_threads=0, **shape)
            count = len(reader)
            got = reader.get_batch(unique).asnumpy()
            if quarter:
                got = _resize(got, (coded[1], coded[0]), None)
                warnings.append("decord mishandles 90/270 degree rotation: frames were read squeezed and resized "
                                "back (approximate)")
        else:
            decoder = module(src.path if src.path is not None else src.data, seek_mode="exact",
                             dimension_order="NHWC")
            count = decoder.metadata.num_frames
            rotation = int(decoder.metadata.rotation or 0)
            got = decoder.get_frames_at(unique).data.numpy()  # torchcodec applies the rotation itself
    except BackendNotInstalledError:
        raise
    except Exception as err:  # decord raises DECORDError, torchcodec RuntimeError: both mean a bad file here
        reason = f"{backend} could not read the frames ({type(err).__name__}: {err})"
        raise TruncatedFileError(src.name, reason) from err
    _check(deadline, src.name, f"reading frames with {backend}")
    if count != n_total:
        warnings.append(f"{backend} counts {count} frames where the packet index has {n_total}")
    got = _resize(got, size, max_side)
    pos = {idx: i for i, idx in enumerate(unique)}
    return got[[pos[i] for i in indices]], rotation, warnings
