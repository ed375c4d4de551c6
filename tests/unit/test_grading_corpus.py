"""The grader's corpus (tests/grading/corpus): every server's header is valid and names
checks that exist, the servers are well-formed submissions, and the loader refuses a file
without a header.

What each server really fails is the integration test's business
(tests/integration/test_grade_corpus.py): here only what can be known without running one.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from grading.corpus import CORPUS, KINDS, Entry, HeaderError, load, parse
from socklab.grading import spec
from socklab.registry import ECHO_VARIANTS, VARIANTS

ENTRIES = load()

# What a submission may import besides the standard library (docs/grading.md).
THIRD_PARTY = {"twisted", "uvloop"}
# The only IPv4 addresses a corpus file may name: anything else could reach beyond this
# machine (tcp-reaches-out.py connects to the first two).
ALLOWED_ADDRESSES = {"127.0.0.1", "172.17.0.1", "0.0.0.0"}
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def _id(entry: Entry) -> str:
    return entry.name


def scored_ids(variant: str) -> set[str]:
    return {c.id for c in spec.checks(variant) if c.category != "performance"}


def test_the_corpus_holds_every_file_of_its_directory() -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    assert [e.name for e in ENTRIES] == files
    assert not (CORPUS.parent / "__init__.py").exists()  # a data directory, not a package


def test_every_kind_is_there_and_ten_mistakes_at_least() -> None:
    kinds = Counter(e.kind for e in ENTRIES)
    assert set(kinds) == set(KINDS)
    assert kinds["buggy"] >= 10


def test_every_echo_variant_and_udp_has_a_correct_server() -> None:
    assert {e.variant for e in ENTRIES if e.kind == "correct"} >= {*ECHO_VARIANTS, "udp"}


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_the_header_names_a_graded_variant_and_its_checks(entry: Entry) -> None:
    assert entry.variant in VARIANTS
    assert entry.variant in spec.GRADED
    assert entry.name.startswith(f"{entry.variant}-")
    unknown = entry.expect_fail - {c.id for c in spec.checks(entry.variant)}
    assert not unknown, f"{entry.name}: {entry.variant} has no check {sorted(unknown)}"
    # Performance earns points by band and never fails a run: it is never expected to fail.
    assert entry.expect_fail <= scored_ids(entry.variant)


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_a_buggy_server_fails_something_and_a_correct_one_nothing(entry: Entry) -> None:
    if entry.kind == "buggy":
        assert entry.expect_fail
    elif entry.kind == "correct":
        assert entry.expect_fail == frozenset()


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.path.suffix == ".py"], ids=_id)
def test_a_python_server_compiles_and_imports_only_what_a_submission_has(entry: Entry) -> None:
    source = entry.path.read_text(encoding="utf-8")
    tree = compile(source, str(entry.path), "exec", ast.PyCF_ONLY_AST)
    compile(tree, str(entry.path), "exec")
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{entry.name}: a relative import"
            imported.add(node.module.split(".")[0])
    foreign = imported - set(sys.stdlib_module_names) - THIRD_PARTY
    assert not foreign, f"{entry.name} imports {sorted(foreign)}"


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_a_server_names_no_address_beyond_this_machine(entry: Entry) -> None:
    addresses = set(IPV4.findall(entry.path.read_text(encoding="utf-8")))
    assert addresses <= ALLOWED_ADDRESSES, f"{entry.name}: {sorted(addresses)}"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this machine")
@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.path.suffix == ".c"], ids=_id)
def test_a_c_server_compiles_without_a_warning(entry: Entry, tmp_path: Path) -> None:
    result = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                             str(tmp_path / entry.path.stem), str(entry.path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --- the loader ------------------------------------------------------------------------

HEADER = ("# variant: select\n# kind: buggy\n# mistake: forgets to close, then\n"
          "#   leaks\n# expect-fail: resources.fd-leak\n#   conformance.half-close\n")


def test_the_loader_reads_fields_and_continuation_lines(tmp_path: Path) -> None:
    path = tmp_path / "select-x.py"
    path.write_text(HEADER + "# a free comment: not a field\n\nimport socket\n")
    assert parse(path) == Entry(path, "select", "buggy", "forgets to close, then leaks",
                                frozenset({"resources.fd-leak", "conformance.half-close"}))


def test_the_loader_reads_a_c_header(tmp_path: Path) -> None:
    path = tmp_path / "select-x.c"
    path.write_text("// variant: select\n// kind: correct\n// mistake: in C\n"
                    "// expect-fail:\nint main(void) { return 0; }\n")
    entry = parse(path)
    assert (entry.variant, entry.kind, entry.mistake, entry.expect_fail) == (
        "select", "correct", "in C", frozenset())


@pytest.mark.parametrize(("text", "says"), [
    ('"""no header at all"""\n', "no header field variant, kind, mistake, expect-fail"),
    ("# variant: select\n# kind: buggy\n# mistake: m\n", "no header field expect-fail"),
    ("# variant: select\n\n# kind: buggy\n# mistake: m\n# expect-fail: a.b\n",
     "no header field kind, mistake, expect-fail"),  # the header ends at the blank line
    (HEADER.replace("buggy", "sloppy"), "kind 'sloppy' is none of buggy, correct, hostile"),
    (HEADER + "# variant: tcp\n", "header field 'variant' given twice"),
    (HEADER.replace("resources.fd-leak", "fd-leak"), "expect-fail holds fd-leak"),
    (HEADER.replace("conformance.half-close", "resources.fd-leak"), "names a check twice"),
    ("# variant: select\n# kind: buggy\n# mistake:\n# expect-fail: a.b\n",
     "empty variant or mistake"),
])
def test_the_loader_refuses_a_bad_header_and_names_the_file(
        tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "select-x.py"
    path.write_text(text)
    with pytest.raises(HeaderError) as raised:
        parse(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert says in str(raised.value)


def test_the_loader_refuses_other_files_and_a_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a server")
    assert load(tmp_path) == []  # only .py and .c are servers
    with pytest.raises(HeaderError, match=r"not \.txt"):
        parse(tmp_path / "notes.txt")
    with pytest.raises(HeaderError, match="no such corpus directory"):
        load(tmp_path / "missing")
