"""The run: cases in batches from a few connections, a health check after each, a tally.

The tally counts the connections the server closed or reset before the
fuzzer ended them, the wrong answers seen while fuzzing and the failed health
checks with the index of the last case before them. A fuzzer-side timeout is
counted as such, never as a server failure.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from socklab.probes.fuzz.cases import Case, make_case
from socklab.probes.fuzz.judging import check_health, judge
from socklab.probes.fuzz.play import Outcome
from socklab.probes.fuzz.targets import Target

# Wrong answers listed in full in the report; all of them are counted.
SERVER_ERRORS_LISTED = 20


@dataclass
class Tally:
    kinds: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # by kind
    timeouts: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    datagrams: int = 0
    answered: int = 0
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    health_checks: int = 0

    def add(self, case: Case, outcome: Outcome, target: Target) -> None:
        self.kinds[case.kind] += 1
        self.endings[case.ending.value] += 1
        if outcome.connect_error:
            self.connect_errors[outcome.connect_error] += 1
            return
        self.bytes_sent += len(case.sent)
        self.datagrams += outcome.datagrams
        self.answered += outcome.answered
        self.timeouts += outcome.timed_out
        if outcome.dropped:
            self.dropped[case.kind] += 1
        wrong = judge(target.family, case, outcome)
        if wrong:
            self.server_errors.append({**case.describe(), "error": wrong})

    def health(self, after_case: int, batch: int, error: str | None) -> None:
        self.health_checks += 1
        if error:
            self.failures.append({"after_case": after_case, "batch": batch, "error": error})

    def report(self) -> dict[str, Any]:
        return {"kinds": dict(sorted(self.kinds.items())),
                "endings": dict(sorted(self.endings.items())), "bytes_sent": self.bytes_sent,
                "dropped_by_server": sum(self.dropped.values()),
                "dropped_by_kind": dict(sorted(self.dropped.items())),
                "fuzzer_timeouts": self.timeouts, "connect_errors": dict(self.connect_errors),
                "server_error_count": len(self.server_errors),
                "server_errors": self.server_errors[:SERVER_ERRORS_LISTED],
                "health_checks": self.health_checks, "failures": self.failures}


@dataclass(frozen=True)
class Run:
    """One fuzzing run: which cases of which seed, against which server, how."""

    target: Target
    host: str
    port: int
    seed: int
    indices: list[int]
    batch: int
    concurrency: int
    read_timeout: float

    @property
    def batches(self) -> list[list[int]]:
        return [self.indices[i : i + self.batch]
                for i in range(0, len(self.indices), self.batch)]

    def health_check(self, token: int) -> str | None:
        return check_health(self.target.family, self.host, self.port, token)

    def play(self, case: Case) -> Outcome:
        return self.target.family.play(case, self.host, self.port, self.read_timeout)


def fuzz(run: Run) -> Tally:
    """Check the server first (a server broken before any case is not the fuzzer's find),
    then play each batch and check the server again after it."""
    baseline = run.health_check(token=0)
    if baseline:
        raise OSError(f"{run.target.name} at {run.host}:{run.port} fails before any "
                      f"fuzzing: {baseline}")
    tally = Tally()
    with ThreadPoolExecutor(run.concurrency) as pool:
        for number, batch in enumerate(run.batches, 1):
            cases = [make_case(run.target, run.seed, index) for index in batch]
            for case, outcome in zip(cases, pool.map(run.play, cases), strict=True):
                tally.add(case, outcome, run.target)
            tally.health(batch[-1], number, run.health_check(token=number))
    return tally
