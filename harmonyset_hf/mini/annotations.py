"""The words of HarmonySet-mini: labels, 4-section annotations, MC questions and annotator rows.

Everything is derived from an item's planted truth (:mod:`harmonyset_hf.mini.sample`), so the text
agrees with the signal: the rhythm section names each key timestamp and whether the music turns
with the cut, the pace label follows the tempo, the emotion follows the mode, and so on. Wording
is drawn (seeded) from several variants so that no two annotations read alike.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from ..prompting import instruction_templates
from ..schema import ASPECT_NAMES, ASPECTS, CATEGORY_ALIASES, LABELS, OPTION_LETTERS, SUBCATEGORY_TO_CATEGORY
from ..text import format_sync, format_timestamp, join_sections, parse_sync
from .words import (
    ADJECTIVES,
    AUDIO_LABELS,
    CODE_PHRASE,
    CULTURE_OF_SUBCATEGORY,
    MOODS,
    NARRATIVE,
    NARRATIVE_SHORT,
    OPPOSITE,
    QUESTIONS,
    RELATION,
    RELEVANCE_SHORT,
    STYLES,
    TOPICS,
    colour_name,
)

CSV_COLUMNS = ("id", "annotator", "sync", *LABELS)
MAX_WORDS = 200


def _mood(section: dict[str, Any]) -> str:
    return f"{section['mode']}-{'fast' if section['tempo_bpm'] >= 110 else 'slow'}"


def _dominant(truth: dict[str, Any]) -> dict[str, Any]:
    return max(truth["sections"], key=lambda s: s["end"] - s["start"])


def _pace(truth: dict[str, Any]) -> str:
    tempos = truth["tempo_bpm"]
    if len(tempos) > 1 and max(tempos) - min(tempos) >= 40:
        return "diverse"
    weighted = sum(s["tempo_bpm"] * (s["end"] - s["start"]) for s in truth["sections"])
    mean = weighted / sum(s["end"] - s["start"] for s in truth["sections"])
    return "slow" if mean < 96 else "medium" if mean < 124 else "fast"


def make_labels(truth: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The 9 sub-aspect labels of an item, consistent with its planted truth."""
    profile, sections = truth["profile"], truth["sections"]
    rhythm = {"sync": "precise", "mixed": "appropriate", "nosync": rng.choice(["mismatch", "irrelevant"]),
              "none": "irrelevant" if truth["music_changes"] else "appropriate"}[profile]
    content = rng.choices(["strongly related", "indirectly related", "unrelated", "conflicting"], [9, 7, 3, 1])[0]
    narrative = rng.choice({"strongly related": ["enhancement", "enhancement", "suggestion"],
                            "indirectly related": ["suggestion", "independent"],
                            "unrelated": ["independent", "no supplement"], "conflicting": ["reversing"]}[content])
    music = MOODS[_mood(_dominant(truth))]["emotions"]
    align = rng.choices(["consistent", "partially consistent", "contrast", "imbalanced", "unrelated"],
                        [11, 5, 2, 1, 1])[0]
    if align == "consistent":
        video = list(music)
    elif align in ("partially consistent", "imbalanced"):
        video = [music[0], rng.choice(["creative", "humor", "surprise"])]
    elif align == "contrast":
        video = [OPPOSITE[e] for e in music]
    else:
        video = [rng.choice(["creative", "humor"])]
    modes = {s["mode"] for s in sections}
    richness = "single" if len(sections) == 1 else "rich" if len(modes) > 1 or profile == "sync" else "abrupt"
    elements = CULTURE_OF_SUBCATEGORY.get(truth["subcategory"], ["no culture element"])
    if elements == ["no culture element"] and rng.random() < 0.15:
        elements = [rng.choice(["clothing", "landmarks"])]
    relevance = "unrelated" if elements == ["no culture element"] else rng.choices(["related", "misuse"], [4, 1])[0]
    return {"music_pace": _pace(truth), "rhythm_alignment": rhythm, "content_alignment": content,
            "narrative_supplement": narrative, "video_emotions": list(dict.fromkeys(video)),
            "emotion_alignment": align, "emotional_richness": richness, "culture_elements": elements,
            "cultural_relevance": relevance}


# --------------------------------------------------------------------------------------------
# The four sections
# --------------------------------------------------------------------------------------------
def _shot_at(truth: dict[str, Any], t: float) -> dict[str, Any]:
    return next(s for s in truth["shots"] if s["start"] <= t < s["end"])


def _section_at(truth: dict[str, Any], t: float) -> dict[str, Any]:
    return next((s for s in truth["sections"] if s["start"] <= t < s["end"]), truth["sections"][-1])


