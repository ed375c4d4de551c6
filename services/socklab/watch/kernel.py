"""What one host's kernel says, as the watcher shows it: pure functions, no I/O.

From the sockets of a network namespace (``socklab.watch.diag``), its
counters (``/proc/<pid>/net/snmp`` and ``netstat``), its settings and its
processes' ``/proc`` files, build one host's part of a snapshot (the schema
is in docs/watch.md). Counters are totals since the namespace was made;
``rates`` turns two readings into changes per second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from socklab.watch.diag import Socket

# The connection states shown, in the order a connection goes through them.
STATES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
          "CLOSE_WAIT", "LAST_ACK", "CLOSING")
# The counters shown, (file, section, name): netstat's TcpExt, snmp's Tcp and Udp.
COUNTERS = (("netstat", "TcpExt", "ListenOverflows"), ("netstat", "TcpExt", "ListenDrops"),
            ("snmp", "Tcp", "RetransSegs"), ("netstat", "TcpExt", "TCPTimeouts"),
            ("netstat", "TcpExt", "TCPAbortOnOverflow"), ("snmp", "Udp", "InErrors"),
            ("snmp", "Udp", "RcvbufErrors"))
CLOCK_TICKS = 100  # USER_HZ: /proc/<pid>/stat counts CPU time in these


def counter_name(section: str, name: str) -> str:
    """``ListenOverflows``, but ``UdpInErrors`` where a name alone would be ambiguous."""
    return f"{section}{name}" if section == "Udp" else name


def parse_counters(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` or ``netstat``: pairs of lines, names then values, per section."""
    sections: dict[str, dict[str, int]] = {}
    lines = [line.split() for line in text.splitlines() if ":" in line]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if not names or names[0] != values[0]:
            continue
        section = names[0].rstrip(":")
        row = sections.setdefault(section, {})
        for name, value in zip(names[1:], values[1:], strict=False):
            try:
                row[name] = int(value)
            except ValueError:
                continue
    return sections


def counters(files: Mapping[str, str | None]) -> dict[str, int]:
    """The shown counters' totals from the ``snmp`` and ``netstat`` files' texts."""
    parsed = {name: parse_counters(text or "") for name, text in files.items()}
    return {counter_name(section, name): parsed.get(file, {}).get(section, {}).get(name, 0)
            for file, section, name in COUNTERS}


def sockstat_value(text: str | None, protocol: str, key: str) -> int | None:
    """A number of ``/proc/net/sockstat`` or ``sockstat6`` (``TCP6: inuse 0``)."""
    for line in (text or "").splitlines():
        name, _, rest = line.partition(":")
        if name == protocol:
            fields = rest.split()
            for field_name, value in zip(fields[::2], fields[1::2], strict=False):
                if field_name == key:
                    return int(value)
    return None


def may_hold_ipv6(sockstat: str | None, sockstat6: str | None) -> bool:
    """Whether a namespace may have IPv6 TCP sockets: in use, or in TIME_WAIT (counted
    with the IPv4 ones); True when the files do not say.

    Each sock_diag dump walks the kernel's whole established-socket table (one
    for every namespace), about a millisecond here: skipping the IPv6 dump
    where there is nothing to find halves the watcher's cost.
    """
    inuse = sockstat_value(sockstat6, "TCP6", "inuse")
    waiting = sockstat_value(sockstat, "TCP", "tw")
    return inuse is None or waiting is None or inuse > 0 or waiting > 0


def rates(now: Mapping[str, int], before: Mapping[str, int] | None,
          seconds: float) -> dict[str, float]:
    """Change per second of each counter since ``before`` (0 without a reading before)."""
    if not before or seconds <= 0:
        return {name: 0.0 for name in now}
    return {name: max(0, value - before.get(name, value)) / seconds
            for name, value in now.items()}


# The engine's DNS server for a user-defined network listens in every container's
# namespace on this address (a random TCP port): the engine's, not the host's.
ENGINE_DNS = "127.0.0.11"


def listeners(sockets: Iterable[Socket]) -> list[dict[str, int]]:
    """Each listening port: its accept queue now, the queue's limit, its half-open count.

    A port listened on over IPv4 and IPv6 (two sockets) is listed once per
    socket, and each half-open connection is counted once, at the listener
    that will accept it (``half_open_owner``); the engine's DNS listener is
    left out.
    """
    sockets = list(sockets)
    listening = [s for s in sockets if s.state == "LISTEN" and s.local_address != ENGINE_DNS]
    half_open = Counter(half_open_owner(s, listening) for s in sockets if s.state == "SYN_RECV")
    return sorted(({"port": s.local_port, "queued": s.rqueue, "limit": s.wqueue,
                    "syn_recv": half_open.get(index, 0)} for index, s in enumerate(listening)),
                  key=lambda listener: listener["port"])


