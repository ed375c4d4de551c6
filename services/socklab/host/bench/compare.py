"""``python -m socklab.host.bench compare RUN_A RUN_B``: what changed between two runs.

For each figure both runs have (the targets, and each echo server's ratio to
uvloop and asyncio at 1 KiB with 10 connections, and its requests/s there),
the two values and the change; a ratio that moved more than ``STEADY``
(10%) is marked, as the issue asks headline ratios of two back-to-back runs
on a quiet machine to stay within it. Pure but for reading the files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socklab.host.bench import report

STEADY = 0.10


def figures(results: Mapping[str, Any]) -> dict[str, float]:
    """Named figures of one run: its targets' values and its 1 KiB c=10 echo figures."""
    found: dict[str, float] = {}
    for target in results.get("targets") or report.targets(results):
        if target["value"] is not None:
            found[target["target"]] = float(target["value"])
    index = report.echo_index(results.get("echo") or [])
    for (name, size, concurrency), cell in sorted(index.items()):
        if size != report.TARGET_SIZE or concurrency != report.TARGET_CONCURRENCY:
            continue
        rps = report.median(cell["summary"], "rps")
        if rps is not None:
            found[f"{name} requests/s"] = rps
        for reference in report.REFERENCES:
            ratio = report.echo_ratio(index, name, size, concurrency, reference)
            if ratio is not None and name != reference:
                found[f"{name} ÷ {reference}"] = ratio
    return found


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Lines: each figure of both runs, its change, and whether a ratio moved past STEADY."""
    first, second = figures(a), figures(b)
    lines = [f"{'figure':<48} {'A':>12} {'B':>12} {'change':>8}"]
    moved = 0
    for name in [n for n in first if n in second]:
        old, new = first[name], second[name]
        change = (new - old) / old if old else float("inf")
        is_ratio = not name.endswith(" requests/s")
        flag = "  <- moved more than 10%" if is_ratio and abs(change) > STEADY else ""
        moved += bool(flag)
        digits = 0 if not is_ratio else 2
        lines.append(f"{name:<48} {old:>12,.{digits}f} {new:>12,.{digits}f} {change:>+8.1%}"
                     f"{flag}")
    only = sorted(set(first) ^ set(second))
    if only:
        lines.append(f"in one run only: {', '.join(only)}")
    lines.append(f"{moved} ratio{'s' if moved != 1 else ''} moved more than "
                 f"{STEADY:.0%} (load A: {_load(a)}; B: {_load(b)})")
    return lines


def _load(results: Mapping[str, Any]) -> str:
    seen = results.get("load_average_seen") or {}
    return f"{seen['min']:.1f}–{seen['max']:.1f}" if seen else "?"


def load_run(path: str) -> dict[str, Any]:
    directory = Path(path)
    file = directory / "results.json" if directory.is_dir() else directory
    return dict(json.loads(file.read_text()))
