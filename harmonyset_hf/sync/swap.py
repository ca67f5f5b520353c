"""The swap variant of HarmonySet-OE (`harmonyset derive swap`): does a model listen to the music?

Each test video appears twice: once with its own music (``original``) and once with another
item's music (``swapped``). A model rates how well the music fits (1-10) for each version without
knowing which is which; it is right on an item when the original scores higher (see
:func:`harmonyset_hf.evaluation.evaluate_pair`). A model that ignores the audio sees two identical
inputs and ties, which counts as half: 50 %.

Both versions go through the same pipeline so that only the music differs: the video stream's
packets are copied unchanged (the decoded frames are bit-identical to the source's), and the
music, the item's own or the other item's, is decoded, trimmed or looped (with a short crossfade
at each seam) to the video stream's length and encoded with the same AAC settings. Music sources
are a seeded derangement (no item keeps its own music) that avoids pairing items of the same
category where the category counts allow it. File names do not say which version a file is.

The derived folder holds one config, ``pair`` (split ``test``): ``pair.parquet`` at the root
(a ``file_name`` column, as in :mod:`harmonyset_hf.data.hub`) next to ``videos/test/NNN/``; one row
per (item, version) with ``id`` = ``"{item id}:original"`` or ``"{item id}:swapped:{music source id}"``.
The swapped id names its music, so predictions made on an older pairing (another ``--seed``, a
re-derived folder) are reported as unknown ids by ``eval pair`` instead of being scored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..data.build_out import prepare_output_folder, replace_output_folder
from ..data.hub import MAX_FILES_PER_FOLDER, RowGroupWriter, load_problem, local_cache_dir, safe_name
from ..data.hub import load as hub_load
from ..errors import HarmonySetError
from ..io import atomic_write_json, atomic_write_text, package_versions
from ..media import MediaError, NoVideoStreamError, open_media, pick_streams, resolve_source

log = logging.getLogger(__name__)

PAIR_CONFIG = "pair"
PAIR_SPLIT = "test"
VARIANTS = ("original", "swapped")
AUDIO_BITRATE = 128_000
CROSSFADE_SECONDS = 0.05


class PairError(HarmonySetError):
    """A swap variant that cannot be derived (too few items, a video without music, ...)."""


class PairLoadError(PairError, ValueError):
    """A folder whose ``pair`` config cannot be loaded (a ValueError, so callers add their context)."""


def pair_row_id(item_id: str, variant: str, music_id: str | None = None) -> str:
    """The id of one version of an item in the ``pair`` config (``"{item id}:{variant}[:{music id}]"``).

    A swapped version names its music source, so that a prediction made on another pairing never
    matches a row of this one.
    """
    if variant == "swapped" and music_id is not None:
        return f"{item_id}:{variant}:{music_id}"
    return f"{item_id}:{variant}"


def pair_features(with_video: bool = True):
    """The `datasets.Features` of the ``pair`` config (``video``, or the ``file_name`` written to parquet)."""
    import datasets

    string = datasets.Value("string")
    first = {"video": datasets.Video()} if with_video else {"file_name": string}
    return datasets.Features({
        **first, "id": string, "pair_id": string, "variant": string,
        "category": string, "subcategory": string, "duration": datasets.Value("float32"),
        "music_source_id": string, "music_source_category": string,
        "music_duration": datasets.Value("float32"), "music_fit": string,
    })


# --------------------------------------------------------------------------------------------
# Who gets whose music
# --------------------------------------------------------------------------------------------
def swap_assignment(ids: list[str], categories: list[str], seed: int = 0,
                    durations: list[float] | None = None) -> dict[str, str]:
    """A seeded derangement ``{item id: music source id}``: never an item's own music, other categories if possible.

    A random cycle (a derangement for any n >= 2) is repaired by exchanging sources between two
    items whenever that lowers the cost: 2 for a same-category pair, and (given ``durations``) 1
    for music shorter than the video, which would have to loop where the original never does.
    What is left is unavoidable (one category holding more than half of the items; the longest video).
    """
    n = len(ids)
    if n < 2:
        raise PairError(f"the swap variant needs at least 2 test items, got {n}")
    if len(set(ids)) != n:
        raise PairError("item ids are not unique")
    if durations is not None and len(durations) != n:
        raise PairError(f"{len(durations)} durations for {n} items")

    def cost(i: int, j: int) -> int:
        if i == j:
            return 100
        return 2 * (categories[i] == categories[j]) + int(durations is not None and durations[j] < durations[i])

    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    target = [0] * n
    for k, i in enumerate(order):
        target[i] = order[(k + 1) % n]
    improved = True
    while improved:
        improved = False
        for i in rng.sample(range(n), n):
            if cost(i, target[i]) == 0:
                continue
            for j in rng.sample(range(n), n):
                before = cost(i, target[i]) + cost(j, target[j])
                if j != i and cost(i, target[j]) + cost(j, target[i]) < before:
                    target[i], target[j] = target[j], target[i]
                    improved = True
                    break
    return {ids[i]: ids[target[i]] for i in range(n)}


# --------------------------------------------------------------------------------------------
# Media: decode the music, fit it to the video, re-mux
# --------------------------------------------------------------------------------------------
def decode_music(source: Any) -> tuple[np.ndarray, int]:
    """The audio track of a clip as float32 stereo ``[2, N]`` at its own sample rate."""
    import av

    src = resolve_source(source)
    with open_media(src) as container:
        if not container.streams.audio:
            raise MediaError(src.name, "has no audio track: there is no music to swap")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        parts = []
        try:
            for frame in container.decode(stream):
                parts.extend(f.to_ndarray() for f in resampler.resample(frame))
            parts.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.error.FFmpegError as err:
            raise MediaError(src.name, f"its audio cannot be decoded ({err})") from err
    if not parts or sum(p.shape[1] for p in parts) == 0:
        raise MediaError(src.name, "its audio track holds no samples")
    return np.concatenate(parts, axis=1).astype(np.float32), rate


def fit_length(audio: np.ndarray, n: int, fade: int) -> tuple[np.ndarray, str]:
    """``audio [C, N]`` trimmed or looped (crossfading ``fade`` samples at each seam) to ``n`` samples; and which."""
    length = audio.shape[1]
    if length >= n:
        return audio[:, :n], ("exact" if length == n else "trimmed")
    out = audio
    while out.shape[1] < n:
        f = max(0, min(fade, length // 2, out.shape[1] // 2))
        ramp = np.linspace(0.0, 1.0, f, dtype=np.float32)
        seam = out[:, out.shape[1] - f:] * (1 - ramp) + audio[:, :f] * ramp
        out = np.concatenate([out[:, :out.shape[1] - f], seam, audio[:, f:]], axis=1)
    return out[:, :n], "looped"


def _video_packets(container, stream) -> tuple[list, Fraction]:
    """The video stream's packets (demux order) and its length: last end time minus first start time."""
    packets = [p for p in container.demux(stream) if p.dts is not None and p.size]
    if not packets:
        raise PairError("the video stream holds no packets")
    tb = stream.time_base
    starts = [p.pts if p.pts is not None else p.dts for p in packets]
    ends = [s + (p.duration or 0) for s, p in zip(starts, packets)]
    return packets, (max(ends) - min(starts)) * tb


