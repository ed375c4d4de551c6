"""make grade on the corpus of learners' servers (``tests/grading/corpus``).

A grader that fails correct code is worse than one that misses a bug, so both
are proven: each buggy server, written for the purpose with one classic mistake,
fails exactly the checks its header names (no more: the others must pass), each
server written unlike ours (``selectors``, ``asyncio``, ``socketserver``, C) passes
every scored check, and each hostile one ends with a verdict within its budget,
leaves nothing running and does not stop a lab beside it from serving.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from grading.corpus import Entry, load
from integration import harness
from integration.test_grade import explain, failed, grade, leftovers

CORPUS = load()

# Gradings at once. Most of a grading is waiting (on the server, on a check's timer), so
# two run side by side in one test worker; every corpus test is sent to that worker
# (xdist_group, make test's --dist loadgroup), which grades the whole corpus on first
# use while the other worker runs the rest of the suite. Two networks of Docker's ~30,
# and checks with timers (a second client answered within 3 s) keep their margins.
JOBS = 2

# A test waits for its grading, which waits its turn behind the others: the suite's 300 s
# per test is not enough for the last of them (measured: 300 s reached while waiting).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("grade-corpus"),
              pytest.mark.timeout(2400)]


@dataclass
class Graded:
    status: int
    found: dict[str, Any]
    stderr: str
    seconds: float
    out: Path


def _submission(entry: Entry, work: Path) -> Path:
    """What a learner hands in: the file, or for C the binary gcc builds of it."""
    if entry.path.suffix != ".c":
        return entry.path
    binary = work / entry.path.stem
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(entry.path)],
                   check=True, capture_output=True)
    return binary


def _grade_entry(image: str, entry: Entry, work: Path) -> Graded:
    extra = ("--time-limit", "300") if entry.kind == "hostile" else ()
    started = time.monotonic()
    status, found, stderr = grade(image, entry.variant, _submission(entry, work), work / "out",
                                  "--no-performance", *extra)
    return Graded(status, found, stderr, time.monotonic() - started, work / "out")


# The corpus's select servers are graded as one class, by make grade-class's command: the
# class run is proven on learners whose verdicts the corpus fixes (each one's scored checks
# the same as make grade gives alone, which the other variants' entries show). The run is
# stopped (SIGINT, as Ctrl-C) once STOP_AFTER learners have finished, then run again.
CLASS_VARIANT = "select"
STOP_AFTER = 4
CLASS_CHECKS = 'exclude = ["performance.*"]\n'


@dataclass
class ClassGraded:
    out: Path
    stopped: subprocess.CompletedProcess[str]  # the run stopped midway
    finished_before: dict[str, dict[str, Any]]  # the state file when it was stopped
    resumed: subprocess.CompletedProcess[str]  # the same command again
    seconds: float  # both runs

    def learner(self, entry: Entry) -> Graded:
        learner = entry.path.stem
        state = json.loads((self.out / "class-state.json").read_text())["learners"][learner]
        grade_json = self.out / learner / "grade.json"
        found = json.loads(grade_json.read_text()) if grade_json.exists() else {}
        log = self.out / learner / "grading.log"
        return Graded(0 if state["status"] == "passed" else 1, found,
                      log.read_text() if log.exists() else "", float(state["seconds"] or 0),
                      self.out / learner)


def class_command(image: str, submissions: Path, out: Path, checks: Path) -> list[str]:
    return [sys.executable, "-m", "socklab.host.grade", "class", "--variant", CLASS_VARIANT,
            "--submissions", str(submissions), "--out", str(out), "--image", image,
            "--jobs", str(JOBS), "--checks", str(checks), "--time-limit", "300",
            "--label", f"{harness.RUN_LABEL}={os.environ['SOCKLAB_TEST_RUN']}"]


def _grade_class(image: str, entries: list[Entry], work: Path) -> ClassGraded:
    submissions, out = work / "submissions", work / "out"
    submissions.mkdir()
    for entry in entries:
        source = _submission(entry, work)
        shutil.copy2(source, submissions / source.name)
    checks = work / "checks.toml"
    checks.write_text(CLASS_CHECKS)
    command = class_command(image, submissions, out, checks)
    env = {**os.environ, "PYTHONPATH": str(harness.ROOT / "services")}
    started = time.monotonic()
    with open(work / "stopped.log", "w+") as log:
        # SIGINT as a terminal's Ctrl-C gives it, even where the suite was started in the
        # background (an asynchronous command of a non-interactive shell ignores SIGINT).
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   env=env, preexec_fn=lambda: signal.signal(
                                       signal.SIGINT, signal.SIG_DFL))
        learners: dict[str, dict[str, Any]] = {}
        try:
            while process.poll() is None:
                state = out / "class-state.json"
                learners = json.loads(state.read_text())["learners"] if state.exists() else {}
                if sum(s["finished"] for s in learners.values()) >= STOP_AFTER:
                    process.send_signal(signal.SIGINT)
                    break
                time.sleep(0.5)
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
        log.seek(0)
        stopped = subprocess.CompletedProcess(command, process.returncode, log.read(), "")
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=2400,
                             check=False)
    return ClassGraded(out, stopped, learners, resumed, time.monotonic() - started)


@pytest.fixture(scope="session")
def corpus_grades(lab_image: str, tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest,
                  ) -> Iterator[tuple[dict[str, Future[Graded]], Future[ClassGraded] | None]]:
    """The gradings of the selected corpus entries (futures by file name), and the class
    run of its select servers. The class first (JOBS gradings at once), then the others on
    JOBS threads, then the hostile ones alone."""
    wanted = {item.callspec.params["entry"].path.name for item in request.session.items
              if "entry" in getattr(getattr(item, "callspec", None), "params", {})}
    class_wanted = any(item.name.startswith("test_a_class") for item in request.session.items)
    classed = [e for e in CORPUS if e.variant == CLASS_VARIANT]
    if not class_wanted and not wanted & {e.path.name for e in classed}:
        classed = []
    selected = [e for e in CORPUS if e.path.name in wanted and e not in classed]
    calm = [e for e in selected if e.kind != "hostile"]
    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(JOBS) as pool, \
            ThreadPoolExecutor(1) as alone:
        klass = (first.submit(_grade_class, lab_image, classed,
                              tmp_path_factory.mktemp("class")) if classed else None)

        def after(waited: list[Future[Any]], entry: Entry, work: Path) -> Graded:
            wait(waited)
            return _grade_entry(lab_image, entry, work)

        before = [klass] if klass else []
        futures = {e.path.name: pool.submit(after, before, e, tmp_path_factory.mktemp(
            e.path.stem)) for e in calm}
        others = [*before, *futures.values()]
        # A hostile server is graded alone, after the rest: a fork bomb at its pids limit
        # loaded this machine (load average 417) and a correct server's 40 MiB output
        # beside it missed its 40 s.
        futures.update({e.path.name: alone.submit(after, others, e, tmp_path_factory.mktemp(
            e.path.stem)) for e in selected if e.kind == "hostile"})
        if klass is not None:
            for entry in classed:
                learner: Future[Graded] = Future()
                klass.add_done_callback(
                    lambda done, entry=entry, learner=learner: _settle(done, entry, learner))
                futures[entry.path.name] = learner
        yield futures, klass


def _settle(done: Future[ClassGraded], entry: Entry, learner: Future[Graded]) -> None:
    try:
        learner.set_result(done.result().learner(entry))
    except Exception as error:
        learner.set_exception(error)


def _id(entry: Entry) -> str:
    return entry.path.name


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.kind in ("buggy", "correct")], ids=_id)
def test_each_server_fails_exactly_the_checks_of_its_mistake(
        entry: Entry, corpus_grades: tuple[dict[str, Future[Graded]], Any]) -> None:
    graded = corpus_grades[0][entry.path.name].result()
    found = graded.found
    assert found, f"no grade.json:\n{graded.stderr}"
    # No check outside the mistake's fails (a grader that fails good code is worse than
    # none), and the mistake is caught. Among a mistake's checks, one that meets it only
    # by a race (a crash when a reset lands before the last answer) may pass.
    got = failed(found)
    assert got <= set(entry.expect_fail), (
        f"{entry.path.name} ({entry.mistake}) failed checks outside its mistake:\n"
        f"{explain(found)}")
    assert bool(got) == bool(entry.expect_fail), (
        f"{entry.path.name} ({entry.mistake}):\n{explain(found)}")
    assert graded.status == (1 if entry.expect_fail else 0)
    for check in found["checks"]:
        if check["status"] != "passed" and check["scored"]:
            assert check["message"] and check["hint"] and check["reproduce"]


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.kind == "hostile"], ids=_id)
def test_a_hostile_server_gets_a_verdict_and_leaves_nothing(
        entry: Entry, corpus_grades: tuple[dict[str, Future[Graded]], Any],
        lab: harness.TestLab, docker_client: docker.DockerClient) -> None:
    graded = corpus_grades[0][entry.path.name].result()
    found = graded.found
    assert found, f"no grade.json:\n{graded.stderr}"
    assert failed(found) >= set(entry.expect_fail), explain(found)
    assert graded.status == (1 if failed(found) else 0)
    assert graded.seconds < 400
    assert leftovers(docker_client, found["lab"]["run_id"]) == []
    # The disk holds at most Docker's capped log of it.
    assert (graded.out / "server.log").stat().st_size <= 2 << 20
    # A lab beside it kept serving: this worker's own select-server answers.
    client = lab.host("client-1")
    lab.host("select-server")
    assert client.probe("grade", "--variant", "select", "--check",
                        "conformance.echo")["status"] == "passed"


def test_a_class_is_graded_stopped_midway_resumed_and_leaves_nothing(
        corpus_grades: tuple[dict[str, Future[Graded]], Future[ClassGraded] | None],
        docker_client: docker.DockerClient) -> None:
    klass = corpus_grades[1]
    assert klass is not None
    run = klass.result()
    learners = sorted(e.path.stem for e in CORPUS if e.variant == CLASS_VARIANT)
    assert len(learners) >= 12
    kinds = {e.kind for e in CORPUS if e.variant == CLASS_VARIANT}
    assert kinds == {"buggy", "correct", "hostile"}
    # Stopped (SIGINT) once STOP_AFTER had finished: it said so, and a learner was left.
    assert run.stopped.returncode == 1, run.stopped.stdout[-3000:]
    assert "stopped before the end" in run.stopped.stdout
    done_before = {k for k, v in run.finished_before.items() if v["finished"]}
    assert len(done_before) >= STOP_AFTER
    assert set(learners) - done_before
    # Resumed: those keep their results, every other learner is graded, to the end.
    out = run.resumed.stdout + run.resumed.stderr
    assert run.resumed.returncode == 1, out[-3000:]  # the buggy ones lost points
    graded = {line.split()[1].rstrip(":") for line in out.splitlines()
              if line.startswith("  grade ")}
    assert graded == set(learners) - done_before - (
        {k for k, v in run.finished_before.items() if v["status"] in ("error", "timeout")})
    assert f"[{len(graded)}/{len(graded)}]" in out
    state = json.loads((run.out / "class-state.json").read_text())["learners"]
    assert sorted(state) == learners and all(s["finished"] for s in state.values())
    with open(run.out / "class.csv", newline="") as handle:
        rows = {row["learner"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == learners
    assert {row["status"] for row in rows.values()} <= {"passed", "failed"}
    for entry in CORPUS:
        if entry.variant == CLASS_VARIANT:
            row = rows[entry.path.stem]
            assert (row["status"] == "passed") == (not entry.expect_fail
                                                   and entry.kind != "hostile"), row
            assert row["performance"] == ""  # CHECKS left it out
    page = (run.out / "index.html").read_text()
    assert all(f"{learner}/report.html" in page for learner in learners)
    # Nothing of the class's labs is left.
    label = {"label": [f"{harness.RUN_LABEL}={os.environ['SOCKLAB_TEST_RUN']}",
                       "socklab.grade.class"]}
    assert [c.name for c in docker_client.containers.list(all=True, filters=label)] == []
    assert [n.name for n in docker_client.networks.list(filters=label)] == []
