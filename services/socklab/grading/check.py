"""One scored check of `make grade`, and the vocabulary every family's table uses.

``socklab.grading.spec`` gathers the tables (echo and udp there, exec in
``spec_exec``, ftp in ``spec_ftp``); this module holds what they share, so
each table can import it without importing the others. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

CATEGORIES: tuple[str, ...] = (
    "conformance", "concurrency", "robustness", "resources", "security", "performance")

STATUSES: tuple[str, ...] = ("passed", "failed", "timeout", "skipped")

# Where a hint sends the learner: the exercise pages, relative to the repo's root.
PAGES = MappingProxyType({
    "echo": "docs/exercises/11-write-your-own-echo.md",
    "udp": "docs/exercises/12-write-your-own-udp.md",
    "exec": "docs/exercises/13-write-your-own-exec.md",
    "ftp": "docs/exercises/14-write-your-own-ftp.md",
    "sticky": "docs/exercises/04-sticky-packets.md",
    "blocking": "docs/exercises/05-blocking-vs-concurrent.md",
    "fdwall": "docs/exercises/06-select-1024-wall.md",
    "halfclose": "docs/exercises/08-half-close.md",
    "fuzz": "docs/exercises/10-fuzzing.md",
})

# conformance.tutorial-client, in every family: the lab's own client (`socklab client …`),
# run as a learner runs it. A few points: most of what it meets, other checks judge byte
# for byte; what it adds is the learner's own view of the server.
TUTORIAL_CLIENT_POINTS = 3


@dataclass(frozen=True)
class Check:
    """One scored check: ``id`` is ``<category>.<name>``."""

    id: str
    points: int
    title: str
    hint: str
    page: str
    # Seconds the grader gives it on the client host before it counts as a timeout.
    budget: float = 30.0
    # Sample the server's threads, descriptors and memory from the host while it runs.
    sample: bool = False
    # A host action run before the check (socklab.host.grade.grader.SETUPS), e.g.
    # "plant-links": links planted in the ftp server's upload directory.
    setup: str = ""

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.id}: unknown category {self.category!r}")
        if self.page not in PAGES:
            raise ValueError(f"{self.id}: unknown page {self.page!r}")
