"""The single source of truth for HarmonySet's vocabulary and the `datasets` features of each config.

Everything that names an aspect, a category, a sub-aspect label or a sync code imports it from
here; nothing else keeps a second list. Values read from the outside world go through the
``normalize_*`` functions, which accept every spelling the paper uses and raise a
:class:`SchemaError` that names the bad value and the closest valid ones.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import HarmonySetError

# --------------------------------------------------------------------------------------------
# Aspects
# --------------------------------------------------------------------------------------------
ASPECTS: tuple[str, ...] = ("rhythm", "theme", "emotion", "culture")
ASPECT_NAMES: dict[str, str] = {
    "rhythm": "Rhythm & Synchronization",
    "theme": "Theme & Content",
    "emotion": "Emotion",
    "culture": "Cultural Relevance",
}
# Section headers as they stand in annotation text (NOTES.md); model outputs also say "Culture:".
ASPECT_HEADERS: dict[str, tuple[str, ...]] = {
    "rhythm": ("Rhythm and Synchronization", "Rhythm & Synchronization", "Rhythm and Synchronisation"),
    "theme": ("Theme and Content", "Theme & Content", "Thematic Content"),
    "emotion": ("Emotion", "Emotional Impact", "Emotions"),
    "culture": ("Cultural Relevance", "Culture", "Cultural"),
}
# The header written when sections are joined back into one annotation.
CANONICAL_HEADERS: dict[str, str] = {
    "rhythm": "Rhythm and Synchronization",
    "theme": "Theme and Content",
    "emotion": "Emotion",
    "culture": "Cultural Relevance",
}
ASPECT_ALIASES: dict[str, str] = {
    **{a: a for a in ASPECTS},
    "rhythm_sync": "rhythm", "rhythm_and_synchronization": "rhythm", "rs": "rhythm", "r&s": "rhythm",
    "synchronization": "rhythm", "sync": "rhythm",
    "theme_content": "theme", "theme_and_content": "theme", "thematic_content": "theme", "t": "theme",
    "emotional_impact": "emotion", "emotions": "emotion", "e": "emotion",
    "cultural_relevance": "culture", "cultural": "culture", "c": "culture",
    **{name: key for key, names in ASPECT_HEADERS.items() for name in names},
    **{name: key for key, name in ASPECT_NAMES.items()},
}

# --------------------------------------------------------------------------------------------
# Categories and subcategories (paper Table 2 and appendix)
# --------------------------------------------------------------------------------------------
CATEGORIES: tuple[str, ...] = (
    "life_emotion", "art_performance", "travel_events", "sports_outdoors", "knowledge", "tech_fashion",
)
CATEGORY_NAMES: dict[str, str] = {
    "life_emotion": "Life & Emotion",
    "art_performance": "Art & Performance",
    "travel_events": "Travel & Events",
    "sports_outdoors": "Sports & Outdoors",
    "knowledge": "Knowledge",
    "tech_fashion": "Tech & Fashion",
}
CATEGORY_ALIASES: dict[str, str] = {
    **{k: k for k in CATEGORIES},
    **{v: k for k, v in CATEGORY_NAMES.items()},
    "Life & Emotions": "life_emotion", "Life&Emotion": "life_emotion", "Life&Emotions": "life_emotion",
    "Arts & Performance": "art_performance", "Art&Shows": "art_performance", "Art & Shows": "art_performance",
    "Arts & Shows": "art_performance", "Art&Performance": "art_performance",
    "Travel&Events": "travel_events",
    "Sports & Fitness": "sports_outdoors", "Sports&Outdoors": "sports_outdoors", "Sports&Fitness": "sports_outdoors",
    "Technology & Fashion": "tech_fashion", "Tech&Fashion": "tech_fashion", "Technology&Fashion": "tech_fashion",
}
SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "life_emotion": ("Family", "Relationships", "Friendship", "Social", "Memories", "Emotion", "Cooking",
                     "Pets", "Vlogs"),
    "art_performance": ("Art", "Photography", "Sculpture", "Movie", "Programs", "Dance", "Magic", "Theatre",
                        "Music"),
    "travel_events": ("Scenery", "Nature", "Travel", "CulturalHeritage", "Themepark", "Celebrations",
                      "Festivals"),
    "sports_outdoors": ("Fitness", "Sports", "Competitions", "Wildlife", "Outdoors"),
    "tech_fashion": ("Technology", "Gadgets", "Vehicles", "Fashion", "Style", "Makeup"),
    "knowledge": ("Howto", "Tutorial", "Productivity", "Lifehacks", "DIY", "History", "Economy"),
}
SUBCATEGORY_TO_CATEGORY: dict[str, str] = {s: c for c, subs in SUBCATEGORIES.items() for s in subs}

# --------------------------------------------------------------------------------------------
# Human labels: 9 sub-aspects under the 4 aspects
# --------------------------------------------------------------------------------------------
LABELS: dict[str, tuple[str, ...]] = {
    "music_pace": ("fast", "slow", "medium", "diverse"),
    "rhythm_alignment": ("precise", "appropriate", "irrelevant", "mismatch"),
    "content_alignment": ("strongly related", "indirectly related", "unrelated", "conflicting"),
    "narrative_supplement": ("enhancement", "suggestion", "reversing", "independent", "no supplement"),
    "video_emotions": ("happy", "sad", "angry", "fear", "anxious", "creative", "hope", "surprise", "humor",
                       "relax"),
    "emotion_alignment": ("consistent", "partially consistent", "contrast", "imbalanced", "unrelated"),
    "emotional_richness": ("rich", "single", "abrupt"),
    "culture_elements": ("clothing", "customs", "cuisines", "landmarks", "no culture element"),
    "cultural_relevance": ("related", "misuse", "unrelated"),
}
LABEL_ASPECT: dict[str, str] = {
    "music_pace": "rhythm", "rhythm_alignment": "rhythm",
    "content_alignment": "theme", "narrative_supplement": "theme",
    "video_emotions": "emotion", "emotion_alignment": "emotion", "emotional_richness": "emotion",
    "culture_elements": "culture", "cultural_relevance": "culture",
}
# The paper's other spellings (section 3.2.1 names the dimension "narrative enhancement" and its labels
# "enhancing", "suggesting", "independent narrative"): accepted, stored under the keys above.
SUB_ASPECT_ALIASES: dict[str, str] = {"narrative enhancement": "narrative_supplement"}
LABEL_ALIASES: dict[str, dict[str, str]] = {
    "narrative_supplement": {"enhancing": "enhancement", "suggesting": "suggestion",
                             "independent narrative": "independent"},
}
# Sub-aspects whose value is a set of labels, written "happy|hope" in flat files.
MULTI_LABELS: frozenset[str] = frozenset({"video_emotions", "culture_elements"})
# Sub-aspects whose vocabulary is open (the paper lists examples, "..."); other values are kept.
OPEN_LABELS: frozenset[str] = frozenset({"video_emotions"})

# --------------------------------------------------------------------------------------------
# Sync codes (manual key-point annotation)
# --------------------------------------------------------------------------------------------
SYNC_CODES: dict[str, str] = {
    "A": "the music changes precisely in sync with the visual turn",
    "B": "the music changes near the visual turn, but not strongly in sync",
    "C": "no musical change at the visual turn",
}
MAX_SYNC_POINTS = 3
OPTION_LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
SPLITS: dict[str, str] = {"instruct": "train", "oe": "test", "mc": "test"}
CONFIGS: tuple[str, ...] = tuple(SPLITS)


class SchemaError(HarmonySetError, ValueError):
    """A value that is not in HarmonySet's vocabulary; the message names the closest valid ones."""


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


