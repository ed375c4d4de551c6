"""report.md rendering: spreads, ratio tables, targets, and the summaries under them."""

from __future__ import annotations

from typing import Any

import pytest

from socklab.host.bench import report
from socklab.host.bench.grid import QUICK
from socklab.host.bench.progress import format_seconds, render
from socklab.host.bench.summary import (
    echo_summary,
    human_size,
    lookup,
    per_connection,
    summarize,
    window_rate,
)


def echo_run(rps: float, p50: float = 0.1) -> dict[str, Any]:
    return {"rps": rps, "mib_s": rps / 1024, "client_cpu": [0.3, 0.4], "server_cpu": 0.9,
            "latency_ms": {"p50": p50, "p90": p50 * 2, "p99": p50 * 5, "max": p50 * 50}}


def echo_cell(target: str, rps: list[float], size: int = 1024, concurrency: int = 10,
              p50: float = 0.1) -> dict[str, Any]:
    runs = [echo_run(r, p50) for r in rps]
    return {"target": target, "reference": target in ("asyncio", "uvloop", "threaded"),
            "size": size, "concurrency": concurrency, "runs": runs,
            "summary": echo_summary(runs)}


def idle_point(target: str, idle: int, p50: float) -> dict[str, Any]:
    cell = echo_cell(target, [1000.0, 1100.0, 900.0], concurrency=1, p50=p50)
    return {**cell, "idle": idle, "opened": idle,
            "memory_per_connection": {"rss": 2048.0, "cgroup": 4096.0}}


def results(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "started": "2026-01-01T00:00:00+00:00", "image": "socklab-lab:abc",
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "memory_bytes": 8 << 30,
                    "kernel": "6.1", "docker": "20.10"},
        "params": QUICK.to_json(), "load_average_before": [0.5, 0.4, 0.3],
        "load_average_after": [0.7, 0.5, 0.3], "load_average_seen": {"min": 0.5, "max": 1.5},
        "versions": {"python": "3.11.2", "twisted": "22.4.0", "uvloop": "0.17.0"},
        "seconds": 90, "errors": [],
        "echo": [echo_cell("epoll", [9000, 10000, 11000]), echo_cell("asyncio", [8000] * 3),
                 echo_cell("uvloop", [20000, 20000, 20000])],
        "idle": [idle_point("epoll", 100, 0.10), idle_point("epoll", 10_000, 0.105)],
        "iperf3": {"runs": [], "summary": summarize([{"mib_s": 1000.0, "gbit_s": 8.4}],
                                                    ("mib_s", "gbit_s"))},
        "iperf3_reverse": {"runs": [], "summary": summarize([{"mib_s": 2000.0, "gbit_s": 16.8}],
                                                            ("mib_s", "gbit_s"))},
        "ftp": [{"size": 1 << 30, "verified": True, "runs": [],
                 "summary": summarize([{"mib_s": 400.0, "seconds": 2.56, "server_cpu": 1.0}],
                                      ("mib_s", "seconds", "server_cpu")),
                 "downloads": [], "downloads_verified": True,
                 "download_summary": summarize(
                     [{"mib_s": 1500.0, "seconds": 0.683, "server_cpu": 0.3}],
                     ("mib_s", "seconds", "server_cpu"))}],
        "memory": [], "exec": [], "udp": []}
    return {**base, **overrides}


def test_spread_text_shows_median_and_range() -> None:
    assert report.spread_text({"median": 12345.4, "min": 11900, "max": 12800, "runs": 3}) == \
        "12,345 (11,900–12,800)"
    assert report.spread_text({"median": 0.5, "min": 0.4, "max": 0.6, "runs": 3}, 0, 100) == \
        "50 (40–60)"
    assert report.spread_text({"median": 1.0, "min": 1.0, "max": 1.0, "runs": 1}, 1) == "1.0"
    assert report.spread_text(None) == "–"


