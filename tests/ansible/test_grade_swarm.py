"""make grade-class on the test VMs' swarm: the gradings spread over the workers, each
learner graded as make grade grades it alone, nothing left on any worker.

The class is three select servers of the grading corpus, whose verdicts the corpus
headers fix: a correct one that first tries to reach the worker VM (its docker0
address and its own network's gateway, nothing else), a buggy one that leaks a
descriptor per client (only the server's /proc, read by the reader container on the
worker, can see it), and one that listens on loopback only (readiness, read the same
way). The gradings go through the manager's node list to the workers' engines over
ssh://, with the image the Ansible role shipped there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from remote import engine_client

from grading.corpus import Entry, load
from integration import harness
from integration.test_grade import REACH_OUT, explain, failed
from socklab.host import vm_image, vms
from socklab.host.grade.class_run import CLASS_LABEL

# The corpus servers of the class, and the one that reaches out first (a learner's id each).
CORRECT, LEAKS, LOOPBACK = "select-selectors", "select-fd-leak", "select-loopback-only"
REACHES = "select-reaches-out"
CHECKS = 'exclude = ["performance.*"]\n'  # the VMs share 2 cores: no figure means anything


@dataclass
class SwarmClass:
    result: subprocess.CompletedProcess[str]
    out: Path
    expected: dict[str, frozenset[str]]

    def grade(self, learner: str) -> dict[str, Any]:
        path = self.out / learner / "grade.json"
        assert path.exists(), f"no grade for {learner}:\n{self.result.stderr[-3000:]}"
        return dict(json.loads(path.read_text()))


def reaching_out(entry: Entry) -> str:
    """The correct server's source with REACH_OUT's probe before it (its serving part cut)."""
    probe = REACH_OUT.split("server = socket.socket()")[0]
    return probe + "\n" + entry.path.read_text()


@pytest.fixture(scope="module")
def swarm_class(converged: object, manager_url: str, vm_set: vms.VmSet, lab_tag: str,
                tmp_path_factory: pytest.TempPathFactory) -> SwarmClass:
    work = tmp_path_factory.mktemp("grade-swarm")
    submissions, out = work / "submissions", work / "out"
    submissions.mkdir()
    corpus = {entry.path.stem: entry for entry in load()}
    expected = {}
    for learner in (CORRECT, LEAKS, LOOPBACK):
        (submissions / f"{learner}.py").write_text(corpus[learner].path.read_text())
        expected[learner] = corpus[learner].expect_fail
    (submissions / f"{REACHES}.py").write_text(reaching_out(corpus[CORRECT]))
    expected[REACHES] = corpus[CORRECT].expect_fail
    (work / "checks.toml").write_text(CHECKS)
    command = [sys.executable, "-m", "socklab.host.grade", "class", "--variant", "select",
               "--submissions", str(submissions), "--out", str(out),
               "--image", lab_tag, "--checks", str(work / "checks.toml"),
               "--jobs", "2", "--time-limit", "300", "--swarm", manager_url,
               "--ssh-config", str(vm_set.ssh_config),
               "--label", f"{harness.RUN_LABEL}={os.environ['SOCKLAB_TEST_RUN']}"]
    env = {**os.environ, "PYTHONPATH": str(harness.ROOT / "services")}
    env.pop("SSH_AUTH_SOCK", None)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500,
                            check=False)
    return SwarmClass(result, out, expected)


@pytest.mark.timeout(1800)
def test_each_learner_on_the_swarm_is_graded_as_the_corpus_says(swarm_class: SwarmClass) -> None:
    assert swarm_class.result.returncode == 1, swarm_class.result.stderr[-3000:]
    for learner, expect_fail in swarm_class.expected.items():
        found = swarm_class.grade(learner)
        assert failed(found) == set(expect_fail), f"{learner}:\n{explain(found)}"


def test_the_gradings_went_to_both_workers(swarm_class: SwarmClass,
                                           vm_list: list[vms.Vm]) -> None:
    said = swarm_class.result.stderr
    workers = [vm.name for vm in vm_list[1:]]  # vm-1 is the manager, labelled for clients
    assert f"on {workers[0]} (1), {workers[1]} (1)" in said, said[-3000:]
    graded_on = {line.rsplit(" on ", 1)[1].split(":")[0] for line in said.splitlines()
                 if line.startswith("[") and " on " in line}
    assert graded_on == set(workers), said[-3000:]


def test_a_server_on_a_worker_finds_no_route_out(swarm_class: SwarmClass) -> None:
    swarm_class.grade(REACHES)
    log = (swarm_class.out / REACHES / "server.log").read_text()
    lines = [line for line in log.splitlines() if line.startswith("reach ")]
    assert len(lines) == 2, log[-2000:]
    assert "CONNECTED" not in log
    # EHOSTUNREACH (113) or ENETUNREACH (101): no route, decided inside the container.
    assert all(line.split()[-1] in ("113", "101") for line in lines), lines


def test_nothing_of_the_class_is_left_on_any_worker(swarm_class: SwarmClass, ssh_home: Path,
                                                    vm_list: list[vms.Vm]) -> None:
    assert swarm_class.result.stderr  # the run happened
    label = {"label": CLASS_LABEL}
    for vm in vm_list:
        engine: docker.DockerClient = engine_client(f"ssh://{vm_image.VM_USER}@{vm.address}",
                                                    ssh_home)
        try:
            left = ([c.name for c in engine.containers.list(all=True, filters=label)]
                    + [n.name for n in engine.networks.list(filters=label)]
                    + [v.name for v in engine.volumes.list(filters=label)])
        finally:
            engine.close()
        assert left == [], f"{vm.name}: {left}"
