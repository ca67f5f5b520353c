"""MC answer reading: the replies quoted in issue 16, the labelled corpora, reasons, the LLM extractor."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer, request_text

from harmonyset_hf.evaluation import evaluate_mc
from harmonyset_hf.evaluation.mc_extractor import LLM_NONE, LLM_READ, read_choices, read_counts
from harmonyset_hf.evaluation.mc_reading import INVALID_REASONS, READ_REASONS, normalize_reply, read_choice, reason_kind
from harmonyset_hf.evaluation.scoring import parse_choice
from harmonyset_hf.llm import LLMClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mc_extraction import CORPORA, load_corpus, measure  # noqa: E402

RHYTHM = [
    "The music's beat is precisely synchronized with the cuts and movements",
    "The music's rhythm roughly matches the visual pace",
    "The music's rhythm is unrelated to the visual changes",
    "The music's rhythm clashes with the visual pace",
]

# Every reply quoted in issue 16, with the reading the issue states.
ISSUE_REPLIES = [
    ("The answer is B or C.", None),
    ("Answer: A or B", None),
    ("The answer is A and B.", None),
    ("Answer: A, B", None),
    ("The video shows a vitamin C advert with upbeat music.", None),
    ("This is plan B for the couple", None),
    ("Section B of the song is louder", None),
    ("The singer's part B arrives at the cut.", None),
    ("'B'", "B"),
    ("‘A’", "A"),
    ("Answer: 'D'", "D"),
    ("答案是B", "B"),
    ("A 120 BPM beat drives the edit; B matches best.", "B"),
    ("A Bollywood-style song plays over the dance. The music matches option D.", "D"),
    ("A. " + RHYTHM[0] + "\nB. " + RHYTHM[1] + " (correct)\nC. " + RHYTHM[2] + "\nD. " + RHYTHM[3], "B"),
    ("C major", None),
    ("He got a grade A for the edit.", None),
    ("Not A. The drums make C the clear fit, C.", "C"),
]


def test_issue_replies_read_as_stated():
    """Each reply the issue quotes is read as the issue says, with a reason, through scoring.parse_choice too."""
    read = {reply: parse_choice(reply, RHYTHM) for reply, _ in ISSUE_REPLIES}
    misread = {reply: read[reply] for reply, expected in ISSUE_REPLIES if read[reply].letter != expected}
    assert not misread
    assert all(choice.reason and choice == read_choice(reply, RHYTHM) for reply, choice in read.items())


@pytest.mark.parametrize("name", list(CORPORA))
def test_corpus_precision_and_recall(name):
    """On each hand-labelled corpus (the tuned one and the held-out one) no read is wrong and recall is >= 0.97."""
    rows = load_corpus(CORPORA[name])
    result = measure(rows)
    assert result["precision"] == 1.0, result["errors"]
    assert result["recall"] >= 0.97, result["errors"]
    assert result["rule_reads"] + result["llm_reads"] + result["invalid"] == len(rows)


def test_corpora_are_large_and_varied():
    """At least 150 labelled replies in all, 30 held out, in the styles models write (and refusals, hedges)."""
    tuned, held = (load_corpus(p) for p in CORPORA.values())
    assert len(tuned) + len(held) >= 150 and len(held) >= 30
    styles = {r["style"] for r in tuned + held}
    assert {"terse", "gpt", "gemini", "freeform", "cot", "chinese", "other_language", "refusal", "hedge",
            "trap", "negation", "option_verdicts", "quotes"} <= styles
    for rows in (tuned, held):
        assert sum(r["answer"] is None for r in rows) >= len(rows) // 5  # invalid replies are well represented


def test_every_reason_is_a_known_kind():
    """Reads carry a read reason, invalid answers an invalid reason (details only after the kind)."""
    for row in load_corpus(CORPORA["tuned"]):
        choice = read_choice(row["reply"], row.get("options"))
        kinds = READ_REASONS if choice.letter else INVALID_REASONS
        assert reason_kind(choice.reason) in kinds, choice


@pytest.mark.parametrize("reply", ["Ａ", "（Ｂ）", "「C」", "【D】", "“A”", "«B»", "<C>", "{D}", "`A`", "\\boxed{B}",
                                   "答案：Ｃ"])
def test_quotes_brackets_and_full_width_forms(reply):
    """A letter in quotes or brackets of any kind, or in its full-width form, is read."""
    assert read_choice(reply).letter is not None
    assert re.search(r"[A-D]", normalize_reply(reply))


def test_think_block_is_skipped_unless_it_is_everything():
    assert read_choice("<think>maybe C? no.</think> The answer is A.").letter == "A"
    assert read_choice("<think>The answer is B.</think>").letter == "B"


def test_conclusion_outranks_earlier_statements():
    """A reasoning paragraph that ends on a conclusion reads the conclusion; statements that just disagree do not."""
    reply = "At first glance the answer is A. But the cuts drift off the beat. Therefore, the answer is B."
    assert read_choice(reply) == ("B", "conclusion")
    assert read_choice("The answer is B. Actually, the answer is C.").letter is None


# --------------------------------------------------------------------------------------------
# The LLM extractor (against the local OpenAI-protocol server)
# --------------------------------------------------------------------------------------------
def extractor_reply(body: dict) -> str:
    """A stand-in extractor model: the option whose text the reply paraphrases by a keyword, else Z."""
    reply = re.search(r"Reply: <<<(.*)>>>", request_text(body), re.S).group(1).lower()
    for letter, word in zip("ABCD", ("precise", "roughly", "unrelated", "clash")):
        if word in reply:
            return letter
    return "Z"


def test_llm_extractor_reads_only_what_the_rules_call_invalid(fast_client):
    """Rule reads are never sent; LLM reads and invalid answers are counted apart; a rerun is served from the cache."""
    items = [{"response": "B", "options": RHYTHM},
             {"response": "The tempo roughly follows the motion.", "options": RHYTHM},
             {"response": "Hard to say, sorry.", "options": RHYTHM},
             {"response": "A or B", "options": RHYTHM}]
    with FakeOpenAIServer(reply=extractor_reply) as server:
        client = fast_client(LLMClient, server, model="extractor")
        choices = read_choices(items, client)
        assert [c.letter for c in choices] == ["B", "B", None, None]
        assert [reason_kind(c.reason) for c in choices[1:]] == [LLM_READ, LLM_NONE, LLM_NONE]
        assert choices[3].reason == f"{LLM_NONE} (rules: several different options mentioned (A, B))"
        assert server.total_served == 3  # the rule read "B" is never sent
        counts = read_counts(choices)
        assert (counts["rule_reads"], counts["llm_reads"], counts["invalid"]) == (1, 1, 2)
        assert read_choices(items, client) == choices
        assert server.total_served == 3  # the second run is answered from the cache
    assert read_counts(read_choices(items))["llm_reads"] == 0


def test_evaluate_mc_counts_rule_and_llm_reads_apart(fast_client):
    """`harmonyset eval mc --extractor llm`'s code path: results say how many letters each reader gave."""
    rows = [{"question_id": f"v{i}:rhythm", "id": f"v{i}", "aspect": "rhythm", "category": "knowledge",
             "question": "How does the music's rhythm fit the video?", "options": RHYTHM, "answer": "B"}
            for i in range(3)]
    predictions = {"v0:rhythm": "(B)", "v1:rhythm": "It roughly keeps pace with the edit.", "v2:rhythm": "No idea."}
    plain, _ = evaluate_mc(rows, predictions)
    assert (plain["counts"]["rule_reads"], plain["counts"]["llm_reads"], plain["counts"]["invalid"]) == (1, 0, 2)
    with FakeOpenAIServer(reply=extractor_reply) as server:
        results, items = evaluate_mc(rows, predictions, extractor=fast_client(LLMClient, server, model="x"))
    counts = results["counts"]
    assert (counts["rule_reads"], counts["llm_reads"], counts["invalid"]) == (1, 1, 1)
    assert results["overall"]["correct"] == 2 and plain["overall"]["correct"] == 1
    assert [reason_kind(i["reason"]) for i in items] == ["letter only", LLM_READ, LLM_NONE]
    assert results["extraction"]["extractor"] == "llm" and plain["extraction"]["extractor"] == "rules"


