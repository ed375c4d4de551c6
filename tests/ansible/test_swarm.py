"""The lab across VMs: the test VMs' swarm, the stack's placement, traffic that crosses VMs.

site.yml (roles/swarm, roles/socklab stack.yml) formed a swarm of the test
VMs and deployed the stack ``socklab``: servers on the workers, clients on
the manager. Each check reads the live swarm (nodes, tasks, the servers' own
logs) through the Docker SDK over ssh://.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from swarm_lab import CLIENTS, PROTOCOLS, SERVERS, STACK, placement, run_suite, swarm_target

from integration.harness import SwarmLab, wait_until
from socklab.host import vm_image, vms
from socklab.host.stack import network_name
from socklab.registry import CLIENTS as CLIENT_HOSTS
from socklab.registry import VARIANTS

TCP = VARIANTS["tcp"]
CLIENT = CLIENT_HOSTS[0]

STACK_WAIT = 180.0
OTHER_STACK = "socklab-b"  # the second learner's stack of the test converge (conftest)


@pytest.fixture
def swarm_lab(manager_url: str, ssh_home: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[SwarmLab]:
    monkeypatch.setenv("HOME", str(ssh_home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    lab = SwarmLab(manager_url, STACK, os.environ["SOCKLAB_TEST_RUN"], "swarm-checks")
    yield lab
    lab.close()


def test_every_vm_is_a_ready_node_with_its_role_and_placement_label(
        manager: docker.DockerClient, vm_list: list[vms.Vm]) -> None:
    nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in manager.nodes.list()}
    assert sorted(nodes) == sorted(vm.name for vm in vm_list)
    for index, vm in enumerate(vm_list):
        node = nodes[vm.name]
        role, label = ("manager", "clients") if index == 0 else ("worker", "servers")
        assert (node["Spec"]["Role"], node["Status"]["State"]) == (role, "ready"), vm.name
        assert node["Spec"]["Labels"] == {f"socklab.{label}": "true"}, vm.name
        assert node["Status"]["Addr"] == vm.address


def test_stack_runs_every_service_with_servers_and_clients_on_different_vms(
        manager: docker.DockerClient, record_property: pytest.RecordProperty) -> None:
    wait_until(lambda: set(placement(manager)) == set(SERVERS + CLIENTS), STACK_WAIT, 2.0)
    placed = placement(manager)
    assert set(placed) == set(SERVERS + CLIENTS)
    server_nodes = {placed[s] for s in SERVERS}
    client_nodes = {placed[c] for c in CLIENTS}
    assert client_nodes == {"vm-1"}
    assert server_nodes and not server_nodes & client_nodes
    record_property("figures", {"placement": placed})


def test_an_exchange_crosses_vms_and_the_server_sees_the_clients_overlay_address(
        swarm_lab: SwarmLab, record_property: pytest.RecordProperty) -> None:
    client, server = swarm_lab.hosts_up(CLIENT, TCP.host)
    client_node, _ = swarm_lab.task_placement(CLIENT)
    server_node, _ = swarm_lab.task_placement(TCP.host)
    assert client_node != server_node

    result = client.check("echo", variant="tcp", size=4096)
    assert result["intact"] and result["received"] == 4096

    client.container.reload()
    networks = client.container.attrs["NetworkSettings"]["Networks"]
    overlay = networks[network_name(STACK)]["IPAddress"]
    resolved = client.run("getent", "hosts", TCP.host).stdout.split()[0]
    assert resolved == server.address()  # dnsrr: the name is the server task's own address
    assert wait_until(lambda: f"accept peer={overlay}:" in server.logs(), 10)
    record_property("figures", {"client_overlay": overlay, "server_overlay": resolved})


def test_a_second_learners_stack_is_a_lab_of_its_own(
        swarm_lab: SwarmLab, manager_url: str, record_property: pytest.RecordProperty) -> None:
    """socklab_stacks: [socklab, socklab-b]: same host names, networks that never meet."""
    other = SwarmLab(manager_url, OTHER_STACK, os.environ["SOCKLAB_TEST_RUN"], "swarm-b")
    try:
        mine, own_server = swarm_lab.hosts_up(CLIENT, TCP.host)
        theirs, their_server = other.hosts_up(CLIENT, TCP.host)
        assert their_server.address() != own_server.address()
        for client, server in ((mine, own_server), (theirs, their_server)):
            assert client.run("getent", "hosts", TCP.host).stdout.split()[:1] == \
                [server.address()]
            assert client.check("echo", variant="tcp")["intact"]
        # The lab's network is internal: no default route, so a packet for any
        # other address fails here and never leaves the client (it must not:
        # outside this machine something may answer any address).
        routes = mine.run("ip", "-4", "route").stdout.splitlines()
        assert routes and not [r for r in routes if r.startswith("default")], routes
        results = mine.connect_results(TCP.main_port, own_server.address(),
                                       their_server.address(), timeout=3.0)
        assert results[own_server.address()] == "connected", results
        assert results[their_server.address()] == "OSError", results  # ENETUNREACH
        record_property("figures", {"other_stack": results, "client_routes": routes})
    finally:
        other.close()


def test_integration_suite_passes_from_a_client_vm_to_server_vms(
        manager_url: str, ssh_home: Path, record_property: pytest.RecordProperty) -> None:
    run_id = f"{os.environ['SOCKLAB_TEST_RUN']}-swarm"
    suite = run_suite(swarm_target(manager_url), ssh_home, run_id, "swarm-suite.log")
    assert suite.returncode == 0, suite.output[-6000:]
    assert suite.counts.get("passed", 0) >= 20 and not suite.counts.get("failed")
    record_property("figures", {"swarm_suite": suite.counts})


def test_integration_suite_runs_on_a_remote_engine_over_ssh(
        vm_list: list[vms.Vm], ssh_home: Path, lab_tag: str, converged: object,
        record_property: pytest.RecordProperty) -> None:
    """DOCKER_HOST=ssh://: the suite starts its own hosts on a VM's engine, as it does locally."""
    target = {"DOCKER_HOST": f"ssh://{vm_image.VM_USER}@{vm_list[-1].address}",
              "SOCKLAB_IMAGE": lab_tag}
    suite = run_suite(target, ssh_home, f"{os.environ['SOCKLAB_TEST_RUN']}-remote",
                      "remote-engine-suite.log", [PROTOCOLS, "-k", "udp or exec or tcp_serves"])
    assert suite.returncode == 0, suite.output[-6000:]
    assert suite.counts.get("passed", 0) >= 5 and not suite.counts.get("failed")
    record_property("figures", {"remote_engine_suite": suite.counts})
