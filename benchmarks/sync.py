"""How long signal-level sync takes on a 30 s clip, and how well it finds music changes it was not fitted on.

`python benchmarks/sync.py [--repeats 5]`: speed. `python benchmarks/sync.py --music [--cache DIR]`: the
General MIDI change set (harmonyset_hf.sync.music, rendered by FluidSynth; see scripts/ensure_fluidsynth.sh)
scored on its tune and held-out halves (`--draw N`: also a new draw of the held-out half, other seeds; with
any, every held-out draw pooled too, recall with 95 % Wilson intervals): recall
per change kind and precision within 0.35 s, A/B/C code accuracy of cuts on, near and away from changes,
controls coded C (harmonyset_hf.sync.music_eval).
`python benchmarks/sync.py --tune [--cache DIR]`: choose the detector's per-group bars on the tune half, with
HarmonySet-mini's music as a guard (music_eval.GUARD_SETS, rendered to mp4 and decoded: its changes must be
found and nothing between them).

Renders a long HarmonySet-mini clip (31-40 s, 320x180, 10 fps, h264 + AAC, cuts and music changes),
re-encodes it at 1280x720 / 30 fps, and times `harmonyset_hf.sync.analyze` on both: the first call in
the process (imports librosa/scipy and loads numba's compiled functions) and the median of later calls,
split into decoding, cut detection and music analysis. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def _plan() -> dict:
    """A long, synced HarmonySet-mini item (31-40 s): the sample's own planner, so its format always fits."""
    from harmonyset_hf.mini.sample import plan_item

    return plan_item("bench", "test", "knowledge", "sync", long=True, seed=0)


def _upscale(src: Path, dst: Path, width: int = 1280, height: int = 720, fps: int = 30) -> Path:
    """Re-encode ``src`` at width x height and fps (each frame repeated), audio copied as decoded AAC."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=Fraction(fps))
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.options = {"preset": "veryfast", "crf": "23"}
        a_in = inp.streams.audio[0]
        a = out.add_stream("aac", rate=a_in.rate, layout="stereo")
        src_rate = float(inp.streams.video[0].average_rate)
        n = 0
        for frame in inp.decode(video=0):
            rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
            for _ in range(round(fps / src_rate)):
                img = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                img.pts = n
                n += 1
                out.mux(v.encode(img))
        out.mux(v.encode())
        inp.seek(0)
        for frame in inp.decode(audio=0):
            frame.pts = None
            out.mux(a.encode(frame))
        out.mux(a.encode())
    return dst


def _half(half: str, label: str, extra: list[int], folder: Path, limit: int | None) -> list[dict]:
    """Draw 0 of ``half`` and each further draw in ``extra`` scored, then, with more than one, all of them pooled
    (last): 12 changes a cell swing about 0.15 from draw to draw."""
    from harmonyset_hf.sync.music_eval import evaluate_half, pooled

    # a draw named twice is scored once: pooled twice, its clips would count double
    runs = [evaluate_half(half, folder, limit=limit, draw=d) for d in [0, *dict.fromkeys(d for d in extra if d > 0)]]
    return runs + ([pooled(runs, f"{label} pooled ({len(runs)} draws)")] if len(runs) > 1 else [])


def _music(cache: str | None, limit: int | None, draws: list[int], tune_draws: list[int]) -> None:
    """Render (or reuse) both halves of the change set (and further draws of either half), score them and print
    the table, the held-out figures under the goal, and how far the two halves' recall differ."""
    from harmonyset_hf.io import atomic_write_json
    from harmonyset_hf.sync.music_eval import GOAL, gaps, intervals, misses, shortfalls, table

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(cache or tmp)
        tune = _half("tune", "tune", tune_draws, folder, limit)
        held = _half("heldout", "held-out", draws, folder, limit)
        results = tune + held
        print(table(results))
        for side in (tune, held):
            if len(side) > 1:  # its last column is the pool
                print(f"{side[-1]['half']}, recall with 95 % intervals: " + "; ".join(intervals(side[-1])))
        for r in held:  # the tune half is where the bars were chosen: no goal is checked there
            short = shortfalls(r)
            print(f"{r['half']}: " + (f"short of the goal ({GOAL}): " + "; ".join(short) if short
                                      else f"every figure at or over the goal ({GOAL})"))
        for side in (tune, held):  # its pool, or its one draw
            print(f"{side[-1]['half']}, changes missed: " + ("; ".join(misses(side[-1])) or "none"))
        if draws or tune_draws:  # each half's pool, or its one draw
            print(f"{tune[-1]['half']} vs {held[-1]['half']}, recall (Fisher's exact test): "
                  + "; ".join(gaps(tune[-1], held[-1])))
        if cache:
            print(f"per clip: {atomic_write_json(folder / 'results.json', results, indent=1)}")


def main() -> None:
    """Render the clips and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--music", action="store_true", help="score the General MIDI change set instead of timing")
    parser.add_argument("--cache", default=None, help="folder for the rendered clips (default: a temporary one)")
    parser.add_argument("--limit", type=int, default=None, help="clips per half")
    parser.add_argument("--draw", type=int, action="append", default=[], metavar="N",
                        help="with --music, also score draw N of the held-out half: the same design under other "
                             "seeds, music that no choice has been made on yet (repeatable)")
    parser.add_argument("--tune-draw", type=int, action="append", default=[], metavar="N",
                        help="with --music, also score draw N of the tune half (repeatable): with --draw, the two "
                             "halves' recall is compared per kind, to tell a held-out shortfall from chance")
    parser.add_argument("--tune", action="store_true", help="choose sync.novelty.SCALE on the tune half and print it")
    args = parser.parse_args()
    if args.tune:
        from harmonyset_hf.sync.music_eval import choose_thresholds

        with tempfile.TemporaryDirectory() as tmp:
            chosen = choose_thresholds(args.cache or tmp)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in chosen["factors"].items()})
        print("SCALE =", {g: round(v, 3) for g, v in chosen["scale"].items()})
        print(f"tune half: precision {chosen['precision']:.2f}, recall",
              {k: round(v, 2) for k, v in chosen["recall"].items()})
        if "guard_precision" in chosen:
            print(f"HarmonySet-mini guard: precision {chosen['guard_precision']:.2f}, "
                  f"recall {chosen['guard_recall']['mini']:.2f}")
        return
    if args.music:
        _music(args.cache, args.limit, args.draw, args.tune_draw)
        return
    from harmonyset_hf.mini.render import render_item

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "clip_320x180.mp4"
        plan = _plan()
        render_item(plan, small)
        large = _upscale(small, Path(tmp) / "clip_1280x720.mp4")
        t0 = time.perf_counter()
        from harmonyset_hf.sync import analysis as sync

        first = sync.analyze(small)
        cold = time.perf_counter() - t0
        print(f"first call (imports + numba load + analysis, 320x180): {cold:.2f} s "
              f"(analysis part {first.timings['total_s']:.2f} s)")
        print(f"  cuts {[round(c.time, 2) for c in first.cuts]} (planted {plan['cuts']}), "
              f"changes {[round(c.time, 2) for c in first.music_changes]} (planted {plan['music_changes']})")
        for path in (small, large):
            runs = [sync.analyze(path).timings for _ in range(args.repeats)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{path.name}, {first.duration:.1f} s, median of {args.repeats}: total {med['total_s']:.3f} s "
                  f"(decode {med['decode_s']:.3f}, cuts {med['cuts_s']:.3f}, music {med['music_s']:.3f})")


if __name__ == "__main__":
    main()
