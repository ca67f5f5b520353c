"""MC answer extraction on realistic replies; accuracy, intervals, circular rows and OE aggregation."""

from __future__ import annotations

import math

import pytest

from harmonyset_hf.evaluation.scoring import (
    CHANCE,
    accuracy_stats,
    aggregate_oe,
    base_question_id,
    circular_variants,
    extract_choice,
    mc_accuracy,
    parse_choice,
    wilson_interval,
)

OPTIONS = [
    "The music's fast beat matches the quick cuts of the video",
    "The music is slow and calm while the video is energetic",
    "The music has no clear relation to the rhythm of the video",
    "The music changes tempo exactly at the scene transitions",
]

# (reply, expected letter or None)
REPLIES = [
    ("B", "B"),
    ("(B)", "B"),
    ("B.", "B"),
    ("b", "B"),
    ("(c)", "C"),
    ("  D  ", "D"),
    ("Answer: B", "B"),
    ("Answer: b", "B"),
    ("answer: (d)", "D"),
    ("The answer is B: The music is slow and calm while the video is energetic", "B"),
    ("The correct answer is (C).", "C"),
    ("**Answer:** C", "C"),
    ("Final answer: D", "D"),
    ("The best answer is probably C because the music does not follow the cuts.", "C"),
    ("A good choice is C", "C"),
    ("I think C is correct.", "C"),
    ("I would choose option A since the beat follows the cuts.", "A"),
    ("I'd go with D.", "D"),
    ("Option B", "B"),
    ("B. The music is slow and calm while the video is energetic", "B"),
    ("C) The music has no clear relation to the rhythm of the video", "C"),
    ("(A) because the beat drops on every cut.", "A"),
    ("D: the tempo changes at each transition.", "D"),
    ("The music's fast beat matches the quick cuts of the video.", "A"),
    ("the music changes tempo exactly at the scene transitions", "D"),
    ("Based on the video, the music is slow and calm while the video is energetic.", "B"),
    ("It is not A, the right option is D.", "D"),
    ("Not A. C fits better.", "C"),
    ("A is wrong; B is the best choice.", "B"),
    ("The soundtrack is in C major and the cuts land on the beat, so the answer is A.", "A"),
    ("Choose from A-D: I pick B", "B"),
    ("A or B, hard to say.", None),
    ("Either B or C could be right.", None),
    ("The answer is B. Actually, the answer is C.", None),
    ("I cannot determine the answer from the video.", None),
    ("The music fits the video well.", None),
    ("", None),
    ("A video with upbeat music and fast cuts.", None),
    ("I don't know.", None),
    ("The video shows a dancer; the music is upbeat.", None),
    ("Option C is the most appropriate because the music ignores the visual rhythm.", "C"),
    ("My answer would be (b).", "B"),
    ("In this video, A and C are both plausible, but C is more accurate.", None),
    ("A\nthe music's fast beat matches the quick cuts.", "A"),
    ("**C**\n\nExplanation: the music ignores the cuts.", "C"),
    ("Answer: The music is slow and calm while the video is energetic", "B"),
    ("Let's look at each option. A: the beat matches. B: too calm. C: unrelated. D: tempo changes. "
     "Therefore, the answer is D.", "D"),
    ("Option A: fast. Option B: slow. The best fit here is B.", "B"),
    ("A. fast\nB. slow\nC. none\nD. mixed", None),
    ("A. fast\nB. slow\nC. none\nD. mixed\nAnswer: B", "B"),
]


def test_table_is_large_enough():
    assert len(REPLIES) >= 30


@pytest.mark.parametrize("reply,expected", REPLIES)
def test_extract_choice(reply, expected):
    choice = parse_choice(reply, OPTIONS)
    assert choice.letter == expected, f"{reply!r}: got {choice}"
    assert extract_choice(reply, OPTIONS) == expected
    assert choice.reason


def test_option_mapping_accepted():
    mapping = dict(zip("ABCD", OPTIONS))
    assert extract_choice("the music changes tempo exactly at the scene transitions", mapping) == "D"


def test_invalid_reasons_say_why():
    assert "several" in parse_choice("A or B, hard to say.", OPTIONS).reason
    assert "no option" in parse_choice("The music fits the video well.", OPTIONS).reason
    assert "empty" in parse_choice(None, OPTIONS).reason


