"""What the kernel says of the server process, read from the host's /proc.

Readiness and the resource checks look at the submission from outside: which
addresses its network namespace listens on (``/proc/PID/net/tcp``, ``udp``
and their IPv6 twins), and how many threads and descriptors its process
holds and how much memory it has used (``/proc/PID/status``, ``/proc/PID/fd``).
Reading from the host costs the container nothing and works when the
server's ``pids`` limit is exhausted (a fork bomb leaves no room for an
``exec``). The parsers are pure and unit-tested.

Every reader takes where its files come from (``read``, ``count``): this
machine's /proc by default, or a snapshot of a remote engine's machine
(socklab.host.grade.procwatch) when the lab runs on a worker VM.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from socklab.host.containers import Reader, first_child, read_host_file, stat_value

# How many entries a directory holds (a process's fd/), None when it is unreadable.
Counter = Callable[[str], "int | None"]

# TCP states in /proc/net/tcp: 0A is LISTEN. UDP sockets: 07 (CLOSE) when bound, unconnected.
LISTEN = "0A"
UDP_BOUND = "07"


def _address(hex_address: str) -> tuple[str, int]:
    """``0100007F:2328`` (or a 32-digit IPv6 one) as (address, port)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = ".".join(str(b) for b in raw[::-1])
    else:  # four little-endian 32-bit words
        words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
        flat = b"".join(words)
        if flat[:12] == b"\0" * 10 + b"\xff\xff":
            address = "::ffff:" + ".".join(str(b) for b in flat[12:])
        else:
            address = ":".join(flat[i:i + 2].hex() for i in range(0, 16, 2))
    return address, int(port, 16)


def bound(table: str, port: int, state: str) -> list[str]:
    """The local addresses in a /proc/net table on ``port`` in ``state``."""
    found = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == state:
            address, local_port = _address(fields[1])
            if local_port == port:
                found.append(address)
    return found


LOOPBACK = ("127.", "::1", "0000:0000:0000:0000:0000:0000:0000:0001", "::ffff:127.")
ANY = ("0.0.0.0", "0000:0000:0000:0000:0000:0000:0000:0000")


def reachable(addresses: list[str]) -> bool:
    """Whether a listener on these addresses answers other hosts (not loopback only)."""
    return any(not a.startswith(LOOPBACK) for a in addresses)


@dataclass(frozen=True)
class Listening:
    """Where the server's namespace listens on one port."""

    port: int
    addresses: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return reachable(list(self.addresses))

    @property
    def loopback_only(self) -> bool:
        return bool(self.addresses) and not self.ready


def net_tables(transport: str) -> tuple[str, str]:
    return transport, transport + "6"


def listening(pid: int | str, port: int, transport: str,
              read: Reader = read_host_file) -> Listening:
    """Where process ``pid``'s network namespace listens (tcp) or is bound (udp) on ``port``."""
    state = LISTEN if transport == "tcp" else UDP_BOUND
    found: list[str] = []
    for table in net_tables(transport):
        text = read(f"/proc/{pid}/net/{table}")
        if text:
            found += bound(text, port, state)
    return Listening(port, tuple(found))


@dataclass(frozen=True)
class Sample:
    """One look at the server process: threads, open descriptors, memory now and at most."""

    pid: int
    threads: int
    fds: int
    rss: int
    hwm: int


def count_entries(path: str) -> int | None:
    try:
        return len(os.listdir(path))
    except OSError:
        return None


def sample(init_pid: int, read: Reader = read_host_file,
           count: Counter = count_entries) -> Sample | None:
    """The server (tini's first child) of a container whose init is ``init_pid``; None if gone."""
    pid = first_child(init_pid, read)
    if pid is None:
        return None
    status = read(f"/proc/{pid}/status")
    fds = count(f"/proc/{pid}/fd")
    if status is None or fds is None:
        return None
    return Sample(int(pid), stat_value(status, "Threads"), fds,
                  stat_value(status, "VmRSS") * 1024, stat_value(status, "VmHWM") * 1024)