def remux_with_music(video_source: Any, music: tuple[np.ndarray, int], out_path: str | os.PathLike,
                     bitrate: int = AUDIO_BITRATE) -> dict:
    """Write ``out_path``: the video stream of ``video_source`` copied unchanged + ``music`` fitted and AAC-encoded.

    Returns ``{"duration": video seconds, "music_duration": music seconds before fitting, "music_fit"}``.
    """

    audio, rate = music
    src = resolve_source(video_source)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp.mp4")
    with open_media(src) as inp:
        vs, _ = pick_streams(inp, src)
        if vs is None:
            raise NoVideoStreamError(src.name, "no video stream to keep")
        try:
            packets, duration = _video_packets(inp, vs)
        except PairError as err:
            raise MediaError(src.name, str(err)) from None
        fitted, how = fit_length(audio, int(round(duration * rate)), int(CROSSFADE_SECONDS * rate))
        try:
            _write(tmp, vs, packets, fitted, rate, bitrate)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(out_path)
    return {"duration": float(duration), "music_duration": audio.shape[1] / rate, "music_fit": how}


def _write(path: Path, vs, packets: list, fitted: np.ndarray, rate: int, bitrate: int) -> None:
    """Mux the copied video packets and the fitted music, AAC-encoded, into an mp4 at ``path``."""
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        out.flags |= av.container.Flags.bitexact.value
        ov = out.add_stream_from_template(vs)
        oa = out.add_stream("aac", rate=rate, layout="stereo")
        oa.bit_rate = int(bitrate)
        oa.codec_context.thread_count = 1
        oa.codec_context.options = {"aac_coder": "fast"}
        encoded = []
        for start in range(0, fitted.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(fitted[:, start:start + 1024]),
                                               format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            encoded.extend(oa.encode(frame))
        encoded.extend(oa.encode(None))
        # Interleave by time, so that readers go through the file front to back.
        pending = iter(encoded)
        nxt = next(pending, None)
        for packet in packets:
            when = packet.dts * packet.time_base
            while nxt is not None and nxt.dts * nxt.time_base <= when:
                out.mux(nxt)
                nxt = next(pending, None)
            packet.stream = ov
            out.mux(packet)
        while nxt is not None:
            out.mux(nxt)
            nxt = next(pending, None)


# --------------------------------------------------------------------------------------------
# The derived Hub folder
# --------------------------------------------------------------------------------------------
def configs_yaml() -> list[dict]:
    """The README ``configs:`` entry of a derived folder (its one config, ``pair``)."""
    return [{"config_name": PAIR_CONFIG,
             "data_files": [{"split": PAIR_SPLIT, "path": [f"{PAIR_CONFIG}.parquet", f"videos/{PAIR_SPLIT}/**"]}],
             "metadata_filenames": [f"{PAIR_CONFIG}.parquet"]}]


def _readme(report: dict) -> str:
    import yaml

    front = yaml.safe_dump({"pretty_name": "HarmonySet swap pairs", "license": "other",
                            "license_link": "https://huggingface.co/datasets/Zzitang/HarmonySet",
                            "tags": ["video", "music", "audio-visual", "video-music-alignment"],
                            "configs": configs_yaml()}, sort_keys=False)
    return (f"---\n{front}---\n\n# HarmonySet swap pairs\n\n"
            f"Derived from `{report['source']}` by `harmonyset derive swap --seed {report['seed']}`: each of "
            f"its {report['items']} test videos twice, once with its own music (`variant: original`) and "
            "once with another item's (`swapped`, source in `music_source_id`), the music trimmed or looped "
            "to the video's length and re-encoded the same way in both. The video streams are copied "
            "unchanged. Rate how well the music fits each version (1-10); an item counts as right when the "
            "original scores higher, a tie as half (`harmonyset eval pair`).\n\n"
            "```python\nfrom datasets import load_dataset\nds = load_dataset(\"<this folder>\", \"pair\", "
            "split=\"test\")\n```\n\nThe videos keep the license terms of the source dataset.\n")


def derive_swap(data: str | os.PathLike, out_dir: str | os.PathLike, seed: int = 0, limit: int | None = None,
                bitrate: int = AUDIO_BITRATE) -> dict:
    """Write the swap variant of ``data``'s test videos to ``out_dir`` (replaced atomically); returns the report."""
    import datasets
    from tqdm.auto import tqdm

    started = time.perf_counter()
    ds = hub_load(data, "oe")  # a HubError names the folder and why it cannot be read
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    if not isinstance(ds.features.get("video"), datasets.Video):
        raise PairError(f"{data} has no videos (an annotations-only build?): the swap variant needs the media")
    rows = ds.cast_column("video", datasets.Video(decode=False)).to_list()
    ids = [str(r["id"]) for r in rows]
    sources = swap_assignment(ids, [r["category"] for r in rows], seed=seed,
                              durations=[float(r.get("duration") or 0.0) for r in rows])
    by_id = {str(r["id"]): r for r in rows}
    # The rule of `build --out`: replace only an earlier build (marker), never the source or the current folder.
    out, tmp = prepare_output_folder(out_dir, {"data": data if Path(data).exists() else None}, kind="deriving")
    writer = RowGroupWriter(tmp / f"{PAIR_CONFIG}.parquet", pair_features(with_video=False))
    fits: dict[str, int] = {}
    skipped: list[dict] = []
    try:
        for n, item_id in enumerate(tqdm(ids, desc="derive swap", unit="item")):
            folder = f"videos/{PAIR_SPLIT}/{n // (MAX_FILES_PER_FOLDER // 2):03d}"
            (tmp / folder).mkdir(parents=True, exist_ok=True)
            try:
                made = _derive_item(by_id, item_id, sources[item_id], tmp, folder, seed, bitrate)
            except PairError as err:  # the item is left out (both versions); the rest goes on
                log.warning("%s", err)
                skipped.append({"id": item_id, "music_source_id": sources[item_id], "reason": str(err)})
                continue
            for row in made:
                fits[row["music_fit"]] = fits.get(row["music_fit"], 0) + 1
                writer.add(row)
        writer.close()
        if writer.count == 0:
            raise PairError(f"no item of {data} could be derived; first problem: "
                            f"{skipped[0]['reason'] if skipped else 'no test items'}")
        left_out = {x["id"] for x in skipped}
        kept = {i: s for i, s in sources.items() if i not in left_out}
        same = sum(by_id[i]["category"] == by_id[s]["category"] for i, s in kept.items())
        report = {"source": str(data), "seed": seed, "items": len(kept), "rows": writer.count,
                  "same_category_pairs": same, "music_fit": fits, "audio_bitrate": bitrate,
                  "sources": kept, "skipped": skipped, "seconds": round(time.perf_counter() - started, 2),
                  "versions": package_versions()}
        atomic_write_json(tmp / "derive_report.json", report)
        atomic_write_text(tmp / "README.md", _readme(report))
    except BaseException:
        writer.writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_output_folder(tmp, out)
    log.info("derived %s: %d items x 2 versions, %d same-category pairs, %d skipped", out, len(kept), same,
             len(skipped))
    return report


def _derive_item(by_id: dict[str, dict], item_id: str, swap_id: str, root: Path, folder: str, seed: int,
                 bitrate: int) -> list[dict]:
    """Both versions of one item written under ``root/folder``, and their rows; PairError (files removed) if not."""
    import av

    row = by_id[item_id]
    # Which file is which is a seeded coin per item, so names and order do not tell the versions apart.
    coin = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[0] % 2
    made: list[dict] = []
    for k, variant in enumerate(VARIANTS):
        music_id = item_id if variant == "original" else swap_id
        rel = f"{folder}/{safe_name(item_id)}-{k ^ coin}.mp4"
        try:
            info = remux_with_music(row["video"], decode_music(by_id[music_id]["video"]), root / rel, bitrate)
        except (HarmonySetError, av.error.FFmpegError) as err:
            for done in made:
                (root / done["file_name"]).unlink(missing_ok=True)
            raise PairError(f"item {item_id} left out ({variant} version, music of {music_id}): {err}") from None
        made.append({"file_name": rel, "id": pair_row_id(item_id, variant, music_id), "pair_id": item_id,
                     "variant": variant, "category": row["category"], "subcategory": row.get("subcategory"),
                     "duration": info["duration"], "music_source_id": music_id,
                     "music_source_category": by_id[music_id]["category"],
                     "music_duration": info["music_duration"], "music_fit": info["music_fit"]})
    return made


def load_pair(path: str | os.PathLike, streaming: bool = False, **kwargs: Any):
    """``datasets.load_dataset(path, "pair", split="test")`` with the private cache of a local folder."""
    import datasets

    kwargs.setdefault("cache_dir", local_cache_dir(path))
    try:
        return datasets.load_dataset(str(path), PAIR_CONFIG, split=PAIR_SPLIT, streaming=streaming, **kwargs)
    except (FileNotFoundError, ValueError, ConnectionError) as err:  # a typo'd folder reads as "Couldn't reach"
        raise PairLoadError(load_problem(path, err)) from err
