"""One grading: start the submission in a lab of its own, run every check, score, write.

The order of a run: stage the submission, start the lab (an internal network,
the client host, the submission on its variant's host), wait until it
listens (``START_WINDOW``), then each check of ``socklab.grading.spec`` in
turn on the client host (``socklab probe grade``), with the host watching
the server meanwhile: a check during which the process died, or after which
another process listens in its place, fails whatever the client saw, and
the next check gets a fresh server. Last the performance check, against the
lab's own server of the variant started beside it. The results are written
in every case: a time limit, a crash, Ctrl-C.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socklab import __version__
from socklab.grading import spec, spec_ftp
from socklab.grading.run import reproduce
from socklab.host.grade import procfs
from socklab.host.grade.lab import REFERENCE_ALIAS, GradeLab
from socklab.host.grade.submission import Submission
from socklab.host.grade.turns import Turns
from socklab.registry import Variant

# How long a submission may take to listen on its ports, polled every 50 ms.
START_WINDOW = 10.0
# The whole grading of one submission, checks and performance, at most.
TIME_LIMIT = 900.0
# Lines of the server's output shown in the report (server.log keeps up to 2 MiB).
TAIL_LINES = 40

# Resource verdicts (the checks' titles say the same numbers).
FD_SLACK = 10  # descriptors a server may keep over its baseline after churn
THREAD_SLACK = 2
MEMORY_LIMIT = 128 << 20
# Settling: a server may close its last sockets (or end its threads) a moment later.
SETTLE = 3.0

# What a check's result says when its client process gave no verdict.
CHECK_BROKE = "the check could not run on the client host"

# Echo variants: both servers in one run of the load generator, taking turns of TURN
# seconds for PAIR_SECONDS each (after the warm-up). Measured one after the other, two
# runs of the same server differ by up to a third on a shared machine.
TURN = 0.2
PAIR_SECONDS = 2.4
# The other variants (one client, or an upload): rounds taking turns, the order swapped.
PERFORMANCE_ROUNDS = 3
PERFORMANCE_SECONDS = 2.0  # one measured window
# An echo run opens with a warm-up and has no tail (the benchmark's, which samples the
# server's CPU on both sides of the window's edges).
ECHO_WARMUP = 0.3


@dataclass
class Outcome:
    """One check's result as grade.json lists it."""

    check: spec.Check
    status: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    points: float = 0.0
    reproduce: str = ""

    def as_dict(self) -> dict[str, Any]:
        c = self.check
        return {"id": c.id, "category": c.category, "title": c.title,
                "points": round(self.points, 2), "max_points": c.points,
                "status": self.status, "scored": c.category != "performance",
                "message": self.message, "hint": c.hint, "page": spec.PAGES[c.page],
                "reproduce": self.reproduce, "seconds": round(self.seconds, 2),
                "details": self.details}


# --- Pure verdicts on what the host saw ------------------------------------------------


def judge_samples(check_id: str, before: procfs.Sample | None, peak: dict[str, int],
                  after: procfs.Sample | None) -> str | None:
    """What is wrong with the process by the samples around a check (None: nothing)."""
    if check_id == "concurrency.one-thread" and peak.get("threads", 0) > 1:
        return (f"the server ran {peak['threads']} threads while 50 clients were connected; "
                "expected one thread (an event loop)")
    if before is None or after is None:
        return None
    if check_id == "resources.fd-leak" and after.fds - before.fds > FD_SLACK:
        return (f"the server held {before.fds} descriptors before 300 connections opened and "
                f"closed, and {after.fds} {SETTLE:.0f} s after the last one closed: "
                f"{after.fds - before.fds} left open (at most {FD_SLACK} expected)")
    if check_id == "resources.threads" and after.threads - before.threads > THREAD_SLACK:
        return (f"the server ran {before.threads} threads before the connections and "
                f"{after.threads} after they all closed: threads that outlive their client")
    if check_id == "resources.memory" and peak.get("rss", 0) > MEMORY_LIMIT:
        return (f"the server's memory (RSS) reached {peak['rss'] >> 20} MiB while 6 clients "
                f"sent 24 MiB each without reading; expected under {MEMORY_LIMIT >> 20} MiB")
    return None