def _rhythm(truth: dict[str, Any], labels: dict[str, Any], rng: random.Random) -> str:
    first, tempos = truth["sections"][0], truth["tempo_bpm"]
    pace = labels["music_pace"]
    if len(tempos) == 1:
        out = [rng.choice([f"The music keeps a steady pulse of about {tempos[0]} BPM, a {pace} pace.",
                           f"A {pace} groove of roughly {tempos[0]} BPM runs through the whole clip.",
                           f"Rhythmically the track sits at around {tempos[0]} BPM, {pace} and even."])]
    elif len(tempos) > 2:
        out = [f"The tempo moves through {', '.join(map(str, tempos[:-1]))} and {tempos[-1]} BPM, a {pace} pace."]
    else:
        later = ", then ".join(f"{b} BPM" for b in tempos[1:])
        out = [rng.choice([f"The track opens at about {first['tempo_bpm']} BPM and later moves to {later}, "
                           f"so the pace is {pace} overall.",
                           f"The tempo starts near {first['tempo_bpm']} BPM and shifts to {later}; "
                           f"overall the pace reads as {pace}."])]
    for p in truth["sync_points"]:
        ts, before, after = format_timestamp(p["time"]), _shot_at(truth, p["time"] - 0.5), _shot_at(truth, p["time"])
        c1, c2 = colour_name(before["hue"]), colour_name(after["hue"])
        new = _section_at(truth, p["time"] + 1.6)
        if p["code"] == "A":
            out.append(rng.choice([
                f"At {ts} the shot cuts from {c1} to {c2} and the music turns right on the cut, into a louder "
                f"{new['timbre']} sound.",
                f"The cut at {ts} ({c1} to {c2}) lands exactly on a musical turn: tempo, key and loudness "
                f"all change together.",
                f"At {ts}, as the picture switches to {c2}, the soundtrack jumps to a new section in perfect sync."]))
        elif p["code"] == "B":
            change = min(truth["music_changes"], key=lambda c: abs(c - p["time"]))
            when = "later" if change > p["time"] else "earlier"
            out.append(rng.choice([
                f"At {ts} the picture moves from {c1} to {c2}; the music changes too, but about a second {when}.",
                f"Around {ts} the scene changes to {c2} and the music shifts slightly {when} than the cut, "
                f"which feels a little loose."]))
        else:
            out.append(rng.choice([
                f"The cut at {ts} from {c1} to {c2} gets no musical response; beat and chords just continue.",
                f"At {ts} the visuals turn to {c2}, yet the music carries on unchanged through the transition.",
                f"Nothing in the music marks the cut at {ts}: the same groove plays straight through it."]))
    cut_times = set(truth["cuts"])
    for change in truth["music_changes"]:
        if all(abs(change - t) > 2.0 for t in cut_times):
            out.append(rng.choice([f"At {format_timestamp(change)} the music changes on its own, within one shot.",
                                   f"The soundtrack turns at {format_timestamp(change)} with no visual cut to match."]))
    if not truth["sync_points"]:
        out.append("No key moment stands out where picture and music need to meet."
                   if not truth["cuts"] else "The one cut in the clip is minor and the music does not mark it.")
    out.append({"precise": "Edit and soundtrack are tightly synchronized.",
                "appropriate": "The rhythm suits the footage without strict synchronization.",
                "mismatch": "The music's structure runs against the edit.",
                "irrelevant": "Rhythm and editing are largely independent.",
                }[labels["rhythm_alignment"]])
    return " ".join(out)


def _theme(truth: dict[str, Any], labels: dict[str, Any], meta: dict[str, Any], rng: random.Random,
           brief: bool = False) -> str:
    shots = truth["shots"]
    style = STYLES[_dominant(truth)["timbre"]][0]
    shapes = "circle" if all(s["shape"] == "circle" for s in shots) else "shape"
    visual = (f"one {colour_name(shots[0]['hue'])} shot" if len(shots) == 1 else f"{len(shots)} shots" if brief
              else f"{len(shots)} shots ({', then '.join(colour_name(s['hue']) for s in shots)})")
    opener = rng.choice([f'"{meta["title"]}" presents {TOPICS[truth["subcategory"]]} in {visual}, '
                         f"with a {shapes} drifting over {shots[0]['pattern']}.",
                         f"This {truth['subcategory'].lower()} clip shows {TOPICS[truth['subcategory']]} in "
                         f"{visual}, a {shapes} gliding across the frame."])
    relation = RELATION[labels["content_alignment"]].format(style=style)
    return f"{opener} {relation} {NARRATIVE[labels['narrative_supplement']]}"


