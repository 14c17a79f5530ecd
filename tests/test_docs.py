"""The repository stands alone: nothing cites documents outside it, and every `docs/<name>.md §x.y`
citation names a section heading that exists in that document."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from schemas.features import FEATURE_NAMES, FEATURE_UNITS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIPPED_DIRS = {".git", ".venv", "var", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache"}

# The design documents that lived beside the checkout, and the path that reached them. Spelled in pieces so
# that this file does not cite them itself.
OUTSIDE_DOCUMENTS = ("FEATURES" + ".md", "BYBIT_V5" + ".md", "SIM_MARKET" + ".md", "../" + "shared")
OUTSIDE = re.compile("|".join(re.escape(name) for name in OUTSIDE_DOCUMENTS))

# `docs/features.md §6.2`, `docs/exchange_protocol.md §4.7, §4.9`, `docs/features.md §2–4`, `… §6.4–6.7`.
_SECTION = r"§\s*\d+(?:\.\d+)*(?:\s*[–-]\s*§?\s*\d+(?:\.\d+)*)?"
CITATION = re.compile(
    r"docs/([A-Za-z0-9_-]+)\.md((?:(?:\s*[,;/]\s*|\s+and\s+|\s+or\s+|\s+)" + _SECTION + r")+)"
)
NUMBER = re.compile(r"\d+(?:\.\d+)*")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.M)
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@cache
def repository_files() -> tuple[Path, ...]:
    """Text files of the repository: what git tracks plus new files it does not ignore, else a walk."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [ROOT / name for name in listed.split("\0") if name]
    else:
        paths = [p for p in ROOT.rglob("*") if not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts)]
    return tuple(p for p in paths if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts))


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary


@cache
def sections_of(doc: str) -> frozenset[str]:
    """The section numbers of `docs/<doc>.md` headings ("6", "6.2", …)."""
    return frozenset(HEADING.findall((DOCS / f"{doc}.md").read_text(encoding="utf-8")))


def citations(text: str) -> list[tuple[str, str, int]]:
    """(document, section number, line) of every `docs/<name>.md §…` citation in `text`."""
    found = []
    for match in CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        for number in NUMBER.findall(match.group(2)):
            found.append((match.group(1), number, line))
    return found


def test_no_file_cites_documents_outside_the_repository() -> None:
    offenders = []
    for path in repository_files():
        text = read_text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, (
        "cite docs/features.md, docs/exchange_protocol.md or docs/exchange_sim_market.md:\n"
        + ("\n".join(offenders))
    )


def test_every_docs_citation_names_an_existing_section() -> None:
    broken = []
    checked = 0
    for path in repository_files():
        text = read_text(path)
        if text is None:
            continue
        for doc, number, line in citations(text):
            checked += 1
            where = f"{path.relative_to(ROOT)}:{line}: docs/{doc}.md §{number}"
            if not (DOCS / f"{doc}.md").is_file():
                broken.append(f"{where}: no such document")
            elif number not in sections_of(doc):
                broken.append(f"{where}: no heading numbered {number}")
    assert checked > 100, f"only {checked} citations found: is the citation pattern still right?"
    assert not broken, "\n".join(broken)


def test_relative_links_in_markdown_resolve() -> None:
    broken = []
    for path in (ROOT / "README.md", *sorted(DOCS.glob("*.md"))):
        for target in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} → {target}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see docs/features.md §6.2.", [("features", "6.2")]),
        (
            "(docs/exchange_protocol.md §4.7, §4.9, §6.4–6.7)",
            [("exchange_protocol", n) for n in ("4.7", "4.9", "6.4", "6.7")],
        ),
        ("docs/features.md §2–4, in vector order", [("features", "2"), ("features", "4")]),
        ("docs/features.md §1.3 and §6.3. §9 is elsewhere", [("features", "1.3"), ("features", "6.3")]),
        ("docs/exchange_protocol.md §10 item 10", [("exchange_protocol", "10")]),
        ("docs/features.md without a section", []),
    ],
)
def test_citation_pattern(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(doc, number) for doc, number, _ in citations(text)] == expected


def test_headings_are_numbered_like_the_citations_expect() -> None:
    assert {"1.7", "6", "6.1", "6.2", "6.3", "8.1", "8.2"} <= sections_of("features")
    assert {"1.4", "2.4", "5.3", "6.8", "9", "10", "11"} <= sections_of("exchange_protocol")
    assert {"6", "7", "8", "11", "12", "13", "13.1", "14", "16"} <= sections_of("exchange_sim_market")


def test_features_doc_lists_every_feature_with_the_unit_of_the_spec() -> None:
    text = (DOCS / "features.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([a-z0-9_]+) \| \[([^\]]+)\] \|", text, re.M)
    assert [(int(n), name) for n, name, _ in rows] == list(enumerate(FEATURE_NAMES, start=1))
    wrong = [
        f"#{n} {name}: [{unit}], the spec says [{FEATURE_UNITS[name].value}]"
        for n, name, unit in rows
        if unit.replace("−", "-") != FEATURE_UNITS[name].value  # the doc writes a true minus sign
    ]
    assert not wrong, "\n".join(wrong)