def settled(check_id: str, before: procfs.Sample, now: procfs.Sample) -> bool:
    """Whether the counts are back where a check expects them (no need to wait longer)."""
    if check_id == "resources.fd-leak":
        return now.fds - before.fds <= FD_SLACK
    if check_id == "resources.threads":
        return now.threads - before.threads <= THREAD_SLACK
    return True


def death_message(state: dict[str, Any], tail: str) -> str:
    """The server process ended during a check: how, and its last words."""
    how = ("was killed for using more than its memory limit (OOM)" if state.get("OOMKilled")
           else f"exited with code {state.get('ExitCode')}")
    last = [line for line in tail.splitlines() if line.strip()][-3:]
    said = (" Its last output: " + " | ".join(line.strip() for line in last)) if last else ""
    return f"the server {how} during this check.{said}"


# What the host prepares before some checks, by the name a Check's ``setup`` gives.
# Each returns None, or why it could not.
LINKS = (("escape-link", "/etc/passwd"), ("dir-link", "/srv"))


def plant_links(lab: GradeLab) -> str | None:
    """Symbolic links in ftp's upload directory, made as the server's user: a learner's
    server must neither follow them on get nor write through them on put."""
    script = " && ".join(f"ln -sfn {target} /srv/uploads/{name}" for name, target in LINKS)
    result = lab.server_run(["sh", "-c", script], timeout=20)
    return None if result.exit_code == 0 else (result.stderr or result.stdout).strip()


SETUPS: dict[str, Callable[[GradeLab], str | None]] = {"plant-links": plant_links}


def band_points(check: spec.Check, ratio: float) -> float:
    return check.points * spec.performance_share(ratio)


def performance_ratio(mine: list[float], theirs: list[float]) -> float:
    """The median of each round's ratio (submission ÷ reference, run side by side)."""
    ratios = [m / t if t else 0.0 for m, t in zip(mine, theirs, strict=True)]
    return statistics.median(ratios) if ratios else 0.0


def reference_failed(error: str) -> bool:
    """Whether the load generator's error names the lab's own server, not the learner's
    (``socklab.loadgen.load echo: reference port 9000: …``)."""
    return error.partition(": ")[2].startswith(f"{REFERENCE_ALIAS} port ")


def score(outcomes: list[Outcome]) -> tuple[float, int]:
    return (round(sum(o.points for o in outcomes), 2), sum(o.check.points for o in outcomes))


