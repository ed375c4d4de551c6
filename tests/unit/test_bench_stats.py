"""The benchmark's arithmetic: histogram buckets and percentiles, spreads, interpolation."""

from __future__ import annotations

import math
import random

import pytest

from socklab.loadgen.stats import (
    BUCKETS_PER_OCTAVE,
    Histogram,
    bucket_of,
    bucket_value,
    interpolate,
    merged,
    ratio,
    spread,
)

BUCKET_ERROR = 2 ** (1 / BUCKETS_PER_OCTAVE) - 1  # relative width of one bucket


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@pytest.mark.parametrize("seconds", [1e-6, 2.5e-5, 1e-3, 0.0421, 1.0, 30.0])
def test_bucket_value_is_within_one_bucket_of_the_latency(seconds: float) -> None:
    assert bucket_value(bucket_of(seconds)) == pytest.approx(seconds, rel=BUCKET_ERROR)


def test_bucket_of_is_monotonic() -> None:
    latencies = [1e-7 * 1.003**i for i in range(5000)]
    buckets = [bucket_of(x) for x in latencies]
    assert buckets == sorted(buckets)


def test_bucket_of_clamps_below_a_nanosecond() -> None:
    assert bucket_of(0.0) == bucket_of(1e-12) == 0


@pytest.mark.parametrize("q", [50.0, 90.0, 99.0, 100.0])
def test_histogram_percentiles_match_the_exact_ones_within_a_bucket(q: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(math.log(2e-4), 0.8) for _ in range(20_000)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    assert histogram.count == len(values)
    assert histogram.percentile(q) == pytest.approx(exact_percentile(values, q),
                                                    rel=BUCKET_ERROR)


def test_histogram_max_is_exact_and_caps_every_percentile() -> None:
    histogram = Histogram()
    for value in (0.001, 0.002, 0.0123456):
        histogram.add(value)
    assert histogram.max_seconds == 0.0123456
    assert histogram.percentile(100) == 0.0123456
    assert histogram.summary()["max"] == pytest.approx(12.3456)


def test_empty_histogram_has_no_percentiles() -> None:
    assert Histogram().percentile(50) is None
    assert Histogram().summary() == {"p50": None, "p90": None, "p99": None, "max": None}


def test_merging_process_histograms_equals_one_histogram_of_everything() -> None:
    rng = random.Random(3)
    parts = [[rng.expovariate(1000) for _ in range(500)] for _ in range(3)]
    whole, pieces = Histogram(), []
    for part in parts:
        piece = Histogram()
        for value in part:
            piece.add(value)
            whole.add(value)
        pieces.append(piece)
    combined = merged(pieces)
    assert combined.counts == whole.counts
    assert combined.max_seconds == whole.max_seconds


def test_histogram_survives_json() -> None:
    histogram = Histogram()
    for value in (1e-4, 2e-4, 2e-4, 0.5):
        histogram.add(value)
    again = Histogram.from_json(histogram.to_json())
    assert again == histogram


def test_spread_is_median_and_range_of_the_runs_ignoring_missing() -> None:
    found = spread([3.0, None, 1.0, 10.0, 2.0])
    assert found is not None
    assert (found.median, found.low, found.high, found.runs) == (2.5, 1.0, 10.0, 4)


def test_spread_of_nothing_is_none() -> None:
    assert spread([]) is None
    assert spread([None, None]) is None


def test_ratio_refuses_missing_or_zero_references() -> None:
    assert ratio(5.0, 2.0) == 2.5
    assert ratio(None, 2.0) is None
    assert ratio(5.0, 0.0) is None
    assert ratio(5.0, None) is None


def test_interpolate_reads_a_counter_between_samples() -> None:
    samples = [(10.0, 1.0), (11.0, 1.5), (12.0, 3.5)]
    assert interpolate(samples, 10.5) == pytest.approx(1.25)
    assert interpolate(samples, 11.5) == pytest.approx(2.5)
    assert interpolate(samples, 12.0) == pytest.approx(3.5)
    assert interpolate(samples, 9.9) is None
    assert interpolate(samples, 12.1) is None
    assert interpolate([], 1.0) is None


def test_interpolate_refuses_samples_too_far_apart() -> None:
    samples = [(0.0, 0.0), (0.05, 0.05), (3.0, 0.06), (3.05, 0.1)]
    assert interpolate(samples, 0.02, max_gap=0.5) == pytest.approx(0.02)
    assert interpolate(samples, 1.0, max_gap=0.5) is None  # a stalled sampler
    assert interpolate(samples, 1.0) is not None


def test_interpolate_within_the_loaded_span_only() -> None:
    samples = [(0.0, 0.0), (0.4, 0.4), (2.6, 2.6), (3.0, 2.6)]  # busy from 0 to 2.6, then idle
    assert interpolate(samples, 0.5, within=(0.0, 2.6)) == pytest.approx(0.5)
    assert interpolate(samples, 2.7, within=(0.0, 2.6)) is None  # the bracket leaves the span
