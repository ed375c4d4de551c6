"""What a server process may do, read from the live process, not from the config.

Every server runs as non-root (the exec server's supervisor is root with three
capabilities, and its commands run as ``runner``), with no capabilities it
does not need, ``no-new-privileges``, a read-only root file system and a
memory limit that is enforced.
"""

from __future__ import annotations

import pytest

from integration.harness import Host, TestLab
from socklab.registry import VARIANTS, server_hosts

SERVERS = server_hosts()

# Capability bits (linux/capability.h) of what the exec server's supervisor keeps.
CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_ADMIN = 5, 6, 7, 12
EXEC_CAPS = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)


def server_status(host: Host) -> dict[str, str]:
    """The /proc status fields of the server process (the ``socklab serve`` under tini)."""
    script = ("for d in /proc/[0-9]*; do "
              "case \"$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)\" in "
              "*'socklab serve'*) cat $d/status; exit;; esac; done")
    lines = host.run("sh", "-c", script).stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    assert fields, f"no socklab serve process on {host.alias}"
    return {k: v.strip() for k, v in fields.items()}


@pytest.mark.parametrize("service", SERVERS)
def test_server_process_has_no_privileges_it_does_not_need(lab: TestLab, service: str) -> None:
    server = lab.host(service)
    status = server_status(server)
    uids = status["Uid"].split()
    effective_caps = int(status["CapEff"], 16)
    assert status["NoNewPrivs"] == "1"
    if service == VARIANTS["exec"].host:
        assert uids == ["0"] * 4
        assert effective_caps == EXEC_CAPS, hex(effective_caps)
    else:
        assert "0" not in uids, uids
        assert effective_caps == 0, hex(effective_caps)
    assert int(status["CapBnd"], 16) & (1 << CAP_NET_ADMIN) == 0
    # Changing the network is refused, even to root in there.
    nft = server.run("nft", "list", "ruleset", user="root")
    assert nft.exit_code != 0 and "Operation not permitted" in nft.stderr + nft.stdout


@pytest.mark.parametrize("service", SERVERS)
def test_server_root_file_system_is_read_only(lab: TestLab, service: str) -> None:
    server = lab.host(service)
    for path in ("/usr/local/bin/socklab", "/opt/socklab/socklab/__init__.py", "/etc/passwd"):
        attempt = server.run("sh", "-c", f"echo x >> {path}", user="root")
        assert attempt.exit_code != 0 and "Read-only file system" in attempt.stderr, attempt
    # Scratch space is a small tmpfs; exec's commands and ftp's uploads have theirs.
    assert server.run("sh", "-c", "echo x > /tmp/scratch && cat /tmp/scratch").stdout == "x\n"


def test_memory_limit_is_enforced(lab: TestLab, client1: Host) -> None:
    """A process that wants more than the container's limit dies; the server serves on."""
    server = lab.start(VARIANTS["tcp"].host, alias="memory-hog")
    try:
        hog = server.run("python3", "-c", "hog = b'x' * (400 << 20)")  # touches every page
        assert hog.exit_code == 137 or "MemoryError" in hog.stderr, hog  # OOM-killed
        server.container.reload()
        assert server.container.attrs["State"]["Status"] == "running"
        echo = client1.check("echo", variant="tcp", host="memory-hog", size=100)
        assert echo["intact"]
    finally:
        lab.remove(server)
