"""Signal-level sync (visual cuts vs musical changes), its evaluation against the human codes, the swap pairs."""

from .analysis import (
    Cut,
    KeyPoint,
    Match,
    MusicChange,
    SyncAnalysis,
    SyncError,
    SyncParams,
    align,
    analyze,
    code_for,
    credit,
    detect_cuts,
    detect_music,
    match_events,
)
from .novelty import GROUPS, SCALE, novelty_curves, strength

__all__ = [
    "Cut",
    "GROUPS",
    "KeyPoint",
    "Match",
    "MusicChange",
    "SCALE",
    "SyncAnalysis",
    "SyncError",
    "SyncParams",
    "align",
    "analyze",
    "code_for",
    "credit",
    "detect_cuts",
    "detect_music",
    "match_events",
    "novelty_curves",
    "strength",
]
