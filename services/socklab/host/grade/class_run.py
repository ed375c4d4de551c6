"""``make grade-class``: every learner's submission graded, JOBS at once, and the class view.

The parts that decide (who is a learner, who is graded on this run, each
learner's result, class.csv, the page) are ``classroom`` and ``class_page``;
this module runs them. One run:

1. Check everything that can be checked before Docker: the variant, the
   SUBMISSIONS directory and its names (every bad one listed), the CHECKS
   file, OUT's state file; then the engine and the image. Any of them wrong:
   exit 2, nothing graded.
2. Plan: a learner is graded when new, changed (by content hash), unfinished
   or without a result, or on FORCE; the others keep their last result.
3. Grade: each learner's submission with ``make grade``'s own command
   (``python3 -m socklab.host.grade run``) in a process of its own, its own
   lab, ``JOBS`` at once, into ``OUT/<learner>/`` (its progress in
   ``OUT/<learner>/grading.log``). Every grading labs carry this run's
   label, so that whatever one leaves is swept. The performance checks take
   turns (a lock file in OUT): a neighbour measuring meanwhile would weigh
   on a learner's ratio. The state file records each start and end, so that
   a run stopped midway (Ctrl-C, a crash, a reboot) resumes where it was.
   With ``--swarm URL`` the gradings go to the swarm's workers instead
   (socklab.host.grade.engines): each one to the least busy worker's
   engine, one per core there, its performance check taking turns with the
   others of that worker (the lock is per worker: workers do not share CPUs).
4. Write ``OUT/class.csv`` and ``OUT/index.html``, print a table; exit 0
   when every learner passed, 1 when one did not (failed, or not graded),
   2 when nothing could be graded.

A progress line after each grading: done/total, how many did not pass, and
an estimate of the time left (the mean time per grading so far, over the
jobs). Ctrl-C (or SIGTERM) stops cleanly: no new grading starts, the
running ones are told to stop (each writes what it graded and removes its
lab), whatever remains of the run's labs is swept, and the class view is
written with the learners graded so far; a rerun grades the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from socklab.grading import spec
from socklab.host.grade import class_page, classroom, grader
from socklab.host.grade import weights as weighting
from socklab.host.grade.engines import EngineError, Worker, connect, session_home, swarm_workers

NO_GRADING = classroom.NO_GRADING
# The label every grading lab of one class run carries (value: the class run's id).
CLASS_LABEL = "socklab.grade.class"
# Beside the learners' directories in OUT (a learner id never starts with a dot).
PERFORMANCE_LOCK = ".performance.lock"
GRADING_LOG = "grading.log"
# A grading whose process outlives its own time limit by this much is stopped.
OVERRUN = 300.0
# How long the gradings get to write their results and remove their labs once stopped.
STOP_GRACE = 90.0
# Docker's default address pools give about 30 bridge networks; a grading lab takes one.
NETWORK_POOL = 30
NETWORK_MARGIN = 2
# Gradings at once on this machine: most of a grading waits (on a check's timer, on the
# server); past one per core its checks' timers lose their margins.
JOBS_PER_CORE = 1


def default_jobs(cpus: int | None, networks_in_use: int) -> int:
    """Gradings at once: one per core, within the networks Docker has left (at least 1)."""
    free = NETWORK_POOL - NETWORK_MARGIN - networks_in_use
    return max(1, min(max(1, (cpus or 1) * JOBS_PER_CORE), free))


def eta_text(seconds_done: Sequence[float], left: int, jobs: int) -> str:
    """``~4 min left`` from the gradings done so far ("" before the first)."""
    if not seconds_done or left <= 0:
        return ""
    per = sum(seconds_done) / len(seconds_done)
    waves = -(-left // max(1, jobs))
    remaining = per * waves
    if remaining < 90:
        return f"~{remaining:.0f} s left"
    return f"~{math.ceil(remaining / 60)} min left"


def progress_line(done: int, total: int, failing: int, learner: str, result: str,
                  eta: str) -> str:
    """One progress line after a grading ended: ``failing`` of the ``done`` did not pass."""
    tail = f" · {eta}" if eta else ""
    return f"[{done}/{total}] {learner}: {result} · {failing} of {done} not passed{tail}"


LOCAL = Worker("this machine", None, os.cpu_count() or 1)


def lock_path(out: Path, worker: Worker) -> Path:
    """The performance lock of the gradings on ``worker`` (one per engine's CPUs)."""
    name = PERFORMANCE_LOCK if worker.url is None else f"{PERFORMANCE_LOCK}.{worker.name}"
    return (out / name).resolve()


def grader_command(args: argparse.Namespace, entry: classroom.Entry, out: Path,
                   class_id: str, weights: weighting.Weights,
                   worker: Worker = LOCAL) -> list[str]:
    """The ``make grade`` command that grades one learner of the class on ``worker``."""
    command = [sys.executable, "-m", "socklab.host.grade", "run",
               "--variant", args.variant, "--submission", str(entry.path.resolve()),
               "--out", str(out / entry.id), "--image", args.image,
               "--label", f"{CLASS_LABEL}={class_id}",
               "--performance-lock", str(lock_path(out, worker))]
    if worker.url is not None:
        command += ["--engine", worker.url]
    if args.ssh_config:
        command += ["--ssh-config", str(Path(args.ssh_config).resolve())]
    command += [f"--label={label}" for label in args.label]
    if args.checks:
        command += ["--checks", str(Path(args.checks).resolve())]
    if not weights.measure_performance:
        command.append("--no-performance")
    if args.time_limit:
        command += ["--time-limit", str(args.time_limit)]
    return command


Command = Callable[[argparse.Namespace, classroom.Entry, Path, str, weighting.Weights,
                    Worker], list[str]]


@dataclass(frozen=True)
class Place:
    """A worker and how many gradings it takes at once."""

    worker: Worker
    slots: int


@dataclass
class Ended:
    """How one learner's grading process ended."""

    entry: classroom.Entry
    exit_code: int | None
    seconds: float
    timed_out: bool = False
    stopped: bool = False  # the class run was stopped while it ran
    worker: Worker = LOCAL


class ClassRun:
    """One ``make grade-class`` run: the plan carried out, the state kept, the view written."""

    def __init__(self, args: argparse.Namespace, out: Path, weights: weighting.Weights,
                 entries: list[classroom.Entry], state: classroom.ClassState,
                 places: Sequence[Place], say: Callable[[str], None], command: Command,
                 ssh_home: Path | None = None) -> None:
        self.args, self.out, self.weights, self.command = args, out, weights, command
        self.entries, self.state, self.say = entries, state, say
        self.places, self.ssh_home = list(places), ssh_home
        self.jobs = sum(place.slots for place in self.places)
        self.busy = {place.worker.name: 0 for place in self.places}
        self.class_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        self.time_limit = args.time_limit or grader.TIME_LIMIT
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- one grading ----------------------------------------------------------------------

    def take_worker(self) -> Worker:
        """The least busy worker (by its share of slots in use); one of its slots taken."""
        with self.lock:
            place = min(self.places, key=lambda p: self.busy[p.worker.name] / p.slots)
            self.busy[place.worker.name] += 1
            return place.worker

    def grade_one(self, entry: classroom.Entry) -> Ended:
        """Grade ``entry`` in a process of its own; never raises for the submission's sake."""
        if self.stopping.is_set():
            return Ended(entry, None, 0.0, stopped=True)
        worker = self.take_worker()
        try:
            ended = self._grade_on(entry, worker)
        finally:
            with self.lock:
                self.busy[worker.name] -= 1
        return ended

    def _grade_on(self, entry: classroom.Entry, worker: Worker) -> Ended:
        started = time.monotonic()
        target = self.out / entry.id
        # What is there is an earlier submission's: a result never mixes two gradings.
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        command = self.command(self.args, entry, self.out, self.class_id, self.weights, worker)
        with self.lock:
            self.state = classroom.started(self.state, self.args.variant, entry,
                                           self.weights.left_out)
            classroom.write_state(self.out, self.state)
        with open(target / GRADING_LOG, "wb") as log:
            # A session of its own: the terminal's Ctrl-C reaches the class run only, which
            # then stops each grading itself (and waits for it to clean up).
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            with self.lock:
                self.processes[entry.id] = process
            timed_out = False
            try:
                process.wait(timeout=self.time_limit + OVERRUN)
            except subprocess.TimeoutExpired:
                timed_out = True
                log.write(f"\nsocklab grade-class: the grading ran {OVERRUN:.0f} s past its "
                          f"time limit ({self.time_limit:.0f} s): stopped\n".encode())
                self._stop(process)
            finally:
                with self.lock:
                    self.processes.pop(entry.id, None)
        return Ended(entry, process.returncode, time.monotonic() - started, timed_out,
                     stopped=self.stopping.is_set() and process.returncode != 0, worker=worker)

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        """TERM (the grading writes its results and removes its lab), then KILL."""
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        """No new grading; the running ones told to stop, each in its own thread's time."""
        self.stopping.set()
        with self.lock:
            running = list(self.processes.values())
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)

    def record(self, ended: Ended) -> classroom.LearnerResult:
        """The state after ``ended``, written; the learner's result."""
        grade = read_grade(self.out / ended.entry.id)
        graded_hash = ((grade or {}).get("submission") or {}).get("sha256")
        if ended.stopped:
            status = ""  # left unfinished: the next run grades it again
        else:
            status = classroom.run_status(ended.exit_code, grade, timed_out=ended.timed_out)
        with self.lock:
            if status:
                self.state = classroom.finished(self.state, ended.entry.id, status,
                                                ended.seconds, graded_hash)
                classroom.write_state(self.out, self.state)
            last = self.state.learners.get(ended.entry.id)
        return classroom.learner_result(ended.entry, grade, last, self.weights)

    # -- the run --------------------------------------------------------------------------

    def grade_all(self, todo: Sequence[classroom.Entry]) -> None:
        """Every entry of ``todo`` graded, JOBS at once, a progress line after each."""
        total, done, failing, took = len(todo), 0, 0, []
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="grading") as pool:
            pending: set[Future[Ended]] = {pool.submit(self.grade_one, e) for e in todo}
            try:
                while pending:
                    finished, pending = wait(pending, timeout=1.0,
                                             return_when=FIRST_COMPLETED)
                    for future in finished:
                        ended = future.result()
                        if ended.stopped and ended.exit_code is None:
                            continue  # never started
                        result = self.record(ended)
                        done += 1
                        took.append(ended.seconds)
                        if result.status != "passed":
                            failing += 1
                        where = (f" on {ended.worker.name}" if len(self.places) > 1
                                 or ended.worker.url else "")
                        self.say(progress_line(
                            done, total, failing, ended.entry.id + where,
                            describe(result, ended),
                            "" if self.stopping.is_set()
                            else eta_text(took, total - done, self.jobs)))
            except KeyboardInterrupt:
                self.say("socklab grade-class: stopping: no new grading; the running ones "
                         "write what they graded and remove their labs (Ctrl-C again: "
                         "ignored, cleanup goes on)")
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                self.stop_all()
                for future in pending:
                    ended = future.result()
                    if ended.exit_code is not None:
                        self.record(ended)
                raise

    def results(self) -> list[classroom.LearnerResult]:
        """Every learner's result as OUT holds it now, reports re-scored where the weights
        differ from those they were written with."""
        results = []
        for entry in self.entries:
            grade = read_grade(self.out / entry.id)
            last = self.state.learners.get(entry.id)
            if last is not None and not last.finished:
                grade = None  # a grading stopped midway: its partial grade is no result
            if (grade is not None and not entry.problem
                    and (grade.get("submission") or {}).get("sha256") == entry.sha256
                    and grade.get("variant") == self.weights.variant
                    and not weighting.scored_with(grade, self.weights)):
                rewrite_reports(self.out / entry.id, grade, self.weights)
                grade = read_grade(self.out / entry.id)
            results.append(classroom.learner_result(entry, grade, last, self.weights))
        return results

    def sweep(self) -> int:
        """Remove whatever this run's gradings left on every worker (there should be nothing)."""
        removed = 0
        for place in self.places:
            try:
                removed += sweep_worker(place.worker, self.class_id, self.ssh_home)
            except Exception as error:  # the sweep must not hide the run's own outcome
                self.say(f"socklab grade-class: could not sweep the run's labs on "
                         f"{place.worker.name} ({error}); make grade-clean there removes "
                         "every grading lab")
        return removed