def _emotion(truth: dict[str, Any], labels: dict[str, Any], rng: random.Random, brief: bool = False) -> str:
    dom = _dominant(truth)
    feel = " and ".join(ADJECTIVES.get(e, e) for e in labels["video_emotions"])
    mood = MOODS[_mood(dom)]["words"]
    out = [rng.choice([f"Visually the clip feels {feel}.", f"The footage conveys a {feel} mood."]),
           rng.choice([f"The music, mostly in {dom['key']}, sounds {mood}.",
                       f"In {dom['key']} for most of its length, the soundtrack is {mood}."])]
    out.append({"consistent": "Picture and sound share the same emotional colour.",
                "partially consistent": "The two only partly agree: the music captures one side of the feeling.",
                "contrast": "The music deliberately contrasts with what the images suggest.",
                "imbalanced": "The music's emotion overpowers the images, leaving the pair imbalanced.",
                "unrelated": "The music's feeling has little to do with the images."}[labels["emotion_alignment"]])
    if labels["emotional_richness"] == "single":
        out.append("The feeling stays single and even from start to end.")
    else:
        moods = " to ".join(dict.fromkeys(MOODS[_mood(s)]["words"].split(" and ")[0] for s in truth["sections"]))
        arc = "rich" if labels["emotional_richness"] == "rich" else "abrupt"
        out.append(f"The emotional arc is {arc}." if brief else f"The emotional arc is {arc}, from {moods}.")
    return " ".join(out)


def _culture(truth: dict[str, Any], labels: dict[str, Any], rng: random.Random) -> str:
    style, origin = STYLES[_dominant(truth)["timbre"]]
    elements = labels["culture_elements"]
    shown = ("No specific cultural elements appear."
             if elements == ["no culture element"] else
             f"The video features cultural elements in its {' and '.join(elements)}.")
    music = rng.choice([f"The soundtrack is {style}, {origin}.", f"Musically it is {style}, {origin}."])
    fit = {"related": "The music relates well to this cultural setting.",
           "misuse": "Its style clashes with the cultural setting it accompanies, a misuse of the context.",
           "unrelated": "Culture plays no part in this pairing."}[labels["cultural_relevance"]]
    return f"{shown} {music} {fit}"


