"""The numbers the HarmonySet paper publishes (CVPR 2025, arXiv 2503.01725): data to compare with, not results.

Transcribed from the paper's PDF (the copy on the project page, harmonyset.github.io,
``static/pdfs/arxiv__HarmonySet.pdf``), cell by cell:

- Table 2: HarmonySet-OE judge scores (GPT-4o, 1-10) per category and Overall, R&S / T / E / C.
- Table 4: VideoLLaMA2 trained on 10k fully automated (F.A.) annotations vs 10k HarmonySet ones,
  in the Table 2 layout.
- Table 5: HarmonySet-MC accuracy per aspect (fractions here; the paper prints percentages).
- Table 6: VideoLLaMA2 trained on HarmonySet with 16, 32 and 64 frames, Overall only.

The categories are in the paper's column order (:data:`harmonyset_hf.schema.CATEGORIES`).
"""

from __future__ import annotations

from ..schema import ASPECTS, CATEGORIES


def _rows(*by_aspect: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """Per-aspect rows of 7 numbers (6 categories, then Overall) -> {category or "overall": {aspect: score}}."""
    columns = [*CATEGORIES, "overall"]
    return {col: {a: row[i] for a, row in zip(ASPECTS, by_aspect)} for i, col in enumerate(columns)}


# Rows are R&S, T, E, C; columns Life & Emotion, Art & Performance, Travel & Events, Sports & Outdoors,
# Knowledge, Tech & Fashion, Overall (as printed).
TABLE2_OE: dict[str, dict[str, dict[str, float]]] = {
    "Gemini-1.5 Pro": _rows((5.30, 6.05, 5.69, 4.94, 4.91, 4.98, 5.43), (5.25, 5.76, 5.75, 4.41, 4.46, 4.49, 5.18),
                            (5.28, 5.75, 5.60, 4.59, 4.45, 4.43, 5.15), (4.64, 4.91, 4.77, 3.85, 4.27, 4.03, 4.51)),
    "VideoLLaMA2": _rows((3.89, 4.80, 4.56, 4.01, 3.39, 3.54, 4.15), (4.09, 4.83, 4.93, 3.89, 3.44, 3.71, 4.29),
                         (4.36, 5.01, 5.02, 4.08, 3.44, 3.49, 4.38), (2.95, 3.46, 3.69, 2.56, 2.32, 2.52, 3.05)),
    "video-SALMONN": _rows((2.43, 3.53, 2.98, 2.68, 2.32, 2.51, 2.83), (3.24, 4.18, 3.97, 3.23, 2.96, 3.00, 3.55),
                           (3.11, 4.12, 3.84, 3.13, 2.56, 2.70, 3.38), (1.85, 2.51, 2.51, 1.77, 1.68, 1.84, 2.12)),
    "VideoLLaMA2+HarmonySet": _rows((5.43, 6.35, 6.03, 4.94, 5.33, 4.83, 5.55),
                                    (5.12, 5.21, 5.03, 4.84, 5.21, 4.85, 5.06),
                                    (5.25, 6.41, 5.84, 4.00, 4.88, 4.47, 5.26),
                                    (4.87, 4.98, 4.72, 3.31, 5.23, 4.09, 4.62)),
}
TABLE4_OE: dict[str, dict[str, dict[str, float]]] = {
    "VideoLLaMA2 (F.A., 10k)": _rows((4.56, 5.05, 4.97, 4.28, 4.20, 4.17, 4.59),
                                     (4.20, 5.01, 4.85, 3.49, 3.36, 3.41, 4.16),
                                     (4.29, 4.76, 4.67, 4.03, 3.76, 3.79, 4.28),
                                     (3.53, 3.98, 3.67, 2.93, 3.13, 3.02, 3.44)),
    "VideoLLaMA2 (HarmonySet, 10k)": _rows((4.69, 5.58, 5.30, 4.49, 4.36, 4.25, 4.86),
                                           (4.66, 5.02, 4.98, 4.40, 4.39, 4.29, 4.70),
                                           (4.64, 5.43, 5.26, 4.06, 3.85, 3.78, 4.66),
                                           (3.99, 4.30, 4.25, 2.97, 3.79, 3.34, 3.89)),
}
TABLE5_MC: dict[str, dict[str, float]] = {
    "Gemini-1.5 Pro": dict(zip(ASPECTS, (0.4184, 0.4545, 0.4443, 0.5040))),
    "VideoLLaMA2": dict(zip(ASPECTS, (0.2176, 0.4895, 0.5276, 0.2429))),
    "VideoLLaMA2+HarmonySet": dict(zip(ASPECTS, (0.1063, 0.5416, 0.4732, 0.3666))),
    "Human": dict(zip(ASPECTS, (0.8526, 0.8819, 0.8449, 0.9381))),
}
TABLE6_FRAMES: dict[int, dict[str, float]] = {
    16: dict(zip(ASPECTS, (5.55, 5.06, 5.26, 4.62))),
    32: dict(zip(ASPECTS, (5.59, 5.08, 5.29, 4.65))),
    64: dict(zip(ASPECTS, (5.49, 4.94, 5.21, 4.53))),
}
