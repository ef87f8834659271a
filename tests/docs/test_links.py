"""Every relative link in the tracked Markdown files resolves: the file exists, and an `#anchor`
names a heading of the target (GitHub's slugs). Any tracked file that names a `docs/*.md`
document (code, schema, scripts included) names one that exists.

No database, no network: it reads the files `git ls-files` lists.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]"  # [text], one level of nested brackets allowed
    r"\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)"  # (target "optional title")
)
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)=["']([^"']+)["']""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_DOC_MENTION = re.compile(r"(?<![\w./-])(docs/[\w./-]+?\.md)\b")


def tracked_files(pattern: str | None = None) -> list[Path]:
    command = ["git", "-C", str(ROOT), "ls-files", "-z"]
    if pattern:
        command.append(pattern)
    out = subprocess.run(command, check=True, capture_output=True).stdout.decode()
    return [ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()]


def markdown_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix.lower() == ".md"]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        fence = _FENCE.match(line)
        if fence:
            if fenced is None:
                fenced = fence.group(1)
            elif fence.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lowercased, punctuation dropped except
    '-' and '_', each space a '-'."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags render as nothing
    text = text.replace("*", "")
    kept = [
        ch for ch in text.lower() if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N", "M")
    ]
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub generates for a Markdown file (repeated headings get -1, -2...)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        result.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition, outside
    code blocks and code spans."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = _CODE_SPAN.sub("", line)
        found.extend((number, target) for target in _INLINE_LINK.findall(line))
        reference = _REFERENCE_DEF.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Why each relative link of `path` does not resolve (empty when all do)."""
    problems = []
    where = path.relative_to(root)
    for number, target in links(path):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue  # external (http, https, mailto) or empty
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part)
        if file_part.startswith("/"):
            resolved = root / file_part.lstrip("/")
        else:
            resolved = (path.parent / file_part) if file_part else path
        resolved = resolved.resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{where}:{number}: {target} points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}:{number}: {target}: no such file")
            continue
        is_markdown = resolved.suffix.lower() == ".md"
        if anchor and is_markdown and unquote(anchor) not in anchors(resolved):
            problems.append(f"{where}:{number}: {target}: no heading with anchor #{anchor}")
    return problems


# --- the checker itself catches what it must ---------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Quick start: two commands", "quick-start-two-commands"),
        ("`GET /api/export`", "get-apiexport"),
        ("Upgrade from the legacy service", "upgrade-from-the-legacy-service"),
        ("Metrics and alerts", "metrics-and-alerts"),
        ("Dependencies and why each is here", "dependencies-and-why-each-is-here"),
        ("With newman: `scripts/postman`", "with-newman-scriptspostman"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("Où l'on va", "où-lon-va"),
        ("[Linked](x.md) title", "linked-title"),
    ],
)
def test_slug_follows_githubs_rules(heading, expected):
    assert slug(heading) == expected


def test_checker_reports_a_missing_file_a_missing_anchor_and_nothing_else(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "target.md").write_text(
        "# Target\n\n## Daily quota\n\n## Daily quota\n\n```\n# not a heading\n```\n"
    )
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/target.md) [ok](docs/target.md#daily-quota) [ok](docs/target.md#daily-quota-1)\n"
        "[ok](#top) ![ok](docs/) [ext](https://example.org/x.md) `[code](nowhere.md)`\n"
        "[gone](docs/missing.md) [bad anchor](docs/target.md#not-a-heading)\n"
        "[self](#nowhere)\n\n# Top\n\n[ref]: docs/also-missing.md\n\n"
        "```\n[in code](nowhere.md)\n```\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert problems == [
        "README.md:3: docs/missing.md: no such file",
        "README.md:3: docs/target.md#not-a-heading: no heading with anchor #not-a-heading",
        "README.md:4: #nowhere: no heading with anchor #nowhere",
        "README.md:8: docs/also-missing.md: no such file",
    ]


# --- the repository's documents -----------------------------------------------------------------


def test_the_main_documents_are_tracked():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "CHANGELOG.md", "docs/api.md", "docs/operations.md"} <= names


@pytest.mark.parametrize("document", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(document):
    problems = broken_links(document)
    assert not problems, "\n".join(problems)


def test_every_mention_of_a_docs_document_names_one_that_exists():
    missing = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue  # its own examples name documents that do not exist on purpose
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (screenshots)
        for number, line in enumerate(text.splitlines(), start=1):
            for name in _DOC_MENTION.findall(line):
                if not (ROOT / name).is_file():
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert not missing, "\n".join(missing)
