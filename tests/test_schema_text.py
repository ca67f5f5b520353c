"""Schema normalisation, annotation section splitting and sync parsing, on valid and broken input."""

from __future__ import annotations

import pytest

from harmonyset_hf import schema
from harmonyset_hf.text import (
    SectionError,
    SyncFormatError,
    SyncPoint,
    find_sections,
    format_sync,
    join_sections,
    parse_sync,
    split_sections,
)


# ------------------------------------------------------------------ categories and subcategories
@pytest.mark.parametrize("alias,key", sorted(schema.CATEGORY_ALIASES.items()))
def test_every_category_alias(alias, key):
    assert schema.normalize_category(alias) == key
    assert schema.normalize_category(alias.upper()) == key
    assert schema.normalize_category(f"  {alias} ") == key


@pytest.mark.parametrize("spelling,key", [
    ("Life & Emotions", "life_emotion"), ("Life & Emotion", "life_emotion"), ("Life&Emotion", "life_emotion"),
    ("Arts & Performance", "art_performance"), ("Art & Performance", "art_performance"),
    ("Art&Shows", "art_performance"), ("Sports & Fitness", "sports_outdoors"),
    ("Sports & Outdoors", "sports_outdoors"), ("Technology & Fashion", "tech_fashion"),
    ("Tech & Fashion", "tech_fashion"), ("Travel & Events", "travel_events"), ("Knowledge", "knowledge"),
])
def test_paper_spellings(spelling, key):
    assert schema.normalize_category(spelling) == key


def test_unknown_category_names_closest():
    with pytest.raises(schema.SchemaError) as err:
        schema.normalize_category("Life & Emotionz")
    assert "Life & Emotion" in str(err.value) and "closest" in str(err.value)
    with pytest.raises(schema.SchemaError, match="non-empty"):
        schema.normalize_category("")
    with pytest.raises(schema.SchemaError):
        schema.normalize_category(None)


def test_subcategories_belong_to_their_category():
    for category, subs in schema.SUBCATEGORIES.items():
        for sub in subs:
            assert schema.normalize_subcategory(sub.lower(), category) == sub
    assert schema.normalize_subcategory("Cultural Heritage") == "CulturalHeritage"
    assert schema.normalize_subcategory("theme park", "Travel&Events") == "Themepark"
    with pytest.raises(schema.SchemaError, match="belongs to 'life_emotion'"):
        schema.normalize_subcategory("Family", "knowledge")
    with pytest.raises(schema.SchemaError, match="closest"):
        schema.normalize_subcategory("Familly")


def test_aspects():
    for key, name in schema.ASPECT_NAMES.items():
        assert schema.normalize_aspect(name) == key
    assert schema.normalize_aspect("Rhythm and Synchronization") == "rhythm"
    assert schema.normalize_aspect("Culture") == "culture"
    with pytest.raises(schema.SchemaError):
        schema.normalize_aspect("Harmony")


# ------------------------------------------------------------------ labels
def test_single_labels_every_value():
    for key, vocab in schema.LABELS.items():
        for value in vocab:
            out = schema.normalize_label(key, value.upper())
            assert out == ([value] if key in schema.MULTI_LABELS else value)


def test_multi_and_open_labels():
    assert schema.normalize_label("video_emotions", "Happy|hope") == ["happy", "hope"]
    assert schema.normalize_label("video_emotions", ["sad", "Nostalgic"]) == ["sad", "nostalgic"]  # open set
    assert schema.normalize_label("culture_elements", "clothing, cuisines") == ["clothing", "cuisines"]
    assert schema.normalize_label("culture_elements", ["landmarks", "landmarks"]) == ["landmarks"]
    with pytest.raises(schema.SchemaError, match="closest"):
        schema.normalize_label("culture_elements", "clothes|customz")  # closed multi-label set
    with pytest.raises(schema.SchemaError, match="at least one"):
        schema.normalize_label("video_emotions", "")


def test_bad_labels():
    with pytest.raises(schema.SchemaError, match="'precise'"):
        schema.normalize_label("rhythm_alignment", "precize")
    with pytest.raises(schema.SchemaError, match="unknown sub-aspect"):
        schema.normalize_label("music_speed", "fast")


