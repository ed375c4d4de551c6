"""make watch against live hosts: its numbers are the kernel's, not the lab's configuration.

The watcher runs as ``make watch ONCE=1 FORMAT=json`` does (``python3 -m
socklab.watch --once --format json``), on this machine, over the test
worker's own hosts (selected by the run's labels); one test runs it as on a
lab VM, from a container of the lab image. Each figure it shows is compared
with what a client did and with what the host's own ``ss`` says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from integration import harness
from integration.harness import Host, TestLab, wait_until
from socklab.registry import CLIENTS, VARIANTS

pytestmark = pytest.mark.integration

TCP, SELECT = VARIANTS["tcp"], VARIANTS["select"]


def labels(lab: TestLab) -> list[str]:
    return [f"{key}={lab.labels[key]}" for key in (harness.RUN_LABEL, harness.WORKER_LABEL)]


def watch_once(lab: TestLab) -> dict[str, Any]:
    """One snapshot of the worker's hosts, as ``make watch ONCE=1 FORMAT=json`` prints it."""
    argv = [sys.executable, "-m", "socklab.watch", "--once", "--format", "json"]
    for label in labels(lab):
        argv += ["--label", label]
    env = {**os.environ, "PYTHONPATH": str(harness.ROOT / "services")}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def host_of(snapshot: dict[str, Any], host: Host) -> dict[str, Any]:
    """The view of ``host`` (by its container: spares share a host name)."""
    found = [v for v in snapshot["hosts"].values() if v["container"] == host.name]
    assert found, (host.name, sorted(snapshot["hosts"]))
    return dict(found[0])


# Inside a host: the most descriptors any of its processes holds.
COUNT_FDS = """
import os
counts = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        counts.append(len(os.listdir(f"/proc/{pid}/fd")))
    except OSError:
        pass
print(max(counts))
"""


def hold(client: Host, target: str, port: int, count: int, state: str) -> dict[str, Any]:
    """``count`` connections from ``client`` to ``target`` held open; what the holder saw."""
    client.container.exec_run(
        ["python3", "-m", "socklab.loadgen.load", "hold", "--host", target, "--port",
         str(port), "--count", str(count), "--state", state, "--max-seconds", "120"],
        detach=True)
    assert wait_until(lambda: client.run("test", "-s", state).exit_code == 0, 60)
    return dict(json.loads(client.read(state)))


def release(client: Host, state: dict[str, Any]) -> None:
    client.run("kill", "-TERM", str(state["pid"]))


def test_one_served_and_five_waiting_show_as_five_queued(lab: TestLab) -> None:
    """tcp-server listens with listen(5) and serves one client at a time."""
    server, client = lab.hosts_up(TCP.host, CLIENTS[0])
    held = hold(client, TCP.host, TCP.main_port, 6, "/tmp/watch-tcp.json")
    try:
        assert held["open"] == 6
        kernel_says = server.run("ss", "-Hlnt", "sport", "=", f":{TCP.main_port}").stdout.split()

        def listener() -> dict[str, Any]:
            view = host_of(watch_once(lab), server)
            return dict(next(entry for entry in view["listeners"]
                             if entry["port"] == TCP.main_port))

        # The server may take a moment to accept the first of the six.
        assert wait_until(lambda: listener()["queued"] == 5, 10), listener()
        found = listener()
        assert (found["queued"], found["limit"]) == (5, 5)  # min(backlog 5, somaxconn 128)
        assert kernel_says[1:3] == ["5", "5"]  # ss's Recv-Q and Send-Q, seen inside
        view = host_of(watch_once(lab), server)
        established = server.run("ss", "-Htn", "state", "established").stdout.splitlines()
        assert view["states"]["ESTABLISHED"] == len(established) >= 6 and view["process"]
    finally:
        release(client, held)


def test_time_wait_left_by_the_ports_probe_is_counted_on_the_client(lab: TestLab) -> None:
    low, high = 40100, 40109
    client = lab.start(CLIENTS[0], alias="client-watch-ports",
                       sysctls={"net.ipv4.ip_local_port_range": f"{low} {high}",
                                "net.ipv4.tcp_rfc1337": "1"})
    lab.hosts_up(VARIANTS["epoll"].host, VARIANTS["twisted"].host)
    try:
        result = client.probe("ports", "--close", "fin")
        left = result["first"]["connected"] + result["second"]["connected"]
        assert left == 2 * (high - low + 1)

        def time_wait() -> int:
            return len(client.run("ss", "-Htan", "state", "time-wait").stdout.splitlines())

        wait_until(lambda: time_wait() >= left, 10)  # a server's FIN may come a moment later
        view = host_of(watch_once(lab), client)
        assert view["role"] == "client"
        assert view["states"]["TIME_WAIT"] == time_wait() == left
        assert view["ports"] == {"in_use": high - low + 1, "first": low, "last": high,
                                 "size": high - low + 1}
    finally:
        lab.remove(client)