WILDCARDS = ("0.0.0.0", "::")


def half_open_owner(half_open: Socket, listening: list[Socket]) -> int | None:
    """The index in ``listening`` of the listener a half-open connection belongs to: of
    the listeners on its port and its address (or every address), the same family
    before the other (an IPv6 listener also takes IPv4 clients), its own address before
    a wildcard; None when no listener can take it."""
    candidates = [i for i, s in enumerate(listening) if s.local_port == half_open.local_port
                  and s.local_address in (half_open.local_address, *WILDCARDS)]
    if not candidates:
        return None
    return min(candidates, key=lambda i: (listening[i].family != half_open.family,
                                          listening[i].local_address != half_open.local_address))


def states(sockets: Iterable[Socket]) -> dict[str, int]:
    """How many connections are in each state (every state named, zeros too)."""
    counted = Counter(s.state for s in sockets)
    return {state: counted.get(state, 0) for state in STATES}


def port_range(setting: str | None) -> tuple[int, int] | None:
    """``net.ipv4.ip_local_port_range`` ("32768\\t60999") as (first, last)."""
    try:
        first, last = (int(part) for part in (setting or "").split())
    except ValueError:
        return None
    return first, last


def ports_in_use(sockets: Iterable[Socket], span: tuple[int, int] | None) -> dict[str, Any]:
    """Local ports of the ephemeral range held by a connection (any state but LISTEN)."""
    if span is None:
        return {"in_use": None, "first": None, "last": None, "size": None}
    first, last = span
    used = {s.local_port for s in sockets
            if s.state != "LISTEN" and first <= s.local_port <= last}
    return {"in_use": len(used), "first": first, "last": last, "size": last - first + 1}


@dataclass(frozen=True)
class Process:
    """One process of a container, as its ``/proc/<pid>`` files say."""

    pid: int
    name: str
    fds: int | None
    nofile: int | None
    threads: int | None
    rss: int | None  # bytes
    cpu_ticks: int  # user + system time, in CLOCK_TICKS


def status_value(status: str, key: str) -> int | None:
    """A number of ``/proc/<pid>/status`` (``VmRSS:   1234 kB`` in bytes)."""
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            parts = rest.split()
            if not parts:
                return None
            value = int(parts[0])
            return value * 1024 if parts[1:2] == ["kB"] else value
    return None


def nofile_limit(limits: str) -> int | None:
    """The soft ``Max open files`` of ``/proc/<pid>/limits``."""
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return None if soft == "unlimited" else int(soft)
    return None


def stat_fields(stat: str) -> tuple[str, int]:
    """(name, user + system ticks) of ``/proc/<pid>/stat`` (the name may hold spaces)."""
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return name, int(fields[11]) + int(fields[12])


def main_process(processes: Iterable[Process]) -> Process | None:
    """The process a host is about: the one holding the most descriptors (the server)."""
    return max(processes, key=lambda p: (p.fds or 0, -p.pid), default=None)


def host_view(*, role: str, sockets: list[Socket], sysctls: Mapping[str, str],
              totals: dict[str, int], per_second: dict[str, float],
              processes: list[Process], cpu: float | None,
              events: list[str]) -> dict[str, Any]:
    """One host's part of a snapshot."""
    main = main_process(processes)
    return {
        "role": role,
        "listeners": listeners(sockets),
        "states": states(sockets),
        "fds": main.fds if main else None,
        "nofile": main.nofile if main else None,
        "threads": main.threads if main else None,
        "rss": main.rss if main else None,
        "process": {"pid": main.pid, "name": main.name} if main else None,
        "cpu": None if cpu is None else round(cpu, 3),
        "ports": ports_in_use(sockets, port_range(sysctls.get("net/ipv4/ip_local_port_range"))),
        "somaxconn": int(sysctls["net/core/somaxconn"])
        if sysctls.get("net/core/somaxconn", "").isdigit() else None,
        "counters": {name: {"total": totals[name], "per_second": round(per_second[name], 2)}
                     for name in totals},
        "events": events,
    }
