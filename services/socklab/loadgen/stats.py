"""Latency histograms, percentiles and spreads: the arithmetic of the benchmark, without I/O.

A load-generator process records every request's latency into a ``Histogram``
of logarithmic buckets (1/64 of an octave wide, so any percentile read from it
is within about 1.1% of the exact value), which stays small however many
requests it counts and merges exactly across processes. The maximum is kept
exactly. A cell's repeated runs are summarised as a ``Spread``: the median and
the min-max range of the runs.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Buckets per doubling of the latency: the relative width of a bucket is
# 2**(1/64) - 1 = 1.09%, finer than the run-to-run noise on a shared machine.
BUCKETS_PER_OCTAVE = 64
# Latencies are counted in nanoseconds; anything faster than 1 ns is 1 ns.
NS = 1e9
PERCENTILES = (50.0, 90.0, 99.0)


def bucket_of(seconds: float) -> int:
    """The histogram bucket that holds a latency of ``seconds``."""
    return int(math.log2(max(seconds * NS, 1.0)) * BUCKETS_PER_OCTAVE)


def bucket_value(index: int) -> float:
    """A bucket's representative latency in seconds (its geometric middle)."""
    return 2 ** ((index + 0.5) / BUCKETS_PER_OCTAVE) / NS


@dataclass
class Histogram:
    """Counts of latencies per logarithmic bucket, plus the exact maximum."""

    counts: dict[int, int] = field(default_factory=dict)
    max_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        index = bucket_of(seconds)
        self.counts[index] = self.counts.get(index, 0) + 1
        if seconds > self.max_seconds:
            self.max_seconds = seconds

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: Histogram) -> None:
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.max_seconds = max(self.max_seconds, other.max_seconds)

    def percentile(self, q: float) -> float | None:
        """The latency below which ``q`` percent of the requests fell; None when empty.

        Nearest-rank: the smallest bucket whose cumulative count reaches
        ``ceil(q/100 * n)``; never above the exact maximum, which is the last rank.
        """
        total = self.count
        if total == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * total))
        if rank >= total:
            return self.max_seconds  # the top rank is the maximum, known exactly
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(bucket_value(index), self.max_seconds)
        return self.max_seconds

    def summary(self) -> dict[str, float | None]:
        """p50, p90, p99 and max in milliseconds."""
        result: dict[str, float | None] = {}
        for q in PERCENTILES:
            value = self.percentile(q)
            result[f"p{q:g}"] = None if value is None else value * 1e3
        result["max"] = self.max_seconds * 1e3 if self.count else None
        return result

    def to_json(self) -> dict[str, Any]:
        return {"counts": {str(k): v for k, v in self.counts.items()},
                "max_seconds": self.max_seconds}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        return cls({int(k): int(v) for k, v in data["counts"].items()},
                   float(data["max_seconds"]))


def merged(histograms: Iterable[Histogram]) -> Histogram:
    total = Histogram()
    for histogram in histograms:
        total.merge(histogram)
    return total


@dataclass(frozen=True)
class Spread:
    """The median and the min-max range of one figure over N runs."""

    median: float
    low: float
    high: float
    runs: int

    def to_json(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.runs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Spread:
        return cls(data["median"], data["min"], data["max"], data["runs"])


def spread(values: Iterable[float | None]) -> Spread | None:
    """The spread of the runs' values, ignoring runs without one; None when there is none."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing or the reference is 0."""
    if value is None or not reference:
        return None
    return value / reference


def interpolate(samples: list[tuple[float, float]], at: float, max_gap: float | None = None,
                within: tuple[float, float] | None = None) -> float | None:
    """The value at time ``at`` from (time, value) samples, linearly between the two around it.

    Used to read a cumulative counter (a container's CPU time) at the instants
    a load generator's measuring window opened and closed. None outside the
    samples, or when the two samples around ``at`` are more than ``max_gap``
    seconds apart (a stalled sampler would smear the window's rate over a
    longer, quieter span), or when they are not both ``within`` (low, high).
    """
    if not samples or at < samples[0][0] or at > samples[-1][0]:
        return None
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t0 <= at <= t1:
            if max_gap is not None and t1 - t0 > max_gap:
                return None
            if within is not None and not within[0] <= t0 <= t1 <= within[1]:
                return None
            return v0 if t1 == t0 else v0 + (v1 - v0) * (at - t0) / (t1 - t0)
    return samples[-1][1]
