"""What a check found, in words a learner can act on: sent, expected, came.

Pure functions and one small type, no sockets: ``tests/unit/test_grading_checks.py``
covers them. A message says what was sent, what was expected and what came,
and for bytes, where the first difference is, with a few bytes either side
(never a dump of megabytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Bytes shown either side of a difference.
EXCERPT = 16


@dataclass
class Finding:
    """The result of one check on the client host: status, message and details."""

    status: str = "passed"  # passed, failed or timeout (skipped is decided by the host)
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str, status: str = "failed") -> Finding:
        """The first failure found wins: a check stops at its first wrong answer."""
        if self.status == "passed":
            self.status, self.message = status, message
        return self

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "details": self.details}


def size(n: int) -> str:
    """1 B, 1000 B, 64 KiB, 16 MiB: how a size is said in a message."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} B"


def excerpt(data: bytes, at: int) -> str:
    """A few bytes of ``data`` from ``at`` (Python notation), marked when cut."""
    part = data[at:at + EXCERPT]
    more = "…" if len(data) > at + EXCERPT else ""
    return f"{part!r}{more}" if part else "nothing"


def difference(expected: bytes, got: bytes) -> int | None:
    """Index of the first byte where ``got`` differs from ``expected`` (None: equal)."""
    if got == expected:
        return None
    limit = min(len(expected), len(got))
    # Compare in blocks first: a 16 MiB reply is compared in milliseconds.
    block, at = 4096, 0
    while at < limit and got[at:at + block] == expected[at:at + block]:
        at += block
    return next((i for i in range(at, min(at + block, limit)) if got[i] != expected[i]), limit)


def compare(expected: bytes, got: bytes, ending: str) -> str | None:
    """None if ``got`` is ``expected``, else the sentence that says how it is not.

    ``ending`` says how the reading stopped: ``"eof"`` (the server closed),
    ``"reset"``, ``"timeout"`` or ``"complete"`` (as many bytes as expected came).
    """
    at = difference(expected, got)
    if at is None:
        return None
    came = f"{size(len(got))} came" if got else "nothing came"
    how = {"eof": ", then the server closed the connection",
           "reset": ", then the server reset the connection",
           "timeout": ", then nothing more"}.get(ending, "")
    if at == len(got) and len(got) < len(expected):
        return (f"expected {size(len(expected))}; {came}{how}. "
                f"Missing from byte {at:,}: expected {excerpt(expected, at)}")
    return (f"expected {size(len(expected))}; {came}{how}. First difference at byte "
            f"{at:,}: expected {excerpt(expected, at)}, came {excerpt(got, at)}")


def describe_sent(data: bytes) -> str:
    """How a request is named in a message: its size and its first bytes."""
    return f"{size(len(data))} ({excerpt(data, 0)})"
