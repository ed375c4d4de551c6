"""The grader's corpus: learner servers that prove `make grade` honest, and their headers.

Each file of ``tests/grading/corpus/`` is one standalone server a learner could hand in
(``<variant>-<short-name>.py``, or ``.c`` for C): a server with one classic mistake
(``buggy``), a correct server written unlike socklab's own (``correct``), or a server that
attacks the grader (``hostile``). It starts with a header of comment lines (``#`` in Python,
``//`` in C) that this module reads::

    # variant: select
    # kind: buggy
    # mistake: one sentence: what is wrong (buggy, hostile) or how it differs from
    #   socklab's own server (correct); a line indented past the prefix continues it
    # expect-fail: conformance.sizes robustness.slow-reader

``expect-fail`` names the scored checks of ``socklab.grading.spec`` (space-separated ids)
the server must not pass: for a buggy or a correct server exactly these, every other scored
check passing; for a hostile one at least these. ``performance.throughput`` is never listed:
it earns points by band and never fails a run. The header ends at the first line that is
not a comment; other comment lines in it are free text.

A pure loader: it reads the files and checks their form, nothing else (that each variant
and check id exists is the unit tests' business, ``tests/unit/test_grading_corpus.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"

KINDS: tuple[str, ...] = ("buggy", "correct", "hostile")
FIELDS: tuple[str, ...] = ("variant", "kind", "mistake", "expect-fail")
# The comment prefix of a header line, by the file's suffix.
PREFIXES = {".py": "#", ".c": "//"}

_FIELD = re.compile(r"(?P<key>[a-z-]+):(?:\s+(?P<value>.*))?$")
_CHECK_ID = re.compile(r"[a-z]+\.[a-z0-9-]+$")


class HeaderError(ValueError):
    """A corpus file whose header is missing or malformed (the message names the file)."""


@dataclass(frozen=True)
class Entry:
    """One server of the corpus, as its header describes it."""

    path: Path
    variant: str
    kind: str
    mistake: str
    expect_fail: frozenset[str]

    @property
    def name(self) -> str:
        return self.path.name


def header_lines(text: str, prefix: str) -> list[str]:
    """The leading comment lines of ``text`` with ``prefix`` and one space stripped."""
    lines = []
    for line in text.splitlines():
        if not line.startswith(prefix) or line.startswith("#!"):
            break
        body = line[len(prefix):]
        lines.append(body[1:] if body.startswith(" ") else body)
    return lines


def parse(path: Path) -> Entry:
    """The entry of one corpus file; HeaderError says what is wrong with its header."""
    prefix = PREFIXES.get(path.suffix)
    if prefix is None:
        raise HeaderError(f"{path}: a corpus file is .py or .c, not {path.suffix or 'no suffix'}")
    fields: dict[str, str] = {}
    last: str | None = None
    for line in header_lines(path.read_text(encoding="utf-8"), prefix):
        match = _FIELD.match(line)
        if match and match["key"] in FIELDS:
            key = match["key"]
            if key in fields:
                raise HeaderError(f"{path}: header field {key!r} given twice")
            fields[key] = (match["value"] or "").strip()
            last = key
        elif last is not None and line.startswith("  "):  # continues the field above
            fields[last] = f"{fields[last]} {line.strip()}".strip()
        else:
            last = None  # free text: a continuation must follow its field directly
    missing = [key for key in FIELDS if key not in fields]
    if missing:
        raise HeaderError(
            f"{path}: no header field {', '.join(missing)}; a corpus file starts with "
            f"comment lines '{prefix} variant: …', '{prefix} kind: …', '{prefix} mistake: …' "
            f"and '{prefix} expect-fail: …'")
    if fields["kind"] not in KINDS:
        raise HeaderError(f"{path}: kind {fields['kind']!r} is none of {', '.join(KINDS)}")
    if not fields["variant"] or not fields["mistake"]:
        raise HeaderError(f"{path}: empty variant or mistake")
    ids = fields["expect-fail"].split()
    bad = [i for i in ids if not _CHECK_ID.match(i)]
    if bad:
        raise HeaderError(f"{path}: expect-fail holds {', '.join(bad)}, not check ids "
                          "(<category>.<name>)")
    if len(set(ids)) != len(ids):
        raise HeaderError(f"{path}: expect-fail names a check twice")
    return Entry(path, fields["variant"], fields["kind"], fields["mistake"], frozenset(ids))


def load(directory: Path = CORPUS) -> list[Entry]:
    """Every server of the corpus (``*.py`` and ``*.c``), sorted by file name."""
    if not directory.is_dir():
        raise HeaderError(f"{directory}: no such corpus directory")
    paths = sorted(p for p in directory.iterdir() if p.suffix in PREFIXES and p.is_file())
    return [parse(path) for path in paths]
