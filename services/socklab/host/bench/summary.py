"""From a cell's raw runs to its summary: spreads of every figure, CPU rates, memory. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from socklab.loadgen.stats import interpolate, spread

LATENCY_KEYS = ("p50", "p90", "p99", "max")


def lookup(run: Mapping[str, Any], key: str) -> Any:
    """``run["a"]["b"]`` for the key ``"a.b"``; None when any part is missing."""
    value: Any = run
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def summarize(runs: list[Mapping[str, Any]], keys: Iterable[str]) -> dict[str, Any]:
    """For each key: the median and min-max over the runs (None when no run has it)."""
    result = {}
    for key in keys:
        found = spread(lookup(run, key) for run in runs)
        result[key] = found.to_json() if found else None
    return result


def _busiest(run: Mapping[str, Any], key: str) -> float | None:
    shares = run.get(key) or []
    return max(shares) if shares else None


def _client_figures(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        run["client_cpu_max"] = _busiest(run, "client_cpu")
        run["client_wait_max"] = _busiest(run, "client_wait")


# Where the time went: the server's CPU and run-queue wait, and the busiest client process's.
CPU_KEYS = ("server_cpu", "server_wait", "client_cpu_max", "client_wait_max")


def echo_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """requests/s, MiB/s, latency percentiles, and the CPU figures of ``CPU_KEYS``."""
    _client_figures(runs)
    return summarize(runs, ("rps", "mib_s", *(f"latency_ms.{k}" for k in LATENCY_KEYS),
                            *CPU_KEYS))


def exec_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    _client_figures(runs)
    return summarize(runs, ("commands_s", *(f"latency_ms.{k}" for k in LATENCY_KEYS),
                            *CPU_KEYS))


# Samples are taken every 50 ms; around a window's edges they must be this close at most
# (when the load's steady span around the window is not known).
MAX_SAMPLE_GAP = 0.5


def window_rate(samples: list[tuple[float, float]], opened: float, closed: float,
                loaded: list[float] | tuple[float, float] | None = None) -> float | None:
    """How fast a cumulative counter grew between two instants (CPU seconds per second).

    Linear interpolation at each edge is exact when the counter grew at one
    rate between the two samples around it: so those samples must lie within
    ``loaded`` (the span the load ran steadily, warm-up and tail included) or,
    without it, within ``MAX_SAMPLE_GAP`` of each other. Otherwise None.
    """
    if closed <= opened:
        return None
    if loaded is not None:
        start = interpolate(samples, opened, within=(loaded[0], loaded[1]))
        end = interpolate(samples, closed, within=(loaded[0], loaded[1]))
    else:
        start = interpolate(samples, opened, MAX_SAMPLE_GAP)
        end = interpolate(samples, closed, MAX_SAMPLE_GAP)
    if start is None or end is None:
        return None
    return (end - start) / (closed - opened)


def per_connection(before: Mapping[str, int | None], after: Mapping[str, int | None],
                   connections: int) -> dict[str, float | None]:
    """Bytes each connection added to each memory reading (None when unread or no connection)."""
    result: dict[str, float | None] = {}
    for key in before:
        low, high = before[key], after.get(key)
        result[key] = (high - low) / connections if (
            low is not None and high is not None and connections) else None
    return result


def human_size(size: int) -> str:
    """1024 -> '1 KiB', 104857600 -> '100 MiB', 1073741824 -> '1 GiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"