def test_echo_ratio_compares_with_the_reference_at_the_same_cell() -> None:
    index = report.echo_index(results()["echo"])
    assert report.echo_ratio(index, "epoll", 1024, 10, "uvloop") == pytest.approx(0.5)
    assert report.echo_ratio(index, "epoll", 1024, 10, "asyncio") == pytest.approx(1.25)
    assert report.echo_ratio(index, "epoll", 1024, 100, "uvloop") is None  # not measured


def test_targets_say_met_not_met_and_unmeasured() -> None:
    found = {t["target"].split(" ")[0] + t["goal"]: t for t in report.targets(results())}
    by_goal = {t["goal"]: t for t in found.values()}
    assert by_goal["≥ 1.00"]["met"] is True  # epoll 1.25 × asyncio
    assert by_goal["≥ 0.80"]["met"] is False  # epoll 0.5 × uvloop
    assert by_goal["≥ 0.50"]["value"] == pytest.approx(0.4)  # 400 of 1000 MiB/s
    assert by_goal["≥ 0.50"]["met"] is False
    assert by_goal["≥ 0.70"]["value"] == pytest.approx(0.75)  # 1500 of 2000 MiB/s the -R way
    assert by_goal["≥ 0.70"]["met"] is True
    assert by_goal["≤ 1.10"]["value"] == pytest.approx(1.05)
    assert by_goal["≤ 1.10"]["met"] is True
    empty = report.targets(results(echo=[], ftp=[], idle=[], iperf3=None))
    assert [t["met"] for t in empty] == [None] * 5
    no_reverse = {t["target"]: t for t in report.targets(results(iperf3_reverse=None))}
    assert no_reverse["ftp 1 GiB download MiB/s ÷ iperf3 -R"]["value"] is None


def test_render_has_every_section_and_the_ratios() -> None:
    text = report.render(results(), ["echo-rps.png"])
    for heading in ("# socklab benchmark", "## Headline", "## Targets", "load generator",
                    "### Echo, 1 KiB messages", "## Many idle connections",
                    "## Memory per connection", "### iperf3", "### ftp uploads", "## exec",
                    "## udp"):
        assert heading in text
    assert "![echo-rps.png](echo-rps.png)" in text
    assert "| epoll | 10 | 10,000 (9,000–11,000) |" in text
    assert "0.50×" in text and "1.25×" in text
    assert "| 1 GiB | put | 400.0 | 2.560 | 0.40× | yes |" in text
    assert "| 1 GiB | get | 1,500.0 | 0.683 | 0.75× | yes |" in text
    assert "| ftp-server → client-1 (-R) | 2,000 |" in text
    assert "0.50 before, 0.50–1.50 during, 0.70 after" in text


def paired(reference: str, ratios: list[float]) -> dict[str, Any]:
    runs = [{"ratio": r, "rps": 1000.0 * r, "reference_rps": 1000.0} for r in ratios]
    return {"target": "epoll", "reference": reference, "size": 1024, "concurrency": 10,
            "turn": 0.2, "seconds": 2.4, "runs": runs,
            "summary": summarize(runs, ("ratio", "rps", "reference_rps"))}


def test_targets_take_the_ratios_measured_in_turns_where_the_run_has_them() -> None:
    both = results(paired=[paired("asyncio", [0.9, 0.95, 2.2]), paired("uvloop", [0.85])])
    found = {t["target"]: t for t in report.targets(both)}
    asyncio = found["epoll 1 KiB c=10 requests/s ÷ asyncio (in turns)"]
    assert asyncio["value"] == pytest.approx(0.95)  # the median in turns, not the cells 1.25
    assert asyncio["met"] is False
    assert found["epoll 1 KiB c=10 requests/s ÷ uvloop (in turns)"]["met"] is True
    text = report.render(both, [])
    assert "### The target ratios, measured in turns" in text
    row = "| epoll ÷ asyncio | 0.950 (0.900–2.200) | 950 (900–2,200) | 1,000 (1,000–1,000) |"
    assert row in text
    assert "Not measured in this run." in report.render(results(), [])


def test_render_lists_errors() -> None:
    text = report.render(results(errors=[{"workload": "udp", "error": "boom"}]), [])
    assert "## Errors" in text and "- udp: boom" in text


