"""The README and docs/ stay walkable: every relative link resolves, and the README stays short."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# One screen or two: what sgmesh is, the quick start, the demo, one picture, the commands, the links.
README_LIMIT_BYTES = 12 * 1024

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)(?:\s+#+)?\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target), with an optional "title"; the target is what must resolve.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
CODE_FOLDERS = ("schemas", "producers", "consumers", "cloud", "sgmesh", "infra", "tests", ".ci")
CODE_SUFFIXES = {".py", ".yaml", ".toml", ".mk"}
DOCS_CITATION = re.compile(r"\b(docs/[\w-]+\.md|DESIGN\.md)")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks: a `#` or a `[x](y)` in a code block is no heading or link."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: its text lower-cased, punctuation dropped, spaces made hyphens.

    As github-slugger does: letters, marks, digits, `-`, `_` and spaces stay; backticks, colons,
    dots, parentheses and the like go. A link in a heading contributes its text.
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    kept = "".join(char for char in text if char in " -_" or unicodedata.category(char)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's id; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(1))
        found.add(anchor if not seen[anchor] else f"{anchor}-{seen[anchor]}")
        seen[anchor] += 1
    return found


def link_targets(text: str) -> Iterator[str]:
    for line in prose_lines(text):
        prose = INLINE_CODE.sub("", line)
        yield from INLINE_LINK.findall(prose)
        yield from REFERENCE_LINK.findall(prose)


def broken_links(root: Path, sources: Iterable[Path]) -> list[str]:
    """Each relative link that names no file or directory in the repository, or no heading there."""
    broken = []
    for page in sources:
        for target in link_targets(page.read_text(encoding="utf-8")):
            if SCHEME.match(target):
                continue
            path_part, _hash, fragment = target.partition("#")
            resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
            where = f"{page.relative_to(root)}: ({target})"
            if not resolved.is_relative_to(root):
                broken.append(f"{where} leaves the repository")
            elif not resolved.exists():
                broken.append(f"{where} names no file")
            elif fragment and resolved.suffix != ".md":
                broken.append(f"{where} has an anchor into a file that is not Markdown")
            elif fragment and unquote(fragment) not in anchors(resolved.read_text(encoding="utf-8")):
                broken.append(f"{where} names no heading of {resolved.relative_to(root)}")
    return broken


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    # GIVEN the README and every page of docs/, WHEN their links are followed
    problems = broken_links(ROOT, pages())
    # THEN each names a file of the repository and, with an anchor, one of that page's headings
    assert problems == []


def test_the_readme_stays_on_a_screen_or_two() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in link_targets(README.read_text(encoding="utf-8"))
        if not SCHEME.match(target)
    }
    assert [page.name for page in sorted(DOCS.glob("*.md")) if page not in linked] == []


def test_every_docs_page_the_code_cites_exists() -> None:
    # Comments and docstrings send readers to docs/<page>.md; a design file the repository lacked once
    # was cited this way.
    sources = [ROOT / "Makefile", *(path for folder in CODE_FOLDERS for path in (ROOT / folder).rglob("*"))]
    cited = {
        (citation, path.relative_to(ROOT).as_posix())
        for path in sources
        if path.suffix in CODE_SUFFIXES or path.name == "Makefile"
        for citation in DOCS_CITATION.findall(path.read_text(encoding="utf-8"))
    }
    assert cited, "no citation found: the scan itself is broken"
    assert sorted((page, path) for page, path in cited if not (ROOT / page).is_file()) == []


def test_anchors_follow_githubs_rules() -> None:
    assert github_anchor("What `make deploy` does") == "what-make-deploy-does"
    assert github_anchor("Operating a mesh: the `sgmesh` CLI") == "operating-a-mesh-the-sgmesh-cli"
    assert github_anchor("Checks (and C++ & Rust), v1.2") == "checks-and-c--rust-v12"
    assert github_anchor("See [the contract](architecture.md#the-contract)") == "see-the-contract"
    assert github_anchor("snake_case and Ünïcode") == "snake_case-and-ünïcode"
    page = "# Notes\n## Notes\n```\n# not a heading\n```\n## Notes ##\n"
    assert anchors(page) == {"notes", "notes-1", "notes-2"}


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    # GIVEN a page whose links miss in every way a link can, and links that hold
    (tmp_path / "other.md").write_text("# Other\n## A `code` heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n"
        "[ok](other.md) [ok](other.md#a-code-heading) [ok](#page) [web](https://example.com/x#y)\n"
        "`[in code](missing.md)`\n"
        "```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [no anchor here](#nowhere)\n"
        "[outside](../../etc/passwd)\n"
        "[ref]: other.md#other-heading\n"
    )
    # WHEN its links are checked THEN exactly the broken ones are reported
    assert broken_links(tmp_path, [page]) == [
        "page.md: (missing.md) names no file",
        "page.md: (other.md#nowhere) names no heading of other.md",
        "page.md: (#nowhere) names no heading of page.md",
        "page.md: (../../etc/passwd) leaves the repository",
        "page.md: (other.md#other-heading) names no heading of other.md",
    ]
