"""Losing a worker VM: Swarm reschedules its servers on the others, and the checks pass again.

Runs after every other check of the suite (this file's name sorts last): it
stops a VM for good. The VM set is removed at the end of the session as usual.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import docker
import pytest
from swarm_lab import CLIENTS, PROTOCOLS, SERVERS, placement, run_suite, swarm_target

from integration.harness import wait_until
from socklab.host import vms

RESCHEDULE_WAIT = 240.0


def node_states(manager: docker.DockerClient) -> dict[str, str]:
    return {n.attrs["Description"]["Hostname"]: n.attrs["Status"]["State"]
            for n in manager.nodes.list()}


def test_stopping_a_worker_vm_moves_its_servers_and_the_suite_passes_again(
        manager: docker.DockerClient, manager_url: str, vm_list: list[vms.Vm], ssh_home: Path,
        record_property: pytest.RecordProperty) -> None:
    before = placement(manager)
    assert set(before) == set(SERVERS + CLIENTS), before
    workers = [vm for vm in vm_list[1:] if vm.name in before.values()]
    assert len(vm_list) >= 3 and workers, "needs two server VMs, one of them running servers"
    lost = max(workers, key=lambda vm: list(before.values()).count(vm.name))
    moved = sorted(s for s, node in before.items() if node == lost.name)

    started = time.monotonic()
    subprocess.run(["docker", "stop", "--time", "5", lost.container], check=True,
                   capture_output=True)

    def rescheduled() -> bool:
        now = placement(manager)
        return (node_states(manager).get(lost.name) == "down"
                and set(now) == set(SERVERS + CLIENTS) and lost.name not in now.values())

    assert wait_until(rescheduled, RESCHEDULE_WAIT, 2.0), (node_states(manager), placement(manager))
    seconds = time.monotonic() - started
    after = placement(manager)
    survivors = {vm.name for vm in vm_list[1:] if vm is not lost}
    assert {after[s] for s in SERVERS} <= survivors  # still apart from the clients
    assert {after[c] for c in CLIENTS} == {vm_list[0].name}

    suite = run_suite(swarm_target(manager_url), ssh_home,
                      f"{os.environ['SOCKLAB_TEST_RUN']}-loss", "swarm-suite-after-loss.log",
                      [PROTOCOLS])
    assert suite.returncode == 0, suite.output[-6000:]
    record_property("figures", {"stopped": lost.name, "moved": moved,
                                "reschedule_seconds": round(seconds, 1),
                                "suite_after_loss": suite.counts})