def test_table_rows_have_as_many_cells_as_the_header() -> None:
    lines = report.echo_tables(results()["echo"])
    rows = [line for line in lines if line.startswith("|")]
    assert len({line.count("|") for line in rows}) == 1


def test_lookup_and_summarize_follow_dotted_keys() -> None:
    runs = [echo_run(100.0, 0.2), echo_run(300.0, 0.4), {"rps": None}]
    assert lookup(runs[0], "latency_ms.p50") == 0.2
    assert lookup(runs[0], "latency_ms.nope") is None
    found = summarize(runs, ("rps", "latency_ms.p50", "absent"))
    assert found["rps"] == {"median": 200.0, "min": 100.0, "max": 300.0, "runs": 2}
    assert found["absent"] is None


def test_echo_summary_takes_the_busiest_client_process() -> None:
    summary = echo_summary([echo_run(1.0), echo_run(2.0)])
    assert summary["client_cpu_max"]["median"] == 0.4


def test_window_rate_is_cpu_seconds_per_second_over_the_window() -> None:
    samples = [(t / 10, min(t, 20) / 20) for t in range(31)]  # 0.5 CPU for 2 s, then idle
    assert window_rate(samples, 0.5, 1.5) == pytest.approx(0.5)
    assert window_rate(samples, 0.0, 3.0) == pytest.approx(1 / 3)
    assert window_rate(samples, 2.0, 2.0) is None
    assert window_rate(samples, 2.0, 9.0) is None  # past the last sample
    sparse = [(0.0, 0.0), (3.0, 1.5)]
    assert window_rate(sparse, 1.0, 2.0) is None  # the sampler stalled: no figure
    assert window_rate(sparse, 1.0, 2.0, loaded=(0.0, 3.0)) == pytest.approx(0.5)  # steady
    assert window_rate(sparse, 1.0, 2.0, loaded=(0.5, 3.0)) is None


def test_per_connection_divides_growth_by_connections() -> None:
    assert per_connection({"rss": 1000, "cgroup": None}, {"rss": 5000, "cgroup": 7}, 4) == \
        {"rss": 1000.0, "cgroup": None}
    assert per_connection({"rss": 1000}, {"rss": 5000}, 0) == {"rss": None}


@pytest.mark.parametrize(("size", "text"), [(1024, "1 KiB"), (100 << 10, "100 KiB"),
                                            (1 << 20, "1 MiB"), (1 << 30, "1 GiB"),
                                            (1500, "1500 B")])
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_progress_line_estimates_what_is_left() -> None:
    assert render(0, 10, "echo epoll", 0.0) == f"[{'-' * 28}] 0/10 echo epoll  0s"
    line = render(5, 10, "idle", 30.0, load=1.25)
    assert line.startswith(f"[{'#' * 14}{'-' * 14}] 5/10 idle  30s, ~30s left")
    assert line.endswith("(load 1.2)") or line.endswith("(load 1.3)")
    assert format_seconds(125) == "2m05s"


def test_compare_marks_the_ratios_that_moved_more_than_ten_percent() -> None:
    from socklab.host.bench import compare

    a = results()
    b = results(echo=[echo_cell("epoll", [9000, 9500, 9000]), echo_cell("asyncio", [8000] * 3),
                      echo_cell("uvloop", [15000] * 3)])
    b["targets"] = report.targets(b)  # a run writes its targets; an older one has none
    lines = compare.compare(a, b)
    moved = [line for line in lines if "moved more than" in line and "<-" in line]
    by_name = {line.split("  ")[0]: line for line in lines}
    assert "epoll ÷ uvloop" in by_name and "<-" in by_name["epoll ÷ uvloop"]  # 0.50 -> 0.60
    assert "<-" not in by_name["epoll ÷ asyncio"]  # 1.25 -> 1.19: within 10%
    assert "epoll requests/s" in by_name and "<-" not in by_name["epoll requests/s"]
    assert lines[-1].startswith(f"{len(moved)} ratio")
    assert compare.figures(a)["epoll 1 KiB c=10 requests/s ÷ uvloop"] == pytest.approx(0.5)