def test_wilson_interval_hand_computed():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96*sqrt(0.016 + 0.009604)/1.38416
    lo, hi = wilson_interval(8, 10)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == pytest.approx(1.0)


def test_accuracy_stats():
    s = accuracy_stats(3, 4, invalid=1)
    assert s["accuracy"] == 0.75 and s["invalid_rate"] == 0.25 and s["chance"] == CHANCE == 0.25
    assert s["ci95"][0] < 0.75 < s["ci95"][1]
    assert accuracy_stats(0, 0)["accuracy"] is None


def test_mc_accuracy_per_aspect_and_category():
    items = [
        {"aspect": "rhythm", "category": "knowledge", "correct": True, "invalid": False},
        {"aspect": "rhythm", "category": "knowledge", "correct": False, "invalid": True},
        {"aspect": "rhythm", "category": "tech_fashion", "correct": False, "invalid": False},
        {"aspect": "theme", "category": "knowledge", "correct": True, "invalid": False},
    ]
    out = mc_accuracy(items)
    assert out["aspects"]["rhythm"]["accuracy"] == pytest.approx(1 / 3)
    assert out["aspects"]["rhythm"]["invalid_rate"] == pytest.approx(1 / 3)
    assert out["aspects"]["theme"]["accuracy"] == 1.0
    assert out["aspects"]["emotion"]["n"] == 0 and out["aspects"]["emotion"]["accuracy"] is None
    assert out["overall"]["accuracy"] == 0.5 and out["overall"]["n"] == 4
    assert out["categories"]["knowledge"]["rhythm"]["accuracy"] == 0.5
    assert out["categories"]["knowledge"]["all"]["accuracy"] == pytest.approx(2 / 3)
    assert "travel_events" not in out["categories"]


def test_circular_variants_rotate_answer():
    row = {"question_id": "x1:rhythm", "id": "x1", "aspect": "rhythm", "question": "Q?",
           "options": OPTIONS, "answer": "B"}
    variants = circular_variants(row)
    assert [v["question_id"] for v in variants] == [f"x1:rhythm#r{k}" for k in range(4)]
    for v in variants:
        # the answer letter always points at the same option text
        assert v["options"]["ABCD".index(v["answer"])] == OPTIONS[1]
        assert sorted(v["options"]) == sorted(OPTIONS)
        assert base_question_id(v["question_id"]) == "x1:rhythm"
    assert variants[0]["options"] == OPTIONS and variants[0]["answer"] == "B"
    assert [v["answer"] for v in variants] == ["B", "A", "D", "C"]
    assert row["options"] == OPTIONS  # the input row is not changed


def test_aggregate_oe_overall_is_item_mean():
    items = [
        {"category": "knowledge", "scores": {"rhythm": 2, "theme": 4, "emotion": 6, "culture": 8}},
        {"category": "knowledge", "scores": {"rhythm": 4, "theme": 4, "emotion": 6, "culture": 8}},
        {"category": "knowledge", "scores": {"rhythm": 6, "theme": 4, "emotion": 6, "culture": 8}},
        {"category": "tech_fashion", "scores": {"rhythm": 10, "theme": 1, "emotion": 1, "culture": 1}},
        {"category": "tech_fashion", "failed": True, "error": "unparseable judge reply"},
    ]
    out = aggregate_oe(items)
    # category means: knowledge rhythm 4, tech rhythm 10; mean of category means would be 7
    assert out["categories"]["knowledge"]["rhythm"] == 4
    assert out["categories"]["tech_fashion"]["rhythm"] == 10
    assert out["overall"]["rhythm"] == pytest.approx((2 + 4 + 6 + 10) / 4)  # 5.5, not 7
    assert out["overall"]["theme"] == pytest.approx(13 / 4)
    assert out["overall"]["n"] == 4 and out["failed"] == 1 and out["scored"] == 4
    assert out["categories"]["tech_fashion"]["failed"] == 1 and out["categories"]["tech_fashion"]["n"] == 1
    assert out["categories"]["knowledge"]["mean"] == pytest.approx((4 + 4 + 6 + 8) / 4)
