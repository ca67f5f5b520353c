"""Two-window statistics: the stretch before each frame against the stretch after it (sync.novelty, sync.timbre)."""

from __future__ import annotations

import numpy as np


def sides(x: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``x`` (d, n) over the ``half`` frames before and after each frame (cut at the ends)."""
    n = x.shape[-1]
    c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    t = np.arange(n)
    lo, hi = np.clip(t - half, 0, n), np.clip(t + half, 0, n)
    return (c[:, t] - c[:, lo]) / np.maximum(1, t - lo), (c[:, hi] - c[:, t]) / np.maximum(1, hi - t)


def total_variation(x: np.ndarray, half: int) -> np.ndarray:
    """Half the summed absolute difference between the means of ``x`` (d, n) over the ``half`` frames before and
    after each frame: for rows that are shares summing to 1 a frame, the share that moves (0-1)."""
    before, after = sides(x, half)
    return 0.5 * np.abs(after - before).sum(axis=0)


def spread_distance(m: np.ndarray, half: int, weight: np.ndarray | None = None) -> np.ndarray:
    """Root mean square over rows of the two-window mean difference of ``m`` (d, n) in units of the pooled
    within-window variance; frames count by ``weight`` (default 1)."""
    w = np.ones((1, m.shape[1])) if weight is None else weight[None, :]
    sb, sa = sides(m * w, half)
    qb, qa = sides(m * m * w, half)
    wb, wa = sides(w, half)
    b, a = sb / (wb + 1e-12), sa / (wa + 1e-12)
    spread = (np.maximum(qb / (wb + 1e-12) - b ** 2, 1e-6) + np.maximum(qa / (wa + 1e-12) - a ** 2, 1e-6)) / 2
    return np.sqrt(np.mean((a - b) ** 2 / spread, axis=0))


def recurrence_distance(m: np.ndarray, half: int, reach: int, block: int = 8, step: int = 2, chunk: int = 512
                        ) -> np.ndarray:
    """How new each side of a frame is to the other: every block (the mean of ``block`` frames, one each ``step``
    frames) in the ``half`` frames after the frame against its nearest block in the ``reach`` frames before it,
    averaged, and the same from the blocks before against the ``reach`` frames after; the smaller of the two.

    ``m`` is (d, n) frames; a distance is the root mean square over rows. What a stretch of music repeats (the
    same chord a loop earlier) finds a near twin on the other side, a new arrangement does not. Frames within
    ``half`` of either end get 0. Frames are taken ``chunk`` blocks at a time, each against the blocks within its
    reach, so time and memory grow with ``n`` and not with its square.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    n = m.shape[1]
    b = uniform_filter1d(np.asarray(m, dtype=np.float64), block, axis=1, mode="nearest")[:, ::step]
    k, d = b.shape[1], b.shape[0]
    w, span, h = max(2, half // step), max(half // step, reach // step), max(1, block // (2 * step))
    out = np.zeros(k)
    for c0 in range(w, k - w, chunk):
        t = np.arange(c0, min(k - w, c0 + chunk))
        a, z = max(0, t[0] - h - span), min(k, t[-1] + h + span)  # every block these frames look at
        x = b[:, a:z]
        sq = (x * x).sum(axis=0)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2 * x.T @ x, 0.0)
        # nearest of the span blocks ending at each row (rows before ``a`` do not exist: +inf), or starting there
        before = minimum_filter1d(np.pad(dist, ((span, 0), (0, 0)), constant_values=np.inf), span, axis=0,
                                  origin=(span - 1) // 2)[span:]
        after = minimum_filter1d(np.pad(dist, ((0, span), (0, 0)), constant_values=np.inf), span, axis=0,
                                 origin=-(span // 2))[:z - a]
        before, after = np.sqrt(before / d), np.sqrt(after / d)
        cb = np.pad(np.cumsum(before, axis=1), ((0, 0), (1, 0)))
        ca = np.pad(np.cumsum(after, axis=1), ((0, 0), (1, 0)))
        r, lo, hi = t - h - 1 - a, t + h - a, t + w - a  # forward: row just before the gap, the blocks after
        forward = (cb[r, hi] - cb[r, lo]) / (hi - lo)
        r, lo, hi = t + h - a, t - w - a, t - h - a  # backward: the reach after the gap, the blocks before
        backward = (ca[r, hi] - ca[r, lo]) / (hi - lo)
        out[t] = np.minimum(forward, backward)
    full = np.interp(np.arange(n), np.arange(k) * step, out)
    full[:half], full[max(0, n - half):] = 0.0, 0.0
    return full
