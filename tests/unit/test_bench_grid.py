"""The benchmark's parameter grids: which cells a full and a quick run measure."""

from __future__ import annotations

import pytest

from socklab.host.bench.grid import (
    FULL,
    KIB,
    QUICK,
    count_steps,
    echo_cells,
    idle_points,
    processes_for,
)
from socklab.host.bench.targets import ECHO_TARGETS, REFERENCES
from socklab.host.bench.targets import VARIANTS_BENCHED as VARIANTS
from socklab.loadgen.load import split
from socklab.registry import HELLO


def test_full_grid_is_the_issues() -> None:
    cells = {(c.target, c.size, c.concurrency) for c in echo_cells(FULL)}
    for name in ("select", "epoll", "twisted", "asyncio", "uvloop", "threaded"):
        for size in (1 * KIB, 10 * KIB, 100 * KIB):
            for concurrency in (1, 10, 100):
                assert (name, size, concurrency) in cells
    assert {(s, c) for t, s, c in cells if t == "tcp"} == {(1 * KIB, 1), (10 * KIB, 1),
                                                            (100 * KIB, 1)}
    assert len(cells) == 6 * 9 + 3


def test_blocking_tcp_is_measured_at_concurrency_one_only() -> None:
    for params in (FULL, QUICK):
        assert {c.concurrency for c in echo_cells(params) if c.target == "tcp"} == {1}


def test_quick_grid_measures_every_echo_server_once() -> None:
    cells = echo_cells(QUICK)
    assert sorted(c.target for c in cells) == sorted(ECHO_TARGETS)
    assert {c.concurrency for c in cells if c.target != "tcp"} == {10}
    assert QUICK.runs >= 2  # a spread, even in the smoke check


def test_idle_points_stop_select_at_its_wall_and_take_epoll_to_ten_thousand() -> None:
    points = idle_points(FULL)
    assert max(n for t, n in points if t == "select") < 1024  # FD_SETSIZE
    assert max(n for t, n in points if t == "epoll") == 10_000


def test_memory_is_measured_below_the_servers_process_limit() -> None:
    assert FULL.memory_connections < 512  # pids_limit: one thread per client (threaded)


def test_cells_are_grouped_by_server() -> None:
    order = [c.target for c in echo_cells(FULL)]
    assert order == sorted(order, key=list(FULL.echo_targets).index)


@pytest.mark.parametrize(("total", "parts", "expected"),
                         [(100, 2, [50, 50]), (10, 3, [4, 3, 3]), (1, 1, [1]), (3, 2, [2, 1])])
def test_split_spreads_connections_evenly(total: int, parts: int, expected: list[int]) -> None:
    assert split(total, parts) == expected
    assert sum(split(total, parts)) == total


def test_processes_never_outnumber_connections() -> None:
    assert processes_for(1, FULL) == 1
    assert processes_for(10, FULL) == FULL.max_processes
    assert processes_for(100, FULL) == FULL.max_processes


def test_step_count_covers_every_workload() -> None:
    steps = count_steps(FULL)
    assert steps == (len(echo_cells(FULL)) * FULL.runs + len(idle_points(FULL))
                     + FULL.paired_runs * 2  # epoll with asyncio, and with uvloop
                     + len(FULL.ftp_sizes) + 2 + len(FULL.exec_modes) + len(FULL.udp_rates)
                     + len(FULL.memory_targets))


def test_references_speak_the_readiness_servers_echo() -> None:
    for reference in REFERENCES.values():
        assert reference.greeting == VARIANTS["epoll"].greeting == HELLO
        assert reference.upper
        assert reference.command() is not None
    assert VARIANTS["twisted"].greeting == b"" and not VARIANTS["twisted"].upper
    assert all(v.command() is None for v in VARIANTS.values())
