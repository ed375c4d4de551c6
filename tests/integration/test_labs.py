"""Two labs side by side (``make up LAB=name``) never see each other, proven between containers.

Each lab is started the way ``make up LAB=name`` starts it: Compose with
compose/lab.yml, project and network ``socklab-<lab>`` (SOCKLAB_NETWORK).
A test-only override file, written here, adds the run's labels to the
containers, the network and the volume, so the sweep of ``make test`` finds
whatever a failed run leaves; a learner's lab carries no test label. Only the
hosts the checks need are started, to keep the run short.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml

from integration import harness
from socklab.host import hostctl
from socklab.registry import CLIENTS, VARIANTS

TCP, SELECT = VARIANTS["tcp"], VARIANTS["select"]
SERVICES = (TCP.host, SELECT.host, CLIENTS[0])
START_TIMEOUT = 120.0
# A connection attempt to the other lab is dropped silently (Docker's isolation
# rules): give up after this long rather than the kernel's ~2 min of SYN retries.
CONNECT_TIMEOUT = 3.0


@dataclass
class Lab:
    """One lab started for the test: its project name and hosts by service name."""

    project: str
    hosts: dict[str, harness.Host]

    def address(self, service: str) -> str:
        return self.hosts[service].address()

    def client(self) -> harness.Host:
        return self.hosts[CLIENTS[0]]


@dataclass(frozen=True)
class Compose:
    """Compose (v2 if present, else v1, as the Makefile picks) with lab.yml and the test labels."""

    command: tuple[str, ...]
    override: Path
    image: str

    def run(self, project: str, *args: str) -> None:
        """``compose -p project ... args`` as make would run it for that lab."""
        env = {**os.environ, "SOCKLAB_NETWORK": project, "SOCKLAB_IMAGE": self.image}
        files = ["-f", str(harness.COMPOSE_FILE), "-f", str(self.override)]
        result = subprocess.run([*self.command, "-p", project, *files, *args], env=env,
                                capture_output=True, text=True, check=False, timeout=300)
        assert result.returncode == 0, f"compose {' '.join(args)} failed:\n{result.stderr}"


def compose_command() -> tuple[str, ...]:
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ("docker", "compose") if found.returncode == 0 else ("docker-compose",)


def write_test_labels(path: Path, labels: dict[str, str]) -> Path:
    """An override file adding ``labels`` to every service, the network and the volume.

    Compose v1 replaces, not merges, a network or volume named again in an
    override: lab.yml's own definitions are copied with the labels added.
    """
    lab = yaml.safe_load(harness.COMPOSE_FILE.read_text())
    override: dict[str, dict[str, object]] = {
        "services": {name: {"labels": labels} for name in lab["services"]}}
    for section in ("networks", "volumes"):
        override[section] = {name: {**(spec or {}), "labels": {**(spec or {}).get("labels", {}),
                                                              **labels}}
                             for name, spec in lab[section].items()}
    path.write_text(yaml.safe_dump(override))
    return path


def start_lab(client: docker.DockerClient, compose: Compose, lab_name: str) -> Lab:
    """Start the lab's SERVICES, wait for their health checks; the lab's hosts."""
    project = hostctl.lab_project(lab_name)
    compose.run(project, "up", "-d", *SERVICES)
    assert hostctl.wait(project, START_TIMEOUT) == 0, f"lab {project} not healthy"
    hosts = {}
    for service in SERVICES:
        found = client.containers.list(filters={"label": [
            f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]})
        hosts[service] = harness.Host(found[0], service)
    return Lab(project, hosts)


@pytest.fixture(scope="module")
def two_labs(docker_client: docker.DockerClient, lab_image: str, worker_id: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Lab]]:
    run_id = os.environ["SOCKLAB_TEST_RUN"]
    names = [f"t-{run_id}-{worker_id}-{side}" for side in "ab"]
    assert not any(hostctl.lab_error(n) for n in names), [hostctl.lab_error(n) for n in names]
    labels = {harness.RUN_LABEL: run_id, harness.WORKER_LABEL: worker_id,
              harness.OWNER_LABEL: os.environ.get("SOCKLAB_TEST_OWNER_PID", str(os.getpid()))}
    override = write_test_labels(tmp_path_factory.mktemp("labs") / "labels.yml", labels)
    compose = Compose(compose_command(), override, lab_image)
    try:
        with ThreadPoolExecutor(2) as pool:
            labs = list(pool.map(lambda name: start_lab(docker_client, compose, name), names))
        yield labs[0], labs[1]
    finally:
        # Both, even if the first fails; what is left is swept with the run's label.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda name: compose.run(hostctl.lab_project(name), "down", "-v",
                                                   "--remove-orphans"), names))


def test_two_labs_side_by_side_never_see_each_other(
        docker_client: docker.DockerClient, two_labs: tuple[Lab, Lab]) -> None:
    # One test, not four: under xdist each test module's fixture would start
    # its own pair of labs on every worker that runs one of its tests.
    for lab, elsewhere in (two_labs, two_labs[::-1]):
        check_own_network(docker_client, lab)
        check_echo_by_name(lab)
        check_names_resolve_in_own_lab(lab, elsewhere)
        check_other_lab_unreachable(lab, elsewhere)


def check_own_network(docker_client: docker.DockerClient, lab: Lab) -> None:
    """The lab's network is named after it, holds its hosts only, and can be swept."""
    network = docker_client.networks.get(lab.project)
    members = {c["Name"] for c in network.attrs["Containers"].values()}
    assert members == {h.name for h in lab.hosts.values()}
    run_id = os.environ["SOCKLAB_TEST_RUN"]
    assert network.attrs["Labels"].get(harness.RUN_LABEL) == run_id
    assert {h.container.labels.get(harness.RUN_LABEL) for h in lab.hosts.values()} == {run_id}


def check_echo_by_name(lab: Lab) -> None:
    """client-1 has a real echo exchange with its lab's servers, by host name."""
    tcp = lab.client().check("echo", variant="tcp", size=4096)
    select = lab.client().check("echo", variant="select", size=4096)
    assert tcp["intact"] and select["intact"]
    assert select["greeting"] == SELECT.greeting.decode()
    # The server that answered logged this lab's client as its peer.
    assert f"accept peer={lab.address(CLIENTS[0])}:" in lab.hosts[TCP.host].logs()


def check_names_resolve_in_own_lab(lab: Lab, elsewhere: Lab) -> None:
    resolved = lab.client().run("getent", "hosts", TCP.host).stdout.split()[:1]
    assert resolved == [lab.address(TCP.host)]
    assert resolved != [elsewhere.address(TCP.host)]


def check_other_lab_unreachable(lab: Lab, elsewhere: Lab) -> None:
    """A connect to the other lab's tcp server fails; the same probe reaches its own."""
    own, foreign = lab.address(TCP.host), elsewhere.address(TCP.host)
    results = lab.client().connect_results(TCP.main_port, own, foreign, timeout=CONNECT_TIMEOUT)
    assert results[own] == "connected", results
    assert results[foreign] != "connected", results
