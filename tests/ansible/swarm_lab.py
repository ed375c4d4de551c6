"""The lab stack on the test VMs' swarm, as the Ansible suite sees it: tasks, nodes, the suite.

site.yml formed a swarm of the test VMs (vm-1 the manager and the clients'
node, the others workers and the servers' nodes) and deployed the stack
``socklab`` on it. These helpers read where Swarm placed each service, and
run the integration suite itself against the stack (``SOCKLAB_SWARM``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
from ansible_run import REPORTS, ROOT

from integration.harness import compose_services

STACK = "socklab"  # the socklab role's socklab_stacks
SERVICES = compose_services()
SERVERS = sorted(name for name, spec in SERVICES.items()
                 if spec.get("labels", {}).get("socklab.role") == "server")
CLIENTS = sorted(set(SERVICES) - set(SERVERS))
# The suite's checks that run against the stack: every variant's protocol, and
# the port-range and backlog scenarios (spare hosts beside the stack's own).
PROTOCOLS = "tests/integration/test_protocols.py"
SCENARIOS = "tests/integration/test_scenarios.py"
SUITE = [PROTOCOLS,
         f"{SCENARIOS}::test_ports_narrow_range_allows_k_connections_per_destination",
         f"{SCENARIOS}::test_backlog_completes_min_backlog_somaxconn_plus_one"]
SUITE_TIMEOUT = 1500


@dataclass(frozen=True)
class SuiteRun:
    returncode: int
    output: str

    @property
    def counts(self) -> dict[str, int]:
        """{"passed": n, "failed": n, ...} from pytest's last summary line."""
        summary = self.output.strip().splitlines()[-1] if self.output.strip() else ""
        return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


def swarm_target(manager_url: str) -> dict[str, str]:
    """The environment that points the integration suite at the stack (harness.SwarmLab)."""
    return {"SOCKLAB_SWARM": manager_url, "SOCKLAB_STACK": STACK}


def placement(manager: docker.DockerClient) -> dict[str, str]:
    """service -> host name of the node its running task is on (services without one left out)."""
    nodes = {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}
    placed = {}
    for service in manager.services.list(filters={"label": f"com.docker.stack.namespace={STACK}"}):
        running = [t for t in service.tasks(filters={"desired-state": "running"})
                   if t["Status"]["State"] == "running"]
        if running:
            placed[service.name.removeprefix(f"{STACK}_")] = nodes[running[0]["NodeID"]]
    return placed


def run_suite(target: dict[str, str], home: Path, run_id: str, log_name: str,
              tests: list[str] = SUITE) -> SuiteRun:
    """Tests of the integration suite (SUITE) against ``target``, one at a time.

    ``target`` is the environment naming what the suite runs on: a deployed
    stack (``swarm_target``) or a remote engine (``DOCKER_HOST=ssh://…`` and
    ``SOCKLAB_IMAGE``). Serially: a stack has one task per server, which
    parallel workers would share.
    """
    env = {key: value for key, value in os.environ.items()
           if key not in ("SOCKLAB_ANSIBLE_TESTS", "SSH_AUTH_SOCK", "DOCKER_HOST", "SOCKLAB_SWARM")}
    env.update({"SOCKLAB_TEST_RUN": run_id, "HOME": str(home), "PYTHONPATH": "services:tests",
                **target})
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider",
                           "-q", *tests], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=SUITE_TIMEOUT, check=False)
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / log_name).write_text(done.stdout)
    return SuiteRun(done.returncode, done.stdout)