def release_record(plan: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """One item of HarmonySet_Train/Test.json (VideoLLaMA2 conversation + the paper's extra fields)."""
    rng = random.Random(plan["text_seed"])
    labels = make_labels(truth, rng)
    # The paper spells categories several ways; the release does too, so readers must normalise.
    category = rng.choice([k for k, v in CATEGORY_ALIASES.items() if v == truth["category"] and k != v])
    topic = TOPICS[truth["subcategory"]]
    title = rng.choice([f"{topic[0].upper()}{topic[1:]} | {rng.choice(['my', 'our', 'a'])} {rng.randint(2, 30)}s edit",
                        f"{truth['subcategory']} vibes #{rng.randint(1, 99)}", f"When {topic} meets the beat",
                        f"POV: {topic}"])
    handle = rng.choice(["blue", "daily", "tiny", "urban", "sunny", "pixel", "wild", "quiet"]) + rng.choice(
        ["fox", "loop", "frames", "studio", "diaries", "lens", "beats", "motion"])
    audio = [a for a in AUDIO_LABELS if a != "Music"]
    rng.shuffle(audio)
    audio_labels = audio[:9]
    audio_labels.insert(rng.choice([0, 0, 1]), "Music")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    meta = {"title": title, "author": f"@{handle}{rng.randint(1, 999)}", "duration": truth["duration"],
            "video_height": truth["height"], "video_width": truth["width"], "audio_labels": audio_labels,
            "youtube_id": "".join(rng.choice(alphabet) for _ in range(11))}
    sections = {"rhythm": _rhythm(truth, labels, rng), "theme": _theme(truth, labels, meta, rng),
                "emotion": _emotion(truth, labels, rng), "culture": _culture(truth, labels, rng)}
    if len(join_sections(sections).split()) > MAX_WORDS:  # keep annotations in the paper's range
        brief = random.Random(plan["text_seed"] + 1)
        sections["theme"] = _theme(truth, labels, meta, brief, brief=True)
        sections["emotion"] = _emotion(truth, labels, brief, brief=True)
    return {
        "id": plan["id"], "video": f"{plan['id']}.mp4",
        "conversations": [{"from": "human", "value": rng.choice(instruction_templates())},
                          {"from": "gpt", "value": join_sections(sections)}],
        "category": category, "subcategory": truth["subcategory"], "duration": truth["duration"],
        "sync": format_sync(truth["sync_points"]), "labels": labels, "metadata": meta,
    }


# --------------------------------------------------------------------------------------------
# HarmonySet-MC: one question per aspect, the correct option paraphrases the item's section
# --------------------------------------------------------------------------------------------
_FLIP = {"A": "C", "B": "A", "C": "A"}


def _rhythm_option(bpm: int, points: list[tuple[float, str]]) -> str:
    if not points:
        return f"A steady groove of about {bpm} BPM with no key visual turn for the music to follow."
    parts = [CODE_PHRASE[c].format(ts=format_timestamp(t)) for t, c in points]
    claims = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return f"Music at about {bpm} BPM that {claims}."


def _options(aspect: str, rec: dict[str, Any], truth: dict[str, Any], rng: random.Random) -> tuple[str, list[str]]:
    """The correct option and three plausible but wrong ones."""
    lab, dur = rec["labels"], truth["duration"]
    if aspect == "rhythm":
        bpm = _dominant(truth)["tempo_bpm"]
        pts = [(p["time"], p["code"]) for p in truth["sync_points"]]
        other_bpm = bpm - 36 if bpm > 112 else bpm + 36

        def shift(t: float) -> float:
            return min(max(1.0, t + rng.choice([-1, 1]) * rng.randint(4, 9)), max(1.0, dur - 1))
        if pts:
            wrong = [_rhythm_option(bpm, [(shift(t), c) for t, c in pts]),
                     _rhythm_option(bpm, [(t, _FLIP[c]) for t, c in pts]),
                     _rhythm_option(other_bpm, [(shift(t), _FLIP[c]) for t, c in pts])]
        else:
            fake = [(float(rng.randint(2, max(2, int(dur) - 2))), c) for c in ("A", "B", "C")]
            wrong = [_rhythm_option(bpm, [fake[0]]), _rhythm_option(bpm, [fake[1]]),
                     _rhythm_option(other_bpm, [fake[2]])]
        return _rhythm_option(bpm, pts), wrong
    if aspect == "theme":
        sub = truth["subcategory"]
        others = [s for s in TOPICS if SUBCATEGORY_TO_CATEGORY[s] != truth["category"]]
        rels = [r for r in RELATION if r != lab["content_alignment"]]

        def theme(s: str, rel: str) -> str:
            return f"The video shows {TOPICS[s]}; the music is {NARRATIVE_SHORT[rel]}."
        o1, o2 = rng.sample(others, 2)
        wrong = [theme(o1, lab["content_alignment"]), theme(sub, rng.choice(rels)), theme(o2, rng.choice(rels))]
        return theme(sub, lab["content_alignment"]), wrong
    if aspect == "emotion":
        dom = _dominant(truth)

        def emo(feel: list[str], mood: str, align: str) -> str:
            feel_words = " and ".join(ADJECTIVES.get(e, e) for e in feel)
            return f"The images feel {feel_words}, the music sounds {mood}, and the pair is {align}."
        mood = MOODS[_mood(dom)]["words"]
        other_moods = [m["words"] for k, m in MOODS.items() if k != _mood(dom)]
        aligns = [a for a in LABELS["emotion_alignment"] if a != lab["emotion_alignment"]]
        feel = lab["video_emotions"]
        wrong_feel = [OPPOSITE.get(e, "sad") for e in feel]
        wrong = [emo(wrong_feel, mood, lab["emotion_alignment"]),
                 emo(feel, rng.choice(other_moods), rng.choice(aligns)),
                 emo(wrong_feel, rng.choice(other_moods), rng.choice(aligns))]
        return emo(feel, mood, lab["emotion_alignment"]), wrong
    style = STYLES[_dominant(truth)["timbre"]][0]
    styles = [v[0] for k, v in STYLES.items() if v[0] != style]

    def cult(elements: list[str], sty: str, rel: str) -> str:
        shown = "no specific cultural elements" if elements == ["no culture element"] else " and ".join(elements)
        return f"The video shows {shown}; the {sty} soundtrack is {RELEVANCE_SHORT[rel]}."
    elems, rel = lab["culture_elements"], lab["cultural_relevance"]
    alt_elems = [["no culture element"]] if elems != ["no culture element"] else [["customs"], ["landmarks"]]
    alt_rels = [r for r in LABELS["cultural_relevance"] if r != rel]
    wrong = [cult(rng.choice(alt_elems), style, rng.choice(alt_rels)),
             cult(elems, rng.choice(styles), rng.choice(alt_rels)),
             cult(rng.choice(alt_elems), rng.choice(styles), rel)]
    return cult(elems, style, rel), wrong


def mc_questions(test_records: list[dict[str, Any]], truth: dict[str, dict[str, Any]], seed: int) -> list[dict]:
    """HarmonySet_MC.json: 4 questions per test item, options A-D, answer letters spread evenly (seeded)."""
    rng = random.Random(f"harmonyset-mini-mc:{seed}")
    letters = list(OPTION_LETTERS) * -(-len(test_records) * len(ASPECTS) // len(OPTION_LETTERS))
    rng.shuffle(letters)
    out = []
    for rec in test_records:
        questions = []
        for aspect in ASPECTS:
            correct, wrong = _options(aspect, rec, truth[rec["id"]], rng)
            wrong = list(dict.fromkeys(w for w in wrong if w != correct))
            while len(wrong) < 3:  # a collision of two perturbations: fall back to a generic wrong claim
                wrong.append(f"The music {['fights', 'ignores', 'repeats'][len(wrong)]} the video's "
                             f"{ASPECT_NAMES[aspect].lower()} throughout.")
            answer = letters.pop()
            slot = OPTION_LETTERS.index(answer)
            opts = wrong[:3]
            rng.shuffle(opts)
            opts.insert(slot, correct)
            questions.append({"aspect": ASPECT_NAMES[aspect], "question": rng.choice(QUESTIONS[aspect]),
                              "options": dict(zip(OPTION_LETTERS, opts)), "answer": answer})
        out.append({"id": rec["id"], "video": rec["video"], "questions": questions})
    return out


# --------------------------------------------------------------------------------------------
# annotators.csv: 3 annotators per item, with realistic disagreement
# --------------------------------------------------------------------------------------------
def _vary(sub: str, value: Any, rng: random.Random) -> Any:
    """A plausible different answer of one annotator to one sub-aspect."""
    if sub == "video_emotions":
        extra = rng.choice([e for e in LABELS[sub] if e not in value])
        return value[:1] + [extra] if len(value) > 1 or rng.random() < 0.5 else [*value, extra]
    if sub == "culture_elements":
        return [rng.choice([e for e in LABELS[sub] if [e] != value])]
    return rng.choice([v for v in LABELS[sub] if v != value])


def _annotator_sync(points: list[dict[str, Any]], duration: float, rng: random.Random) -> str:
    out = []
    for p in points:
        if rng.random() < 0.07:
            continue  # this annotator missed the point
        code = p["code"] if rng.random() > 0.08 else {"A": "B", "B": rng.choice("AC"), "C": "B"}[p["code"]]
        out.append({"time": min(max(0.0, p["time"] + rng.choice([-1, 0, 0, 1])), duration), "code": code})
    if len(out) < 3 and rng.random() < (0.05 if points else 0.06) and duration > 4:
        t = float(rng.randint(1, int(duration) - 1))
        if all(abs(t - q["time"]) >= 3 for q in out):
            out.append({"time": t, "code": "C"})  # an extra point the others did not see
    return format_sync(sorted(out, key=lambda q: q["time"]))


def annotator_rows(records: Iterable[dict[str, Any]], seed: int) -> list[dict[str, str]]:
    """Three rows per item: the consensus is each sub-aspect's majority (or, rarely, no majority at all)."""
    rng = random.Random(f"harmonyset-mini-annotators:{seed}")
    pool = [f"ann{i:02d}" for i in range(1, 10)]
    rows = []
    for rec in records:
        names = rng.sample(pool, 3)
        answers: list[dict[str, Any]] = [{}, {}, {}]
        for sub, value in rec["labels"].items():
            r = rng.random()
            if r < 0.62:
                vals = [value] * 3
            elif r < 0.98:
                vals = [value, value, _vary(sub, value, rng)]
            else:  # no majority: the release keeps one of them (the reviewer's pick)
                second = _vary(sub, value, rng)
                third = _vary(sub, value, rng)
                vals = [value, second, third if third != second else _vary(sub, second, rng)]
            rng.shuffle(vals)
            for a, v in zip(answers, vals):
                a[sub] = "|".join(v) if isinstance(v, list) else v
        points = [p.as_dict() for p in parse_sync(rec["sync"])]
        for name, ans in zip(names, answers):
            sync = _annotator_sync(points, rec["duration"], rng)
            rows.append({"id": rec["id"], "annotator": name, "sync": sync, **ans})
    return rows


def write_annotators(path: str | Path, records: Iterable[dict[str, Any]], seed: int) -> Path:
    """Write annotators.csv (columns ``CSV_COLUMNS``, multi-labels '|'-separated)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(annotator_rows(records, seed))
    return atomic_write_text(path, buf.getvalue())
