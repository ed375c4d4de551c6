"""The benchmark's parameters and the cells they make: the full run and ``QUICK=1``. No I/O.

A *cell* is one server under one load (message size and concurrency for the
echo servers); every cell is run ``runs`` times and reported as the median
and min-max of those runs. The full grid is docs/bench.md's; the quick grid is
a few cells with small N, a smoke check that finishes in under two minutes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from socklab.host.bench.targets import ECHO_TARGETS

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Params:
    """Everything a bench run varies; recorded whole in results.json."""

    quick: bool
    runs: int  # repeats of every cell
    sizes: tuple[int, ...]  # echo message sizes (bytes)
    concurrencies: tuple[int, ...]  # echo connections at once
    duration: float  # seconds measured per echo run
    warmup: float  # seconds run but not measured before each echo run
    echo_targets: tuple[str, ...]
    max_processes: int  # load-generator processes per run (each drives 1/n of the connections)
    ftp_sizes: tuple[int, ...]
    ftp_runs: int
    iperf_seconds: float
    exec_modes: tuple[str, ...]
    exec_duration: float
    udp_rates: tuple[int, ...]  # offered datagrams/s; 0 = as fast as the client can
    udp_duration: float
    udp_size: int
    idle_counts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    idle_duration: float = 2.0
    idle_runs: int = 3  # the latency of one client is noisier than a crowd's: more runs
    memory_connections: int = 400  # idle connections opened to measure memory per connection
    memory_targets: tuple[str, ...] = ()
    # QUICK: the one concurrency non-blocking servers are measured at (None: all of them).
    quick_concurrency: int | None = None
    # The target ratios measured again with both servers in one run, taking turns of
    # ``paired_turn`` seconds (load.py echo --versus): this many runs per reference.
    paired_runs: int = 5
    paired_seconds: float = 2.4
    paired_turn: float = 0.2

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Params(
    quick=False, runs=3, sizes=(1 * KIB, 10 * KIB, 100 * KIB), concurrencies=(1, 10, 100),
    duration=2.0, warmup=0.5,
    echo_targets=("tcp", "select", "epoll", "twisted", "asyncio", "uvloop", "threaded"),
    max_processes=2,
    ftp_sizes=(1 * MIB, 100 * MIB, 1 * GIB), ftp_runs=3, iperf_seconds=4.0,
    exec_modes=("naive", "handshake", "framed"), exec_duration=2.0,
    udp_rates=(10_000, 30_000, 0), udp_duration=2.0, udp_size=64,
    # select() cannot watch descriptor 1024 or above: 1,000 idle clients is its wall.
    idle_counts={"select": (100, 500, 1000), "epoll": (100, 500, 1000, 10_000)},
    idle_duration=2.0, idle_runs=5,
    # Below the servers' 512-process limit, which bounds the threaded reference.
    memory_connections=400,
    memory_targets=("select", "epoll", "twisted", "asyncio", "uvloop", "threaded"),
)

QUICK = Params(
    # Every echo server once (tcp at 1, the others at 10), the idle curve's two ends
    # for epoll, one upload, every exec framing, one udp rate: a smoke check.
    quick=True, runs=2, sizes=(1 * KIB,), concurrencies=(1, 10), duration=0.3, warmup=0.1,
    echo_targets=("tcp", "select", "epoll", "twisted", "asyncio", "uvloop", "threaded"),
    max_processes=2,
    ftp_sizes=(1 * MIB,), ftp_runs=2, iperf_seconds=1.0,
    exec_modes=("naive", "handshake", "framed"), exec_duration=0.3,
    udp_rates=(10_000,), udp_duration=0.3, udp_size=64,
    idle_counts={"epoll": (100, 1000)}, idle_duration=0.3, idle_runs=2,
    memory_connections=100, memory_targets=(),
    quick_concurrency=10, paired_runs=1, paired_seconds=0.8,
)

# The server the targets are about, the references it is measured against in turns,
# and the cell (message size, connections) they name.
PAIRED_TARGET = "epoll"
PAIRED_REFERENCES = ("asyncio", "uvloop")
PAIRED_SIZE, PAIRED_CONCURRENCY = 1 * KIB, 10


@dataclass(frozen=True)
class EchoCell:
    target: str
    size: int
    concurrency: int

    @property
    def key(self) -> str:
        return f"{self.target}/{self.size}/{self.concurrency}"


def echo_cells(params: Params) -> list[EchoCell]:
    """Every echo cell, grouped by server (one container each), blocking ones at concurrency 1."""
    cells = []
    for name in params.echo_targets:
        target = ECHO_TARGETS[name]
        for size in params.sizes:
            for concurrency in params.concurrencies:
                if target.blocking and concurrency > 1:
                    continue  # a blocking server serves one client at a time by design
                if params.quick_concurrency and not target.blocking and (
                        concurrency != params.quick_concurrency):
                    continue
                cells.append(EchoCell(name, size, concurrency))
    return cells


def processes_for(concurrency: int, params: Params) -> int:
    """Load-generator processes for ``concurrency`` connections: at most one per connection."""
    return max(1, min(concurrency, params.max_processes))



def idle_points(params: Params) -> list[tuple[str, int]]:
    return [(target, count) for target, counts in params.idle_counts.items() for count in counts]


def count_steps(params: Params) -> int:
    """How many measured steps a run has: the progress bar's total."""
    return (len(echo_cells(params)) * params.runs + len(idle_points(params))
            + params.paired_runs * len(PAIRED_REFERENCES)
            + len(params.ftp_sizes) + 2  # iperf3 each way
            + len(params.exec_modes) + len(params.udp_rates) + len(params.memory_targets))
