"""A progress bar on stderr for the long bench steps: steps done, elapsed, an estimate left.

On a terminal the bar redraws one line; elsewhere (make's output piped to a
log) each step is one line, so a log still shows where a run was.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

BAR_WIDTH = 28


def format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def render(done: int, total: int, label: str, elapsed: float, load: float | None = None) -> str:
    """One line: ``[####------] 3/10 label  12s, ~28s left  (load 1.2)``."""
    total = max(total, 1)
    filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
    left = f", ~{format_seconds(elapsed / done * (total - done))} left" if done else ""
    load_text = f"  (load {load:.1f})" if load is not None else ""
    return (f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total} {label}"
            f"  {format_seconds(elapsed)}{left}{load_text}")


class Progress:
    """Counts steps; ``step(label)`` announces the next one. Records the load average seen."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self.loads: list[float] = []

    def step(self, label: str) -> None:
        load = os.getloadavg()[0]
        self.loads.append(load)
        line = render(self.done, self.total, label, time.monotonic() - self.started, load)
        self.done += 1
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, label: str = "done") -> None:
        line = render(self.done, self.total, label, time.monotonic() - self.started)
        self.stream.write(("\r\x1b[K" if self.tty else "") + line + "\n")
        self.stream.flush()