def test_features_of_each_config():
    for config in schema.CONFIGS:
        feats = schema.features(config)
        assert list(feats)[:5] == ["video", "id", "category", "subcategory", "duration"]
        assert "video" not in schema.features(config, with_video=False)
    assert set(schema.features("instruct")["labels"]) == set(schema.LABELS)
    with pytest.raises(schema.SchemaError):
        schema.features("train")


# ------------------------------------------------------------------ sections
VALID = ("Rhythm and Synchronization: beats match.\nTheme and Content: a picnic.\n"
         "Emotion: joyful.\nCultural Relevance: none.")


def test_split_valid():
    sections = split_sections(VALID)
    assert sections == {"rhythm": "beats match.", "theme": "a picnic.", "emotion": "joyful.", "culture": "none."}
    assert split_sections(join_sections(sections)) == sections


@pytest.mark.parametrize("text", [
    VALID.replace("Cultural Relevance:", "Culture:"),
    VALID.upper().replace("BEATS MATCH.", "beats match."),
    "**Rhythm & Synchronization:** beats match.\n**Theme and Content**: a picnic.\n"
    "**Emotion:** joyful.\n**Cultural Relevance:** none.",
    "1. Rhythm and Synchronization: beats match.\n2) Theme and Content: a picnic.\n"
    "### 3. Emotion: joyful.\n- Cultural Relevance: none.",
    "Here is my analysis.\n" + VALID,
])
def test_split_variants(text):
    sections = split_sections(text)
    assert sections["rhythm"].lower() == "beats match."
    assert sections["culture"].lower() == "none."
    assert all(sections.values())


def test_missing_and_repeated_sections():
    missing = VALID.replace("Emotion: joyful.\n", "")
    result = find_sections(missing)
    assert result.missing == ["emotion"] and not result.ok
    with pytest.raises(SectionError, match="missing sections: Emotion"):
        split_sections(missing)
    assert split_sections(missing, strict=False)["emotion"] == ""
    repeated = VALID + "\nEmotion: again."
    assert find_sections(repeated).repeated == ["emotion"]
    with pytest.raises(SectionError, match="repeated sections: Emotion"):
        split_sections(repeated)
    assert find_sections("").missing == list(schema.ASPECTS)
    with pytest.raises(SectionError):
        join_sections({"rhythm": "x"})


def test_header_words_inside_a_sentence_are_not_headers():
    text = VALID.replace("a picnic.", "a picnic, and the Emotion: is warm")  # not at a line start
    assert find_sections(text).ok


# ------------------------------------------------------------------ sync
@pytest.mark.parametrize("text,expected", [
    ("00:10,A; 00:20,B", [(10, "A"), (20, "B")]),
    ("0", []), ("", []), (None, []),
    ("1:05,B", [(65, "B")]),
    ("00:01:05,A", [(65, "A")]),
    ("  00:10 , a ;00:20,  c  ", [(10, "A"), (20, "C")]),
    ("00:10,A; 00:20,B; 00:30,C", [(10, "A"), (20, "B"), (30, "C")]),
    ("00:10.5,A", [(10.5, "A")]),
])
def test_parse_sync_valid(text, expected):
    points = parse_sync(text)
    assert [(p.time, p.code) for p in points] == expected


@pytest.mark.parametrize("text,match", [
    ("00:10,D", "bad sync code"),
    ("00:99,A", "seconds must be below 60"),
    ("ab:10,A", "bad timestamp"),
    ("00:10,A; 00:20,B; 00:30,C; 00:40,A", "at most 3"),
    ("00:10 A", "expected 'mm:ss,CODE'"),
    ("00:10,A,B", "expected 'mm:ss,CODE'"),
    ("00:10,", "expected 'mm:ss,CODE'"),
    ("01:75:00,A", "minutes must be below 60"),
])
def test_parse_sync_malformed(text, match):
    with pytest.raises(SyncFormatError, match=match):
        parse_sync(text)


def test_format_sync_round_trip():
    points = [SyncPoint(10, "A"), SyncPoint(65, "B"), SyncPoint(3725, "C")]
    text = format_sync(points)
    assert text == "00:10,A; 01:05,B; 01:02:05,C"
    assert parse_sync(text) == points
    assert format_sync([]) == "0"
    assert format_sync([p.as_dict() for p in points]) == text
