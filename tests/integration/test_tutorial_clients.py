"""The tutorial's own clients work against the lab's servers unchanged.

The clients are the tutorial's text (tutorial_clients.py); where they connect
and what the servers answer come from socklab.registry.
"""

from __future__ import annotations

import json
import shlex

import pytest

from integration import tutorial_clients
from integration.harness import Host, TestLab
from socklab.registry import ECHO_VARIANTS, VARIANTS

EXEC, FTP, UDP = VARIANTS["exec"], VARIANTS["ftp"], VARIANTS["udp"]
# The tutorial's plain TCP client reads no greeting; its select client reads one.
PLAIN_ECHO = [name for name in ECHO_VARIANTS if not VARIANTS[name].greeting]
GREETING_ECHO = [name for name in ECHO_VARIANTS if VARIANTS[name].greeting]


def run_tutorial_client(host: Host, program: str, server: str, port: int,
                        lines: list[str]) -> str:
    """Run ``program`` on ``host`` with ``lines`` typed at its prompt; return what it printed."""
    typed = "".join(f"{line}\n" for line in [*lines, "exit"])
    script = (f"printf %s {shlex.quote(typed)} | python3 -c {shlex.quote(program)} "
              f"{server} {port}")
    result = host.run("sh", "-c", script, timeout=60)
    assert result.exit_code == 0, f"tutorial client failed:\n{result.stderr}{result.stdout}"
    return result.stdout


def test_tutorial_variants_are_there() -> None:
    assert PLAIN_ECHO and GREETING_ECHO


@pytest.mark.parametrize("variant", PLAIN_ECHO)
def test_tutorial_tcp_client(lab: TestLab, client1: Host, variant: str) -> None:
    server = VARIANTS[variant]
    lab.host(server.host)
    out = run_tutorial_client(client1, tutorial_clients.TCP, server.host, server.main_port,
                              ["hello lab"])
    assert server.transform(b"hello lab").decode() in out


def test_tutorial_udp_client(lab: TestLab, client1: Host) -> None:
    lab.host(UDP.host)
    out = run_tutorial_client(client1, tutorial_clients.UDP, UDP.host, UDP.main_port,
                              ["a", "b"])
    assert out.count(repr(UDP.transform(b"b"))) == 2


@pytest.mark.parametrize("variant", GREETING_ECHO)
def test_tutorial_select_client(lab: TestLab, client1: Host, variant: str) -> None:
    server = VARIANTS[variant]
    lab.host(server.host)
    out = run_tutorial_client(client1, tutorial_clients.SELECT, server.host, server.main_port,
                              ["abc"])
    assert repr(server.greeting) in out and repr(server.transform(b"abc")) in out


def test_tutorial_call_centre_client(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    out = run_tutorial_client(client1, tutorial_clients.CALL_CENTRE, EXEC.host,
                              EXEC.port("naive"), ["echo from-the-lab", "true"])
    assert EXEC.banner("naive").decode() in out and "from-the-lab" in out
    assert "current directory is /srv/exec" in out


def test_tutorial_handshake_client_never_hangs(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    out = run_tutorial_client(client1, tutorial_clients.HANDSHAKE, EXEC.host,
                              EXEC.port("handshake"), ["true", "seq 1 3000", "ls /nonexistent"])
    assert "message size 0 recv size 0" in out  # empty output still gets a Ready header
    assert "message size 13893 recv size 13893" in out
    assert "No such file or directory" in out  # stderr when stdout is empty


@pytest.mark.parametrize("lines", [0, 1, 100000])
def test_tutorial_ftp_client_uploads(lab: TestLab, client1: Host, lines: int) -> None:
    server = lab.host(FTP.host)
    name = f"tutorial-upload-{lines}.txt"
    client1.run("sh", "-c", f"seq 1 {lines} > /tmp/{name}")
    out = run_tutorial_client(client1, tutorial_clients.FTP, FTP.host, FTP.main_port,
                              [f"put /tmp/{name}"])
    final = json.loads(out.split(">>>:")[1])  # an empty file too: 200 and 201 not glued
    assert final["status"] == 201
    local = client1.run("sha256sum", f"/tmp/{name}").stdout.split()[0]
    stored = server.run("sha256sum", f"/srv/uploads/{name}").stdout.split()[0]
    assert final["sha256"] == local == stored