# --- The run ---------------------------------------------------------------------------


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Grading:
    """The grading of one submission of one variant; ``run`` returns the grade dict."""

    def __init__(self, lab: GradeLab, variant: Variant, submission: Submission, *,
                 time_limit: float = TIME_LIMIT, progress: Progress = _stderr,
                 performance: bool = True, turns: Turns | None = None) -> None:
        """``turns``: a class run's turns on the machine (its checks alongside the other
        gradings' checks, its performance check alone); none for a grading alone."""
        self.lab, self.variant, self.submission = lab, variant, submission
        self.turns = turns or Turns(None)
        self.checks = spec.checks(variant.name)
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.progress = progress
        self.performance_on = performance
        self.outcomes: list[Outcome] = []
        self.ready_seconds: float | None = None
        self.listener_pid: int | None = None
        self.not_ready = ""
        self.perf: dict[str, Any] | None = None
        self.exit_code: int | None = None
        self.fresh_for_performance = False

    # The server's life ---------------------------------------------------------------

    def start_server(self) -> bool:
        self.lab.start_server()
        ready, why, seconds = self.lab.wait_ready(START_WINDOW)
        if self.ready_seconds is None:
            self.ready_seconds = round(seconds, 2)
        self.not_ready = "" if ready else why
        sample = self.lab.sample() if ready else None
        self.listener_pid = sample.pid if sample else None
        return ready

    def ensure_server(self) -> bool:
        """A running server for the next check: a fresh one if the last check ended it.

        A server that never got ready is not started again: it would not fix
        itself, and each try costs the whole start window.
        """
        if self.not_ready:
            return False
        if self.lab.alive():
            return True
        self.progress("  the server is not running: starting it again for the next check")
        return self.start_server()

    # One check -----------------------------------------------------------------------

    def run_check(self, check: spec.Check) -> Outcome:
        command = reproduce(self.variant.name, check.id)
        outcome = Outcome(check, "failed", reproduce=command)
        if check.setup:
            problem = SETUPS[check.setup](self.lab)
            if problem:
                outcome.status, outcome.message = "skipped", f"the grader's setup: {problem}"
                return outcome
        before = self.lab.sample() if check.sample else None
        peak: dict[str, int] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(peak, stop), daemon=True)
        watcher.start()
        started = time.monotonic()
        budget = int(min(check.budget, max(1.0, self.deadline - time.monotonic())))
        result = self.lab.client_run(
            ["socklab", "probe", "grade", "--variant", self.variant.name, "--check", check.id],
            timeout=budget)
        stop.set()
        watcher.join()
        outcome.seconds = time.monotonic() - started
        if result.exit_code in (124, 137):
            outcome.status = "timeout"
            outcome.message = (f"no verdict within {budget} s: the check's clients were still "
                               "waiting for the server when its time ran out")
        else:
            try:
                found = json.loads(result.stdout.strip().splitlines()[-1])
                outcome.status, outcome.message = found["status"], found["message"]
                outcome.details = found.get("details", {})
            except (IndexError, ValueError, KeyError):
                outcome.message = (f"{CHECK_BROKE} (exit {result.exit_code}): "
                                   f"{result.stderr.strip()[-500:]}")
        self._judge_server(check, outcome, before, peak)
        if outcome.status == "passed":
            outcome.points = float(check.points)
        return outcome

    def _watch(self, peak: dict[str, int], stop: threading.Event) -> None:
        """Sample the server while a check runs; end the check early if the server died.

        A check against a dead server would only wait out its budget (the
        fuzzer's 90 s): its verdict is already known.
        """
        gone = 0
        while not stop.is_set():
            sample = self.lab.sample()
            if sample:
                gone = 0
                peak["threads"] = max(peak.get("threads", 0), sample.threads)
                peak["rss"] = max(peak.get("rss", 0), sample.rss)
                peak["fds"] = max(peak.get("fds", 0), sample.fds)
            elif not self.lab.alive():
                gone += 1
                if gone == 3:
                    self.lab.client_run(["pkill", "-f", "socklab probe grade"], timeout=10)
            stop.wait(0.1)

    def _judge_server(self, check: spec.Check, outcome: Outcome,
                      before: procfs.Sample | None, peak: dict[str, int]) -> None:
        state = self.lab.server_state()
        if state["Status"] != "running":
            # A client ended by the host when the server died saw nothing worth telling.
            saw = "" if outcome.message.startswith(CHECK_BROKE) else outcome.message
            outcome.status = "failed"
            outcome.message = death_message(state, self.lab.logs()) + (
                f" || What the check's client saw: {saw}" if saw else "")
            return
        after = self.lab.sample()
        if after and self.listener_pid and after.pid != self.listener_pid:
            outcome.status = "failed"
            outcome.message = (f"the server process changed during this check (pid "
                               f"{self.listener_pid} -> {after.pid}): it crashed and something "
                               "started it again; a restart hides a crash, it does not fix it")
            self.listener_pid = after.pid
            return
        if check.sample and before and after:
            give_up = time.monotonic() + SETTLE
            while not settled(check.id, before, after) and time.monotonic() < give_up:
                time.sleep(0.2)
                after = self.lab.sample() or after
        if peak:
            outcome.details["server"] = dict(peak)
        if before and after:
            outcome.details["before"] = {"threads": before.threads, "fds": before.fds}
            outcome.details["after"] = {"threads": after.threads, "fds": after.fds}
        problem = judge_samples(check.id, before, peak, after)
        if problem and outcome.status == "passed":
            outcome.status, outcome.message = "failed", problem

    # Performance ---------------------------------------------------------------------

    @property
    def clients(self) -> int:
        """Clients of the echo load: one where the spec serves one at a time (tcp)."""
        return 10 if self.variant.concurrent else 1

    def load_command(self, host: str, seconds: float = PERFORMANCE_SECONDS) -> list[str]:
        v = self.variant
        if v.name == "exec":
            return ["python3", "-m", "socklab.loadgen.load", "exec", "--host", host,
                    "--mode", "framed", "--duration", str(PERFORMANCE_SECONDS)]
        if v.name == "ftp":
            return ["python3", "-m", "socklab.loadgen.load", "ftp", "--host", host, "--port",
                    str(v.main_port), "--size", str(spec_ftp.THROUGHPUT_UPLOAD)]
        if v.transport == "udp":
            return ["python3", "-m", "socklab.loadgen.load", "udp", "--host", host, "--port",
                    str(v.main_port), "--duration", str(PERFORMANCE_SECONDS)]
        command = ["python3", "-m", "socklab.loadgen.load", "echo", "--host", host, "--port",
                   str(v.main_port), "--size", "1024", "--concurrency", str(self.clients),
                   "--duration", str(seconds), "--warmup", str(ECHO_WARMUP),
                   "--tail", "0", "--greeting", str(len(v.greeting))]
        return command + (["--upper"] if v.reply == "upper" else [])

    def measure(self, host: str) -> tuple[float, str]:
        result = self.lab.client_run(self.load_command(host), timeout=60)
        if result.exit_code != 0:
            return 0.0, (result.stderr.strip() or result.stdout.strip())[-300:]
        run = json.loads(result.stdout.strip().splitlines()[-1])["runs"][0]
        figure = {"exec": "commands_s", "ftp": "mib_s"}.get(
            self.variant.name, "answered_s" if self.variant.transport == "udp" else "rps")
        if self.variant.name == "ftp" and not run.get("verified"):
            return 0.0, f"the upload was answered {run.get('status')}, sha256 " \
                        f"{run.get('server_sha256')}: not the file sent"
        return float(run[figure]), ""

    def performance_unit(self) -> tuple[str, str]:
        """(unit, the load that measured it) of this variant's performance figure."""
        if self.variant.name == "exec":
            return "commands/s", "echo ok on the framed port, one client"
        if self.variant.name == "ftp":
            return "MiB/s", f"one {spec_ftp.THROUGHPUT_UPLOAD >> 20} MiB upload, sha256 checked"
        if self.variant.transport == "udp":
            return "datagrams/s", "64-byte datagrams, one client"
        clients = "one client" if self.clients == 1 else f"{self.clients} clients"
        return "requests/s", f"1 KiB requests, {clients}"

    @property
    def paired(self) -> bool:
        """Both servers measured in one run, in turns (the echo variants)."""
        return self.variant.name not in ("exec", "ftp") and self.variant.transport == "tcp"

    def pair_command(self) -> list[str]:
        return [*self.load_command(self.variant.host, PAIR_SECONDS), "--versus",
                REFERENCE_ALIAS, "--turn", str(TURN)]

    def measure_pair(self) -> tuple[dict[str, Any] | None, str]:
        """One run of both servers taking turns: its result, or what went wrong."""
        result = self.lab.client_run(self.pair_command(), timeout=60)
        if result.exit_code != 0:
            return None, (result.stderr.strip() or result.stdout.strip())[-300:]
        return json.loads(result.stdout.strip().splitlines()[-1])["runs"][0], ""

    def run_performance(self, check: spec.Check) -> Outcome:
        if self.paired:
            return self.run_paired(check)
        unit, load = self.performance_unit()
        outcome = Outcome(check, "passed",
                          reproduce=" ".join(self.load_command(self.variant.host)))
        started = time.monotonic()
        mine, theirs, errors = [], [], []
        try:
            for round_ in range(PERFORMANCE_ROUNDS):
                # Taking turns, the order swapped every round: a neighbour's load or a
                # warming cache weighs on both sides alike.
                order = ("mine", "theirs") if round_ % 2 == 0 else ("theirs", "mine")
                for side in order:
                    if side == "mine":
                        rate, error = self.measure(self.variant.host)
                        mine.append(rate)
                        if error:
                            errors.append(error)
                    else:
                        theirs.append(self.measure(REFERENCE_ALIAS)[0])
        finally:
            self.lab.stop_reference()
        outcome.seconds = time.monotonic() - started
        own, ref = statistics.median(mine), statistics.median(theirs)
        ratio = performance_ratio(mine, theirs)
        outcome.points = band_points(check, ratio)
        self.perf = {"ratio": round(ratio, 3), "submission": round(own, 1),
                     "reference": round(ref, 1), "unit": unit, "load": load,
                     "method": "rounds", "rounds": PERFORMANCE_ROUNDS}
        outcome.details = {"submission_runs": mine, "reference_runs": theirs}
        share = spec.performance_share(ratio)
        outcome.message = (f"{own:,.0f} {unit} ({load}) against the lab's own server's "
                           f"{ref:,.0f}: ratio {ratio:.2f} (the median of "
                           f"{PERFORMANCE_ROUNDS} rounds' ratios, taking turns), "
                           f"{share:.0%} of the points")
        if errors:
            outcome.status = "failed"
            outcome.message += f". The load generator met errors: {errors[0]}"
        return outcome

    def run_paired(self, check: spec.Check) -> Outcome:
        unit, load = self.performance_unit()
        outcome = Outcome(check, "passed", reproduce=" ".join(self.pair_command()))
        started = time.monotonic()
        try:
            run, error = self.measure_pair()
        finally:
            self.lab.stop_reference()
        outcome.seconds = time.monotonic() - started
        if run is None and reference_failed(error):
            outcome.status = "skipped"
            outcome.message = f"the lab's own server failed under the load: {error}"
            return outcome
        if run is None:
            outcome.status, outcome.points = "failed", 0.0
            outcome.message = f"the load generator met an error: {error}"
            return outcome
        mine, theirs = run["sides"]
        ratio = run["ratio"] or 0.0
        outcome.points = band_points(check, ratio)
        self.perf = {"ratio": round(ratio, 3), "submission": round(mine["rps"], 1),
                     "reference": round(theirs["rps"], 1), "unit": unit, "load": load,
                     "method": "turns", "turns": run["turns"], "turn_seconds": TURN}
        blocks = [round(b, 3) for b in run["block_ratios"] if b is not None]
        outcome.details = {"submission": mine, "reference": theirs, "block_ratios": blocks,
                           "client_cpu": run["client_cpu"]}
        outcome.message = (
            f"{mine['rps']:,.0f} {unit} ({load}) against the lab's own server's "
            f"{theirs['rps']:,.0f}: ratio {ratio:.2f} (one run, the two servers taking "
            f"turns of {TURN:g} s, {PAIR_SECONDS:g} s each; {len(blocks)} blocks' ratios "
            f"{min(blocks, default=0):.2f}–{max(blocks, default=0):.2f}), "
            f"{spec.performance_share(ratio):.0%} of the points")
        return outcome

    # The whole -----------------------------------------------------------------------

    def run(self) -> None:
        total = len(self.checks)
        self.progress(f"socklab grade: starting {self.submission.given} as "
                      f"{self.variant.host} ({', '.join(map(str, self.variant.ports.values()))}"
                      f"/{self.variant.transport})")
        with self.turns.check():  # starting containers is work for the machine too
            self.lab.start_client()
            ready = self.start_server()
        self.progress(f"  listening after {self.ready_seconds:.2f} s" if ready
                      else f"  not ready: {self.not_ready}")
        for index, check in enumerate(self.checks, 1):
            prefix = f"[{index:2}/{total}] {check.id:28}"
            if time.monotonic() >= self.deadline:
                outcome = Outcome(check, "timeout", reproduce=reproduce(
                    self.variant.name, check.id), message=(
                    f"the grading's time limit ({self.time_limit:.0f} s) ended before "
                    "this check ran"))
            elif check.category == "performance":
                if not self.performance_on:
                    outcome = Outcome(check, "skipped", message="performance not measured "
                                      "(--no-performance)")
                elif self.not_ready or not self.lab.alive():
                    outcome = Outcome(check, "skipped", message="the server was not running")
                else:
                    outcome = self.measured(check, prefix)
            else:
                with self.turns.check():
                    outcome = self.checked(check)
            self.outcomes.append(outcome)
            self.progress(f"{prefix} {outcome.status:8} {outcome.points:5.1f}/{check.points:<3}"
                          f" ({outcome.seconds:.1f} s)")

    def checked(self, check: spec.Check) -> Outcome:
        """``check`` run on a running server (a fresh one if the last check ended it)."""
        if not self.ensure_server():
            return Outcome(check, "failed", reproduce=reproduce(self.variant.name, check.id),
                           message=self.not_ready)
        return self.run_check(check)

    def measured(self, check: spec.Check, prefix: str) -> Outcome:
        """The performance check: both servers started among the other gradings' checks,
        then measured alone (the starts need no quiet machine, the measurement does)."""
        self.progress(f"{prefix} measuring against the reference (" + (
            f"one run, turns of {TURN:g} s" if self.paired else
            f"{PERFORMANCE_ROUNDS} runs each") + ")")
        with self.turns.check():
            # A fresh server, as fresh as the reference beside it: after the checks a
            # server is larger (measured: exec's 25 -> 55 MiB, 15-25% slower).
            self.fresh_for_performance = self.start_server()
            if not self.fresh_for_performance:
                return Outcome(check, "skipped", message=self.not_ready)
            self.lab.start_reference()
            ready, why, _ = self.lab.wait_ready(START_WINDOW, self.lab.reference)
        if not ready:
            self.lab.stop_reference()
            return Outcome(check, "skipped", message=f"the reference did not start: {why}",
                           reproduce=" ".join(self.load_command(self.variant.host)))
        with self.turns.measurement(
                "socklab grade: waiting until no other grading of the class runs a check, to "
                "measure performance alone"):
            return self.run_performance(check)

    @property
    def restarts(self) -> int:
        """Starts after a check ended the server (the fresh one for performance not counted)."""
        return max(0, self.lab.starts - 1 - int(self.fresh_for_performance))

    def grade(self, started: datetime, seconds: float, image: str, kept: bool) -> dict[str, Any]:
        earned, max_score = score(self.outcomes)
        # Checks a run never reached (Ctrl-C) count as not passed.
        done = {o.check.id for o in self.outcomes}
        for check in self.checks:
            if check.id not in done:
                self.outcomes.append(Outcome(check, "skipped", message="the run was stopped "
                                             "before this check"))
        earned, max_score = score(self.outcomes)
        scored = [o for o in self.outcomes if o.check.category != "performance"]
        state = self.lab.server_state() if self.lab.server is not None else {}
        tail = self.lab.logs() if self.lab.server is not None else ""
        return {
            "schema": 1, "variant": self.variant.name,
            "submission": self.submission.describe(),
            "score": earned, "max_score": max_score,
            "passed": all(o.status == "passed" for o in scored),
            "gradable": True,
            "checks": [o.as_dict() for o in self.outcomes],
            "server": {"log": "server.log", "tail": "\n".join(tail.splitlines()[-TAIL_LINES:]),
                       "exit_code": None if state.get("Status") == "running"
                       else state.get("ExitCode"), "restarts": self.restarts,
                       "ready_problem": self.not_ready or None},
            "performance": self.perf,
            "timings": {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "seconds": round(seconds, 1), "ready_seconds": self.ready_seconds,
                        "start_window_seconds": START_WINDOW},
            "versions": {"socklab": __version__, "image": image},
            "lab": {"kept": kept, "run_id": self.lab.run_id,
                    "enter": self.lab.enter_command() if kept else None,
                    "remove": f"make grade-clean RUN={self.lab.run_id}"
                    if kept else None},
        }


def default_out(submission: Submission, now: datetime | None = None) -> Path:
    now = now or datetime.now(UTC)
    return Path("results") / f"grade-{submission.name}-{now:%Y%m%d-%H%M%S}"
