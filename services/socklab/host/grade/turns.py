"""Turns on the machine for a class run's gradings: checks share it, a measurement has it alone.

A class run grades several submissions at once (``make grade-class``). Their
checks may overlap: each has its own lab and its timers have margins. A
performance check may not overlap anything of the run: it compares the
learner's server with the lab's own, side by side, and another grading's
clients and servers on the same cores weigh on one side more than on the
other. Measured on this project's 2-core machine, the lab's own select
server graded 8 times as a class: its ratio against itself spread 18.5%
from the median with two gradings at once and the performance checks merely
taking turns among themselves, 5.8% one at a time, 4.7% to 23.9% with these
turns (what else weighs on it: docs/grading-class.md).

So every grading of the run locks one file (``--performance-lock``):
shared (``flock`` ``LOCK_SH``) for each check (with the server's restart
before it, the lab's start and its removal: creating and removing
containers is work too),
exclusive (``LOCK_EX``) for the performance check. A second file, ``<lock>.turnstile``, keeps a
measurement from waiting for ever behind a stream of checks: it is held by
the measurement from the moment it asks, and each check passes through it
before it takes its shared lock, so that checks asked for later wait for
the measurement. Nothing is held between checks, and the kernel releases a
lock whose process died.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _take(handle: IO[str], mode: int, say: str) -> None:
    """flock ``handle`` in ``mode``; ``say`` once on stderr when it has to wait."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        if say:
            print(say, file=sys.stderr, flush=True)
        fcntl.flock(handle, mode)


class Turns:
    """The run's lock file (None: a grading alone, which never waits)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None

    @property
    def turnstile(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".turnstile")

    @contextmanager
    def check(self) -> Iterator[None]:
        """Held while one check runs: alongside other checks, never during a measurement."""
        if self.path is None:
            yield
            return
        with open(self.turnstile, "a") as gate:
            _take(gate, fcntl.LOCK_EX, "")
            fcntl.flock(gate, fcntl.LOCK_UN)
        with open(self.path, "a") as lock:
            _take(lock, fcntl.LOCK_SH, "")
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def measurement(self, say: str = "") -> Iterator[None]:
        """Held while the performance check runs: nothing else of the run meanwhile."""
        if self.path is None:
            yield
            return
        with open(self.turnstile, "a") as gate, open(self.path, "a") as lock:
            _take(gate, fcntl.LOCK_EX, say)
            try:
                _take(lock, fcntl.LOCK_EX, "")
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