# Folded lookup tables, built once per (module-level) table: normalising is on the hot path of
# reading a 48k-item release, and re-folding every alias on every call dominated its time.
_FOLD_CACHE: dict[int, tuple[dict[str, str], dict[str, str]]] = {}


def _folded(table: dict[str, str]) -> dict[str, str]:
    hit = _FOLD_CACHE.get(id(table))
    if hit is None or hit[0] is not table:  # the table is kept alive in the cache, so its id is not reused
        hit = (table, {_fold(k): v for k, v in table.items()})
        _FOLD_CACHE[id(table)] = hit
    return hit[1]


def _normalize(value: Any, table: dict[str, str], kind: str, valid: Iterable[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{kind} must be a non-empty string, got {value!r}")
    folded = _folded(table)
    hit = folded.get(_fold(value))
    if hit is not None:
        return hit
    choices = sorted(set(valid))
    close = difflib.get_close_matches(value, list(table), n=3, cutoff=0.5)
    close = list(dict.fromkeys(close)) or difflib.get_close_matches(_fold(value), list(folded), n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(repr(c) for c in close)}" if close else ""
    raise SchemaError(f"unknown {kind} {value!r}{hint}; valid: {', '.join(choices)}")


def normalize_aspect(value: Any) -> str:
    """Map any spelling of an aspect (key, display name, header) to its key."""
    return _normalize(value, ASPECT_ALIASES, "aspect", ASPECTS)


def normalize_category(value: Any) -> str:
    """Map any spelling of a category that the paper uses to its key."""
    return _normalize(value, CATEGORY_ALIASES, "category", CATEGORIES)


_SUBCATEGORY_TABLE: dict[str, str] = {
    **{s: s for s in SUBCATEGORY_TO_CATEGORY},
    "Cultural Heritage": "CulturalHeritage", "Theme park": "Themepark", "How to": "Howto",
    "Life hacks": "Lifehacks", "Vlog": "Vlogs", "Theater": "Theatre",
}
_LABEL_TABLES: dict[str, dict[str, str]] = {k: {**{v: v for v in vocab}, **LABEL_ALIASES.get(k, {})}
                                             for k, vocab in LABELS.items()}
_SUB_ASPECT_TABLE: dict[str, str] = {**{k: k for k in LABELS}, **SUB_ASPECT_ALIASES}
_SYNC_TABLE: dict[str, str] = {c: c for c in SYNC_CODES}


def normalize_subcategory(value: Any, category: str | None = None) -> str:
    """Map a subcategory to its canonical spelling; check it belongs to ``category`` when given."""
    sub = _normalize(value, _SUBCATEGORY_TABLE, "subcategory", SUBCATEGORY_TO_CATEGORY)
    if category is not None:
        cat = normalize_category(category)
        if SUBCATEGORY_TO_CATEGORY[sub] != cat:
            raise SchemaError(
                f"subcategory {sub!r} belongs to {SUBCATEGORY_TO_CATEGORY[sub]!r}, not {cat!r}; "
                f"valid for {cat!r}: {', '.join(SUBCATEGORIES[cat])}")
    return sub


def normalize_sub_aspect(value: Any) -> str:
    """Map a sub-aspect's name (key, spaced, or the paper's other spelling) to its key."""
    return _normalize(value, _SUB_ASPECT_TABLE, "sub-aspect", LABELS)


def normalize_label(sub_aspect: str, value: Any) -> str | list[str]:
    """Normalise one sub-aspect's label (a list for multi-label sub-aspects, '|' or ',' separated)."""
    if sub_aspect not in LABELS:
        raise SchemaError(f"unknown sub-aspect {sub_aspect!r}; valid: {', '.join(LABELS)}")
    vocab = LABELS[sub_aspect]
    table = _LABEL_TABLES[sub_aspect]
    if sub_aspect in MULTI_LABELS:
        parts = value if isinstance(value, (list, tuple)) else re.split(r"[|,;/]", str(value or ""))
        parts = [p.strip() for p in parts if str(p).strip()]
        if not parts:
            raise SchemaError(f"{sub_aspect} needs at least one label; valid: {', '.join(vocab)}")
        out = []
        for part in parts:
            if sub_aspect in OPEN_LABELS and _fold(part) not in _folded(table):
                out.append(part.strip().lower())
            else:
                out.append(_normalize(part, table, f"{sub_aspect} label", vocab))
        return list(dict.fromkeys(out))
    return _normalize(value, table, f"{sub_aspect} label", vocab)


def normalize_sync_code(value: Any) -> str:
    """Check a sync code (A, B or C, any case)."""
    return _normalize(value, _SYNC_TABLE, "sync code", SYNC_CODES)


@dataclass(frozen=True)
class Subcategory:
    """A subcategory and its category."""

    name: str
    category: str


def features(config: str, with_video: bool = True):
    """The `datasets.Features` of a config (``instruct``, ``oe`` or ``mc``)."""
    import datasets

    if config not in CONFIGS:
        raise SchemaError(f"unknown config {config!r}; valid: {', '.join(CONFIGS)}")
    List = getattr(datasets, "List", datasets.Sequence)
    string, float32 = datasets.Value("string"), datasets.Value("float32")
    common: dict[str, Any] = {}
    if with_video:
        common["video"] = datasets.Video()
    common.update({
        "id": string,
        "category": string,
        "subcategory": string,
        "duration": float32,
    })
    if config == "mc":
        return datasets.Features({
            **common,
            "question_id": string,
            "aspect": string,
            "question": string,
            "options": List(string),
            "answer": string,
        })
    labels = {k: (List(string) if k in MULTI_LABELS else string) for k in LABELS}
    return datasets.Features({
        **common,
        "instruction": string,
        "annotation": string,
        **{a: string for a in ASPECTS},
        "sync": string,
        "sync_points": List({"time": float32, "code": string}),
        "labels": labels,
        "metadata": {
            "title": string,
            "author": string,
            "video_width": datasets.Value("int32"),
            "video_height": datasets.Value("int32"),
            "audio_labels": List(string),
            "youtube_id": string,
        },
    })
