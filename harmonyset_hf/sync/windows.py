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
