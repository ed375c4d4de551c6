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
from pathlib import Path

import docker
import pytest

from grading.corpus import Entry, load
from integration import harness
from integration.test_grade import explain, failed, grade, leftovers

pytestmark = pytest.mark.integration

CORPUS = load()

def _id(entry: Entry) -> str:
    return entry.path.name


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.kind in ("buggy", "correct")], ids=_id)
def test_each_server_fails_exactly_the_checks_of_its_mistake(
        lab_image: str, entry: Entry, tmp_path: Path) -> None:
    submission = entry.path
    if entry.path.suffix == ".c":
        submission = tmp_path / entry.path.stem
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(submission), str(entry.path)],
                       check=True, capture_output=True)
    status, found, stderr = grade(lab_image, entry.variant, submission, tmp_path / "out",
                                  "--no-performance")
    assert found, f"no grade.json:\n{stderr}"
    assert failed(found) == set(entry.expect_fail), (
        f"{entry.path.name} ({entry.mistake}):\n{explain(found)}")
    assert status == (1 if entry.expect_fail else 0)
    for check in found["checks"]:
        if check["status"] != "passed" and check["scored"]:
            assert check["message"] and check["hint"] and check["reproduce"]


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.kind == "hostile"], ids=_id)
def test_a_hostile_server_gets_a_verdict_and_leaves_nothing(
        lab_image: str, entry: Entry, tmp_path: Path, lab: harness.TestLab,
        docker_client: docker.DockerClient) -> None:
    started = time.monotonic()
    status, found, stderr = grade(lab_image, entry.variant, entry.path, tmp_path,
                                  "--no-performance", "--time-limit", "300")
    seconds = time.monotonic() - started
    assert found, f"no grade.json:\n{stderr}"
    assert failed(found) >= set(entry.expect_fail), explain(found)
    assert status == (1 if failed(found) else 0)
    assert seconds < 400
    assert leftovers(docker_client, found["lab"]["run_id"]) == []
    # The disk holds at most Docker's capped log of it.
    assert (tmp_path / "server.log").stat().st_size <= 2 << 20
    # A lab beside it kept serving: this worker's own select-server answers.
    client = lab.host("client-1")
    lab.host("select-server")
    assert client.probe("grade", "--variant", "select", "--check",
                        "conformance.echo")["status"] == "passed"
