"""The learner-facing docs of `make grade` against its spec: they cannot drift apart.

``socklab.grading.spec`` is what the grader runs and scores; docs/grading.md
("Checks and points"), the two "write your own" exercise pages and the
README are what instructors and learners read. Each table of "Checks and
points" is parsed and compared with ``spec.checks(variant)`` (ids, points,
order, the total in its heading); every page a hint names must exist; the
README must say how to grade a server; each family's exercise page must
name every check a learner of that family can fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from socklab.grading import spec

ROOT = Path(__file__).resolve().parents[2]
GRADING = ROOT / "docs" / "grading.md"
README = ROOT / "README.md"

# The variants each learner spec covers (its page is spec.PAGES[family]).
FAMILIES: dict[str, tuple[str, ...]] = {
    "echo": ("tcp", "select", "epoll", "twisted"),
    "udp": ("udp",),
    "exec": ("exec",),
    "ftp": ("ftp",),
}

SECTION = "## Checks and points"
VARIANT_HEADING = re.compile(r"^### (?P<variant>[a-z]+): (?P<total>\d+) points$")
CELL_BORDER = re.compile(r"(?<!\\)\|")


def section(text: str, heading: str) -> list[str]:
    """The lines under ``heading`` up to the next heading of its level or above."""
    lines = text.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = lines.index(heading)
    except ValueError:
        pytest.fail(f"no heading {heading!r}")
    body, fenced = [], False
    for line in lines[start + 1:]:
        if line.startswith("```"):
            fenced = not fenced
        hashes = len(line) - len(line.lstrip("#"))
        if not fenced and 0 < hashes <= level and line[hashes:hashes + 1] == " ":
            break
        body.append(line)
    return body


def checks_tables(text: str) -> dict[str, tuple[int, list[tuple[str, int]]]]:
    """Each variant's (total in its heading, [(id, points), ...]) from "Checks and points"."""
    tables: dict[str, tuple[int, list[tuple[str, int]]]] = {}
    variant: str | None = None
    for line in section(text, SECTION):
        if line.startswith("### "):
            match = VARIANT_HEADING.match(line)
            assert match, f"{line!r}: expected '### <variant>: <total> points'"
            variant = match["variant"]
            assert variant not in tables, f"two tables for {variant}"
            tables[variant] = (int(match["total"]), [])
            continue
        if not line.startswith("|") or variant is None:
            continue
        cells = [c.strip() for c in CELL_BORDER.split(line)[1:-1]]
        if cells[0] in ("id", "") or set(cells[0]) <= set("-: "):
            continue  # the header row and the rule under it
        tables[variant][1].append((cells[0].strip("`"), int(cells[1])))
    return tables


@pytest.fixture(scope="module")
def tables() -> dict[str, tuple[int, list[tuple[str, int]]]]:
    return checks_tables(GRADING.read_text())


def test_there_is_one_table_per_graded_variant(tables: dict) -> None:
    assert sorted(tables) == sorted(spec.GRADED), (
        f"docs/grading.md has tables for {sorted(tables)}; spec.GRADED is "
        f"{sorted(spec.GRADED)}")


@pytest.mark.parametrize("variant", spec.GRADED)
def test_a_variants_table_is_its_spec(tables: dict, variant: str) -> None:
    assert variant in tables, f"docs/grading.md has no '### {variant}: N points' table"
    total, rows = tables[variant]
    expected = [(c.id, c.points) for c in spec.checks(variant)]
    assert rows == expected, (
        f"{variant}: the table lists (id, points) {rows}\nspec.checks() says {expected}")
    assert total == sum(points for _, points in expected), (
        f"{variant}: the heading says {total} points; the checks add up to "
        f"{sum(points for _, points in expected)}")


def test_the_table_parser_reads_a_table() -> None:
    text = ("## Checks and points\n\n### tcp: 10 points\n\n| id | points | what |\n"
            "|---|---|---|\n| `conformance.echo` | 6 | a \\| b |\n| `x.y` | 4 | c |\n\n"
            "## Next\n\n| `not.this` | 1 | d |\n")
    assert checks_tables(text) == {"tcp": (10, [("conformance.echo", 6), ("x.y", 4)])}


@pytest.mark.parametrize("name", sorted(spec.PAGES))
def test_every_page_a_hint_names_exists(name: str) -> None:
    path = ROOT / spec.PAGES[name]
    assert path.is_file(), f"spec.PAGES[{name!r}] is {spec.PAGES[name]}, which does not exist"


def test_the_readme_says_how_to_grade_a_server() -> None:
    text = README.read_text()
    headings = [line for line in text.splitlines()
                if re.match(r"^#{2,3} Grade a server\b", line)]
    assert len(headings) == 1, f"README.md has {len(headings)} 'Grade a server' headings"
    body = "\n".join(section(text, headings[0]))
    assert "make grade" in body, "README's 'Grade a server' section does not name `make grade`"
    assert "docs/grading.md" in body, "README's 'Grade a server' section does not link the page"


def test_every_graded_variant_has_a_family() -> None:
    covered = sorted(v for variants in FAMILIES.values() for v in variants)
    assert covered == sorted(spec.GRADED), (
        f"the families cover {covered}; spec.GRADED is {sorted(spec.GRADED)}: a newly "
        "graded variant needs its exercise page and an entry in FAMILIES")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_familys_page_names_every_check(family: str) -> None:
    page = ROOT / spec.PAGES[family]
    assert page.is_file(), f"{spec.PAGES[family]} does not exist"
    text = page.read_text()
    ids = sorted({c.id for variant in FAMILIES[family] for c in spec.checks(variant)})
    missing = [check_id for check_id in ids if f"`{check_id}`" not in text]
    assert not missing, f"{spec.PAGES[family]} does not name {missing}"


def test_the_ftp_page_says_how_large_the_timed_upload_is() -> None:
    """A learner's size limit must let the performance upload in: the page says its size,
    and names no other size for it."""
    from socklab.grading.spec_ftp import THROUGHPUT_UPLOAD

    text = (ROOT / spec.PAGES["ftp"]).read_text()
    said = set(re.findall(r"performance check uploads (\d+) MiB|client uploads (\d+) MiB", text))
    sizes = {int(size) for pair in said for size in pair if size}
    assert sizes == {THROUGHPUT_UPLOAD >> 20}, (
        f"{spec.PAGES['ftp']} gives the timed upload as {sorted(sizes)} MiB; the grader "
        f"uploads {THROUGHPUT_UPLOAD >> 20} MiB")
