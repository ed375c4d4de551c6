"""``make test``'s parts, run in order and timed: at the end, the time each one took.

    python tests/parts.py NAME=COMMAND ...

Each COMMAND runs in a shell; the first that fails stops the run (its exit
status is the run's), and the table is printed in every case. The test
suite's own parts (unit, integration, grading, watch), which run together
under pytest-xdist, are broken down from what ``tests/conftest.py`` writes to
``test-reports/suite-parts.json``: for each, the span from its first test's
start to its last test's end, and the seconds its tests took added up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

SUITE_PARTS = Path("test-reports") / "suite-parts.json"


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main(argv: list[str]) -> int:
    parts = [arg.partition("=")[::2] for arg in argv]
    if not parts or any(not name or not command for name, command in parts):
        print(__doc__, file=sys.stderr)
        return 2
    SUITE_PARTS.unlink(missing_ok=True)
    done: list[tuple[str, float, str]] = []
    status = 0
    started = time.monotonic()
    for name, command in parts:
        begun = time.monotonic()
        status = subprocess.run(command, shell=True, check=False).returncode
        done.append((name, time.monotonic() - begun, "ok" if status == 0 else f"exit {status}"))
        if status != 0:
            break
    lines = ["", "make test: the time of each part"]
    lines += [f"  {name:<14} {minutes(seconds):>13}  {result}" for name, seconds, result in done]
    lines += [f"  {name:<14} {'not run':>13}" for name, _ in parts[len(done):]]
    lines.append(f"  {'total':<14} {minutes(time.monotonic() - started):>13}")
    if SUITE_PARTS.exists():
        lines.append("  the suite's parts, run side by side (span; test-seconds added up):")
        for group, figures in json.loads(SUITE_PARTS.read_text()).items():
            lines.append(f"    {group:<12} {minutes(figures['span']):>13}; "
                         f"{figures['seconds']:,.0f} s in {figures['tests']} tests")
    print("\n".join(lines), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
