"""The tutorial's own clients work against the lab's servers unchanged."""

from __future__ import annotations

import json
import shlex

import pytest

from integration import tutorial_clients
from integration.harness import Host, TestLab


def run_tutorial_client(host: Host, program: str, server: str, port: int,
                        lines: list[str]) -> str:
    """Run ``program`` on ``host`` with ``lines`` typed at its prompt; return what it printed."""
    typed = "".join(f"{line}\n" for line in [*lines, "exit"])
    script = (f"printf %s {shlex.quote(typed)} | python3 -c {shlex.quote(program)} "
              f"{server} {port}")
    result = host.run("sh", "-c", script, timeout=60)
    assert result.exit_code == 0, f"tutorial client failed:\n{result.stderr}{result.stdout}"
    return result.stdout


@pytest.mark.parametrize(("server", "port", "expected"), [
    ("tcp-server", 9000, "HELLO LAB"),
    ("twisted-server", 8000, "hello lab"),
])
def test_tutorial_tcp_client(lab: TestLab, client1: Host, server: str, port: int,
                             expected: str) -> None:
    lab.host(server)
    out = run_tutorial_client(client1, tutorial_clients.TCP, server, port, ["hello lab"])
    assert expected in out


def test_tutorial_udp_client(lab: TestLab, client1: Host) -> None:
    lab.host("udp-server")
    out = run_tutorial_client(client1, tutorial_clients.UDP, "udp-server", 9999, ["a", "b"])
    assert out.count("b'ok'") == 2


@pytest.mark.parametrize("server", ["select-server", "epoll-server"])
def test_tutorial_select_client(lab: TestLab, client1: Host, server: str) -> None:
    lab.host(server)
    out = run_tutorial_client(client1, tutorial_clients.SELECT, server, 9000, ["abc"])
    assert "b'hello'" in out and "b'ABC'" in out


def test_tutorial_call_centre_client(lab: TestLab, client1: Host) -> None:
    lab.host("exec-server")
    out = run_tutorial_client(client1, tutorial_clients.CALL_CENTRE, "exec-server", 9000,
                              ["echo from-the-lab", "true"])
    assert "Welcome" in out and "from-the-lab" in out
    assert "current directory is /srv/exec" in out


def test_tutorial_handshake_client_never_hangs(lab: TestLab, client1: Host) -> None:
    lab.host("exec-server")
    out = run_tutorial_client(client1, tutorial_clients.HANDSHAKE, "exec-server", 9001,
                              ["true", "seq 1 3000", "ls /nonexistent"])
    assert "message size 0 recv size 0" in out  # empty output still gets a Ready header
    assert "message size 13893 recv size 13893" in out
    assert "No such file or directory" in out  # stderr when stdout is empty


@pytest.mark.parametrize("lines", [0, 1, 100000])
def test_tutorial_ftp_client_uploads(lab: TestLab, client1: Host, lines: int) -> None:
    server = lab.host("ftp-server")
    name = f"tutorial-upload-{lines}.txt"
    client1.run("sh", "-c", f"seq 1 {lines} > /tmp/{name}")
    out = run_tutorial_client(client1, tutorial_clients.FTP, "ftp-server", 9000,
                              [f"put /tmp/{name}"])
    final = json.loads(out.split(">>>:")[1])  # an empty file too: 200 and 201 not glued
    assert final["status"] == 201
    local = client1.run("sha256sum", f"/tmp/{name}").stdout.split()[0]
    stored = server.run("sha256sum", f"/srv/uploads/{name}").stdout.split()[0]
    assert final["sha256"] == local == stored