def test_eval_mc_cli_extractor_llm(hub_dir, tmp_path, capsys):
    """`harmonyset eval mc --extractor llm`: the LLM reads only the invalid replies; the summary says how many."""
    from harmonyset_hf.cli import main
    from harmonyset_hf.evaluation.predict import load_split
    from harmonyset_hf.io import write_jsonl

    rows = load_split(hub_dir, "mc")[:6]
    replies = ["B", "(C)", "Hard to say.", "A or D", "The answer is D.", "No idea, sorry."]
    write_jsonl(tmp_path / "p.jsonl", [{"question_id": r["question_id"], "response": t, "model": "m"}
                                       for r, t in zip(rows, replies)])
    with FakeOpenAIServer(reply=lambda body: "B") as server:
        assert main(["eval", "mc", "--data", str(hub_dir), "--predictions", str(tmp_path / "p.jsonl"), "--limit", "6",
                     "--out", str(tmp_path / "out"), "--extractor", "llm", "--extractor-model", "x",
                     "--extractor-base-url", server.base_url, "--cache", str(tmp_path / "cache")]) == 0
        assert server.total_served == 3
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["counts"]["rule_reads"], results["counts"]["llm_reads"], results["counts"]["invalid"]) == (3, 3, 0)
    assert results["extraction"]["extractor"] == "llm" and results["extraction"]["llm"]["model"] == "x"
    assert "3 letters read by the LLM extractor" in capsys.readouterr().out
