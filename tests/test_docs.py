"""The README is a short front door and every relative link in it and in docs/ leads somewhere.

Links are read the way GitHub renders them: inline links and images, reference definitions,
nothing inside code. A link to a heading (`page.md#anchor`, `#anchor`) must match a heading's
GitHub anchor. Absolute links (http, https, mailto) are not checked: the tests run offline.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
TOPICS = ("data", "media", "evaluation", "harness", "training", "annotation", "sync", "audits", "benchmarks",
          "reliability")
MAX_README_LINES = 250

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") or ![alt](target): the text may hold one level of brackets, the target balanced parens
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"
                          r"\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+[\"'(].*?[\"')])?\s*\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked out."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            out.append((number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition in prose."""
    found = []
    for number, line in prose_lines(text):
        found += [(number, m.group(1)) for m in _INLINE_LINK.finditer(line)]
        ref = _REFERENCE_DEF.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup dropped, lower case, punctuation out, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _heading_lines(text):
        base = slug(line)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _heading_lines(text: str) -> list[tuple[int, str]]:
    """(line number, heading text) of ATX headings outside code blocks (code spans kept: they name anchors)."""
    lines = text.splitlines()
    out = []
    for number, _ in prose_lines(text):
        match = _HEADING.match(lines[number - 1])
        if match:
            out.append((number, match.group(2)))
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """One line per relative link of ``path`` that names no file inside ``root``, or no heading there."""
    text = path.read_text(encoding="utf-8")
    problems = []
    for number, target in links(text):
        if not target or _ABSOLUTE.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path.resolve()
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where}: leads outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file or folder")
        elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest.read_text("utf-8")):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(root.resolve())}")
    return problems


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def test_every_relative_link_resolves():
    """Every relative link (and heading anchor) in README.md and docs/*.md names something that exists."""
    checked = sum(len(links(p.read_text(encoding="utf-8"))) for p in doc_files())
    assert checked > 50, f"only {checked} links found: the link reader is broken"
    problems = [problem for path in doc_files() for problem in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_a_short_front_door():
    """README.md stays at most 250 lines and shows the two commands a newcomer runs, in a shell block."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES, f"README.md has {len(text.splitlines())} lines"
    blocks = re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.S | re.M)
    commands = {line.split("#")[0].strip() for block in blocks for line in block.splitlines()}
    assert {"make demo", "make test"} <= commands, commands


def test_every_topic_has_a_page_linked_from_readme_and_index():
    """docs/<topic>.md exists for every topic, and both README.md and docs/README.md link to each page."""
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert {f"{t}.md" for t in TOPICS} <= pages
    readme_targets = {Path(t.partition("#")[0]).name for _, t in links(README.read_text(encoding="utf-8"))}
    index_targets = {Path(t.partition("#")[0]).name for _, t in links((DOCS / "README.md").read_text("utf-8"))}
    assert pages <= readme_targets, f"README.md does not link {sorted(pages - readme_targets)}"
    assert pages <= index_targets, f"docs/README.md does not link {sorted(pages - index_targets)}"


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Does the model listen? The swap pairs (`derive swap`, `eval pair`)",
     "does-the-model-listen-the-swap-pairs-derive-swap-eval-pair"),
    ("`audit mc`: can the questions be answered without the clip?",
     "audit-mc-can-the-questions-be-answered-without-the-clip"),
    ("Train: fine-tune Qwen2.5-Omni on HarmonySet with `accelerate`",
     "train-fine-tune-qwen25-omni-on-harmonyset-with-accelerate"),
    ("1. Screen the crawl for music", "1-screen-the-crawl-for-music"),
    ("See [the data page](data.md) & **more**", "see-the-data-page--more"),
])
def test_slug_follows_github(heading, anchor):
    """Anchors are computed as GitHub computes them (punctuation dropped, each space a hyphen)."""
    assert slug(heading) == anchor


def test_link_checker_reports_each_broken_link(tmp_path):
    """A missing file, a missing anchor and a link out of the tree are reported; code, URLs and good links are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A section: with `code`\n\n"
                                                "## A section: with `code`\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## Local heading\n\n"
        "Good: [other](other.md), [section](other.md#a-section-with-code), [again](other.md#a-section-with-code-1),\n"
        "[here](#local-heading), [folder](../configs/), ![img](other.md), [web](https://example.com/missing.md).\n"
        "Bad: [gone](missing.md) and [anchor](other.md#no-such-heading) and [self](#nowhere).\n"
        "Out: [escape](../../outside.md)\n"
        "Code is not a link: `[x](nope.md)`\n\n"
        "```markdown\n[y](nope_either.md)\n```\n\n"
        "[ref]: ../configs/none.yaml\n",
        encoding="utf-8")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 5, problems
    assert any("missing.md: no such file" in p for p in problems)
    assert any("#no-such-heading: no heading" in p for p in problems)
    assert any("#nowhere: no heading" in p for p in problems)
    assert any("../../outside.md: leads outside" in p for p in problems)
    assert any("../configs/none.yaml: no such file" in p for p in problems)
    assert sorted({p.split(":")[1] for p in problems}) == ["15", "7", "8"], problems


def test_readme_check_fails_on_a_long_readme_or_missing_commands(tmp_path, monkeypatch):
    """The front-door test fails on a README of 251 lines, and on one without `make test`."""
    long_readme = tmp_path / "README.md"
    long_readme.write_text("```bash\nmake demo\nmake test\n```\n" + "line\n" * 247, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "README", long_readme)
    with pytest.raises(AssertionError, match="251 lines"):
        test_readme_is_a_short_front_door()
    long_readme.write_text("```bash\nmake demo   # the demo\n```\nRun `make test` too.\n", encoding="utf-8")
    with pytest.raises(AssertionError):
        test_readme_is_a_short_front_door()
    long_readme.write_text("```bash\nmake demo   # the demo\nmake test\n```\n", encoding="utf-8")
    test_readme_is_a_short_front_door()