def test_select_servers_descriptors_stop_near_1024(lab: TestLab) -> None:
    server, client = lab.hosts_up(SELECT.host, CLIENTS[0])
    held = hold(client, SELECT.host, SELECT.main_port, 1100, "/tmp/watch-select.json")
    try:
        assert held["open"] == 1100  # the kernel accepts them all; select refuses past 1023

        def fds() -> int:
            return int(host_of(watch_once(lab), server)["fds"])

        wait_until(lambda: fds() >= 1000, 20)
        view = host_of(watch_once(lab), server)
        assert 1000 <= view["fds"] <= 1024, view
        assert view["nofile"] == 4096  # the limit is not what stops it
        inside = server.run("python3", "-c", COUNT_FDS)
        assert abs(int(inside.stdout) - view["fds"]) <= 5, inside.stdout
    finally:
        release(client, held)


def test_from_a_container_of_the_lab_image_as_on_a_lab_vm(
        lab: TestLab, lab_image: str, docker_client: docker.DockerClient) -> None:
    """No socklab on the machine: the image's own copy, the engine's socket, the host's PIDs."""
    server = lab.host(TCP.host)
    argv = ["python3", "-m", "socklab.watch", "--once", "--format", "json"]
    for label in labels(lab):
        argv += ["--label", label]
    output = docker_client.containers.run(
        lab_image, argv, remove=True, user="root", pid_mode="host", network_mode="none",
        cap_drop=["ALL"], cap_add=["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"],
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"}},
        labels=lab.labels, read_only=True)
    snapshot = json.loads(output)
    view = host_of(snapshot, server)
    assert [entry["limit"] for entry in view["listeners"]
            if entry["port"] == TCP.main_port] == [5]
    assert view["fds"] and view["nofile"] and view["process"]["name"]


def test_the_page_in_a_real_browser_lists_the_hosts_and_moves_with_a_probe(
        lab: TestLab, tmp_path: Path) -> None:
    from chromium_devtools import Tab, kept_on_failure, start

    server, client = lab.hosts_up(VARIANTS["epoll"].host, CLIENTS[0])
    argv = [sys.executable, "-m", "socklab.watch", "--web", "--port", "0"]
    for label in labels(lab):
        argv += ["--label", label]
    env = {**os.environ, "PYTHONPATH": str(harness.ROOT / "services")}
    watcher = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    chromium = start(tmp_path / "chromium")
    held = None
    try:
        assert watcher.stderr is not None
        line = watcher.stderr.readline()
        url = line.split()[2]
        assert url.startswith("http://127.0.0.1:"), line
        tab = Tab(chromium).open()
        with kept_on_failure(tab, tmp_path):
            tab.goto(url)

            def established() -> int | None:
                value = tab.evaluate(
                    "(() => { const card = document.querySelector("
                    f"'section.host[data-container=\"{server.name}\"]');"
                    " if (!card) return null; const n = card.querySelector("
                    "'[data-state=ESTABLISHED]'); return n ? n.textContent : null; })()")
                return int(value.split()[-1].replace(",", "")) if value else None

            assert wait_until(lambda: established() is not None, 20)
            before = established()
            shown = tab.evaluate("[...document.querySelectorAll('section.host')]"
                                 ".map(card => card.dataset.container)")
            assert {server.name, client.name} <= set(shown), shown
            held = hold(client, server.alias, VARIANTS["epoll"].main_port, 200,
                        "/tmp/watch-page.json")
            assert wait_until(lambda: (established() or 0) >= 200, 20), established()
            assert before is not None and before < 200
            assert tab.evaluate("document.querySelectorAll('canvas').length") >= 2
            assert tab.problems() == []
    finally:
        if held:
            release(client, held)
        watcher.terminate()
        watcher.wait(10)
        left = chromium.close()
    assert left == []