def sweep_worker(worker: Worker, class_id: str, home: Path | None) -> int:
    """Remove what class run ``class_id`` left on ``worker``'s engine."""
    from socklab.host.grade.lab import sweep

    return sweep(connect(worker.url, home), class_id, CLASS_LABEL)


def read_grade(directory: Path) -> dict[str, Any] | None:
    """``directory/grade.json`` as a dict; None when there is none or it is unreadable."""
    import json

    try:
        data = json.loads((directory / "grade.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("checks"), list) else None


def rewrite_reports(directory: Path, grade: dict[str, Any], weights: weighting.Weights) -> None:
    """Re-score a learner's grade under ``weights`` and write its reports again."""
    from socklab.host.grade import report

    report.write_all(weighting.rescore(grade, weights), directory)


def describe(result: classroom.LearnerResult, ended: Ended | None = None) -> str:
    """``passed 110/110 in 52 s``, ``failed 93/110``, ``error: no result``..."""
    text = result.status
    if result.score is not None:
        text += f" {class_page.number(result.score)}/{class_page.number(result.max_score)}"
    seconds = ended.seconds if ended is not None else result.seconds
    if seconds:
        text += f" in {seconds:.0f} s"
    if result.note and result.status not in ("passed", "failed"):
        text += f": {result.note}"
    return text


def table(results: Sequence[classroom.LearnerResult]) -> str:
    """The plain table printed at the end: learner, score, percent, status."""
    width = max([len(r.learner) for r in results] + [len("learner")])
    row = f"{{:<{width}}}  {{:>9}}  {{:>6}}  {{}}"
    lines = [row.format("learner", "score", "%", "status")]
    for r in results:
        score = ("" if r.score is None else
                 f"{class_page.number(r.score)}/{class_page.number(r.max_score)}")
        percent = "" if r.percent is None else f"{r.percent:.1f}"
        lines.append(row.format(r.learner, score, percent, r.status).rstrip())
    return "\n".join(lines) + "\n"


def write_view(out: Path, summary: classroom.ClassSummary) -> None:
    """OUT/class.csv and OUT/index.html, each written whole then renamed into place."""
    for name, text in ((classroom.CSV_FILE, classroom.csv_rows(summary.results)),
                       (classroom.INDEX_FILE, class_page.index_html(summary))):
        temporary = out / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, out / name)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def networks_in_use(engine: Any) -> int:
    """Bridge networks of this engine besides Docker's own (each holds an address pool)."""
    return sum(1 for n in engine.networks.list()
               if n.name not in ("bridge", "host", "none")
               and n.attrs.get("Driver") in ("bridge", "overlay"))


def check_engine(args: argparse.Namespace, home: Path | None) -> tuple[str, list[Place]]:
    """Why no grading can run ("" when one can), and where gradings go, how many at once.

    This machine's engine, or (``--swarm``) every worker's, each checked for
    the image: a worker without it would fail every grading sent there.
    """
    try:
        import docker
        import docker.errors
    except ImportError as error:
        return f"{error}: run it as make grade-class (it uses the project's venv)", []
    places, where = [], "this machine"
    try:
        workers = [LOCAL]
        if args.swarm:
            where = f"the swarm manager {args.swarm}"
            workers = swarm_workers(connect(args.swarm, home), args.swarm)
        for worker in workers:
            where = worker.name
            engine = connect(worker.url, home)
            engine.ping()
            engine.images.get(args.image)
            cpus = worker.cpus if worker.url else os.cpu_count()
            places.append(Place(worker, default_jobs(cpus, networks_in_use(engine))))
        return "", places
    except docker.errors.ImageNotFound:
        return (f"no image {args.image} on {where}: build it with make images"
                + (" (make provision ships it to the swarm's VMs)" if args.swarm else "")), []
    except docker.errors.APIError as error:
        return f"the Docker engine of {where} refused: {error.explanation or error}", []
    except (docker.errors.DockerException, EngineError, OSError) as error:
        return f"the Docker engine of {where} is not reachable: {error}", []


def spread(places: list[Place], jobs: int | None) -> list[Place]:
    """``places`` with ``jobs`` slots in all (when given), shared in turn among the workers."""
    if jobs is None:
        return places
    slots = [0] * len(places)
    for index in range(jobs):
        slots[index % len(places)] += 1
    return [Place(p.worker, n) for p, n in zip(places, slots, strict=True) if n]


Engines = Callable[[argparse.Namespace, "Path | None"], tuple[str, list[Place]]]


def main(args: argparse.Namespace, say: Callable[[str], None] = _say, *,
         engine: Engines = check_engine, command: Command = grader_command) -> int:
    """``python3 -m socklab.host.grade class``; the exit status.

    ``engine`` and ``command``: how the engine is checked and which command
    grades one learner (a test's stand-ins; by default Docker and ``make
    grade``'s command).
    """
    def fail(message: str) -> int:
        say(f"socklab grade-class: {message}")
        return NO_GRADING

    if args.variant not in spec.GRADED:
        return fail(f"cannot grade {args.variant!r}: gradable variants are "
                    f"{', '.join(spec.GRADED)}")
    if args.jobs is not None and args.jobs < 1:
        return fail(f"JOBS={args.jobs}: at least 1")
    try:
        weights = weighting.load(args.checks, args.variant)
        entries = classroom.discover(Path(args.submissions))
        out = Path(args.out) if args.out else classroom.default_out(args.variant,
                                                                   args.submissions)
        state = classroom.read_state(out)
    except (weighting.WeightsError, classroom.ClassError) as error:
        return fail(str(error))
    if not args.image:
        return fail("no lab image: run it as make grade-class, or set SOCKLAB_IMAGE")
    try:
        with session_home(args.ssh_config) as home:
            return _graded(args, say, engine, command, weights, entries, out, state, home)
    except EngineError as error:
        return fail(str(error))


def _graded(args: argparse.Namespace, say: Callable[[str], None], engine: Engines,
            command: Command, weights: weighting.Weights, entries: list[classroom.Entry],
            out: Path, state: classroom.ClassState, home: Path | None) -> int:
    problem, places = engine(args, home)
    if problem:
        say(f"socklab grade-class: {problem}")
        return NO_GRADING
    places = spread(places, args.jobs)
    jobs = sum(place.slots for place in places)

    decided = classroom.plan(entries, state, args.force, variant=args.variant,
                             counted=weights.counted)
    out.mkdir(parents=True, exist_ok=True)
    say(f"socklab grade-class: {len(entries)} learners of {args.submissions} "
        f"({args.variant}); results in {out}/")
    for decision in decided.grade:
        say(f"  grade {decision.entry.id}: {decision.reason}")
    if decided.keep:
        say(f"  keep {len(decided.keep)} unchanged since their last grading: "
            + ", ".join(d.entry.id for d in decided.keep))
    for decision in decided.unfit:
        say(f"  cannot grade {decision.entry.id}: {decision.reason}")
    if decided.gone:
        say(f"  no longer in {args.submissions} (left out of the class view, their "
            f"results kept in {out}/): {', '.join(decided.gone)}")
    todo = [d.entry for d in decided.grade]
    if todo:
        say(f"socklab grade-class: grading {len(todo)}, {min(jobs, len(todo))} at once"
            + (" on " + ", ".join(f"{p.worker.name} ({p.slots})" for p in places)
               if args.swarm else ""))

    run = ClassRun(args, out, weights, entries, state, places, say, command, home)
    previous = signal.signal(signal.SIGTERM, _terminate)
    interrupted = False
    try:
        run.grade_all(todo)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        run.sweep()
    results = run.results()
    generated = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    summary = classroom.summarize(args.variant, Path(os.path.abspath(args.submissions)).name,
                                  results, weights, generated)
    write_view(out, summary)
    print(table(summary.results))
    counts = {k: v for k, v in summary.counts().items() if v}
    say(f"socklab grade-class: {', '.join(f'{v} {k}' for k, v in counts.items())}; "
        f"{out / classroom.CSV_FILE}, {out / classroom.INDEX_FILE}")
    if interrupted:
        say("socklab grade-class: stopped before the end: run the same command again to "
            "grade the rest")
    return 0 if all(r.status == "passed" for r in results) else 1
