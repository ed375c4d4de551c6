"""make grade on the corpus of learners' servers (``tests/grading/corpus``).

A grader that fails correct code is worse than one that misses a bug, so both
are proven: each buggy server, written for the purpose with one classic mistake,
fails exactly the checks its header names (no more: the others must pass), each
server written unlike ours (``selectors``, ``asyncio``, ``socketserver``, C) passes
every scored check, and each hostile one ends with a verdict within its budget,
leaves nothing running and does not stop a lab beside it from serving.
"""

from __future__ import annotations

import subprocess
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


def _grade_entry(image: str, entry: Entry, work: Path) -> Graded:
    submission = entry.path
    if entry.path.suffix == ".c":
        submission = work / entry.path.stem
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(submission), str(entry.path)],
                       check=True, capture_output=True)
    extra = ("--time-limit", "300") if entry.kind == "hostile" else ()
    started = time.monotonic()
    status, found, stderr = grade(image, entry.variant, submission, work / "out",
                                  "--no-performance", *extra)
    return Graded(status, found, stderr, time.monotonic() - started, work / "out")


@pytest.fixture(scope="session")
def corpus_grades(lab_image: str, tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Graded]]]:
    """The gradings of the selected corpus entries, started at once on JOBS threads
    (futures by file name)."""
    selected = [entry for entry in CORPUS if entry.path.name in {
        item.callspec.params["entry"].path.name for item in request.session.items
        if "entry" in getattr(getattr(item, "callspec", None), "params", {})}]
    calm = [e for e in selected if e.kind != "hostile"]
    with ThreadPoolExecutor(JOBS) as pool, ThreadPoolExecutor(1) as alone:
        futures = {e.path.name: pool.submit(_grade_entry, lab_image, e,
                                            tmp_path_factory.mktemp(e.path.stem))
                   for e in calm}
        others = list(futures.values())

        def after_the_others(entry: Entry, work: Path) -> Graded:
            wait(others)
            return _grade_entry(lab_image, entry, work)

        # A hostile server is graded alone, after the rest: a fork bomb at its pids limit
        # loaded this machine (load average 417) and a correct server's 40 MiB output
        # beside it missed its 40 s.
        futures.update({e.path.name: alone.submit(after_the_others, e,
                                                  tmp_path_factory.mktemp(e.path.stem))
                        for e in selected if e.kind == "hostile"})
        yield futures


def _id(entry: Entry) -> str:
    return entry.path.name


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.kind in ("buggy", "correct")], ids=_id)
def test_each_server_fails_exactly_the_checks_of_its_mistake(
        entry: Entry, corpus_grades: dict[str, Future[Graded]]) -> None:
    graded = corpus_grades[entry.path.name].result()
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
        entry: Entry, corpus_grades: dict[str, Future[Graded]], lab: harness.TestLab,
        docker_client: docker.DockerClient) -> None:
    graded = corpus_grades[entry.path.name].result()
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
