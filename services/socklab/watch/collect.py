"""The watcher's reading of every host of a lab: one snapshot per call, cheap to repeat.

Once per host (and again when a host is recreated): its PID and host name
from the engine, a sock_diag socket made in its network namespace and its
settings (``socklab.watch.netns``), and, for a server, a thread following
its log. Every few seconds: the lab's container list (one API call) and
which processes belong to each container (``/proc/*/cgroup`` name it).
Every snapshot: one sock_diag dump per host and address family (IPv6 only
where ``sockstat6`` says there may be such sockets), its
``/proc/<pid>/net/snmp`` and ``netstat``, and its processes' ``stat``,
``status``, ``limits`` and descriptor counts. No ``docker exec``, no new
process.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from socklab.watch import diag, kernel, netns
from socklab.watch.engine import Engine, EngineError

# How often the container list and the processes of each container are read again.
DISCOVER_EVERY = 2.0
# Connection events kept per server (lines of its log with a peer in them).
EVENTS_KEPT = 8
EVENT_WORDS = (" accept ", " close ", " refuse ", " shed ", "accept failed", "first datagram",
               " listen ")


def is_event(line: str) -> bool:
    """A line of a server's log about a connection (``accept peer=…``, ``close peer=…``)."""
    padded = f" {line} "
    return any(word in padded for word in EVENT_WORDS)


def read_text(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def count_entries(path: str) -> int | None:
    try:
        return len(os.listdir(path))
    except OSError:
        return None


def container_pids(container_ids: Iterable[str], proc: str = "/proc") -> dict[str, list[int]]:
    """The processes of each container, from ``/proc/*/cgroup`` (its ID is in the path)."""
    wanted = {cid: [] for cid in container_ids}  # type: dict[str, list[int]]
    if not wanted:
        return wanted
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        text = read_text(f"{proc}/{entry}/cgroup")
        if not text:
            continue
        for cid, pids in wanted.items():
            if cid in text:
                pids.append(int(entry))
                break
    return wanted


def read_process(pid: int, proc: str = "/proc") -> kernel.Process | None:
    stat = read_text(f"{proc}/{pid}/stat")
    if stat is None:
        return None
    name, ticks = kernel.stat_fields(stat)
    status = read_text(f"{proc}/{pid}/status") or ""
    limits = read_text(f"{proc}/{pid}/limits") or ""
    return kernel.Process(pid, name, count_entries(f"{proc}/{pid}/fd"),
                          kernel.nofile_limit(limits), kernel.status_value(status, "Threads"),
                          kernel.status_value(status, "VmRSS"), ticks)


@dataclass
class Host:
    """One host of the lab, as the watcher keeps it between snapshots."""

    name: str
    container_id: str
    container: str
    role: str
    namespace: netns.Namespace
    pids: list[int] = field(default_factory=list)
    events: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=EVENTS_KEPT))
    totals: dict[str, int] | None = None
    ticks: int | None = None
    read_at: float = 0.0
    problem: str | None = None
    stopped: bool = False

    def stop(self) -> None:
        """The watcher no longer reads this host: its socket closed, its log left."""
        self.stopped = True
        with contextlib.suppress(OSError):
            self.namespace.diag.close()


class Collector:
    """Snapshots of the hosts of the running containers matching ``filters``."""

    def __init__(self, engine: Engine, filters: dict[str, list[str]], lab: str,
                 follow_logs: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.filters, self.lab = engine, filters, lab
        self.follow_logs, self.clock = follow_logs, clock
        self.hosts: dict[str, Host] = {}
        self.discovered_at = -DISCOVER_EVERY
        self.lock = threading.Lock()
        self.problem: str | None = None

    def discover(self) -> None:
        """Read the container list; enter the namespace of each host new or restarted.

        A container keeps its ID when it restarts (``restart: unless-stopped``)
        but not its process or network namespace: a known host whose
        namespace is no longer its process's is entered again. Two
        containers of one host name: the second is listed by its container
        name.
        """
        try:
            listed = self.engine.containers(self.filters)
        except EngineError as error:
            self.problem = str(error)
            return
        self.problem = None
        known = {h.container_id: h for h in self.hosts.values()}
        seen: dict[str, Host] = {}
        for summary in listed:
            cid = summary["Id"]
            host = known.get(cid)
            if host is None or not netns.still_in(host.namespace):
                try:
                    host = self._enter(cid, summary)
                except (EngineError, OSError) as error:
                    self.problem = f"{summary.get('Names', [cid])[0].lstrip('/')}: {error}"
                    continue
            if host.name in seen and seen[host.name] is not host:
                host.name = host.container
            seen[host.name] = host
        kept = {id(h) for h in seen.values()}
        for host in self.hosts.values():
            if id(host) not in kept:
                host.stop()
        pids = container_pids(h.container_id for h in seen.values())
        for host in seen.values():
            host.pids = pids.get(host.container_id, [])
        with self.lock:
            self.hosts = dict(sorted(seen.items()))

    def _enter(self, cid: str, summary: dict[str, Any]) -> Host:
        details = self.engine.inspect(cid)
        pid = int(details["State"]["Pid"])
        labels = summary.get("Labels") or {}
        role = labels.get("socklab.role", "host")
        host = Host(details["Config"]["Hostname"], cid, details["Name"].lstrip("/"),
                    role, netns.enter(pid))
        if self.follow_logs and role != "client":
            threading.Thread(target=self._follow, args=(host,), daemon=True,
                             name=f"log-{host.name}").start()
        return host

    def _follow(self, host: Host) -> None:
        with contextlib.suppress(EngineError, OSError):
            for line in self.engine.log_lines(host.container_id, tail=200):
                if host.stopped:  # replaced (its container restarted) or gone
                    return
                if is_event(line):
                    host.events.append(line)

    def read_host(self, host: Host, now: float) -> dict[str, Any]:
        pid = host.namespace.pid
        ipv6 = kernel.may_hold_ipv6(read_text(f"/proc/{pid}/net/sockstat"),
                                    read_text(f"/proc/{pid}/net/sockstat6"))
        try:
            sockets = diag.all_sockets(host.namespace.diag, ipv6)
        except OSError as error:
            self._reenter(host)
            return {"role": host.role, "container": host.container,
                    "problem": f"sock_diag: {error}"}
        files = {name: read_text(f"/proc/{pid}/net/{name}") for name in ("snmp", "netstat")}
        totals = kernel.counters(files)
        processes = [p for p in map(read_process, host.pids) if p is not None]
        ticks = sum(p.cpu_ticks for p in processes)
        seconds = now - host.read_at
        per_second = kernel.rates(totals, host.totals, seconds)
        cpu = None if host.ticks is None or seconds <= 0 else \
            max(0, ticks - host.ticks) / kernel.CLOCK_TICKS / seconds
        host.totals, host.ticks, host.read_at = totals, ticks, now
        view = kernel.host_view(role=host.role, sockets=sockets,
                                sysctls=host.namespace.sysctls, totals=totals,
                                per_second=per_second, processes=processes, cpu=cpu,
                                events=list(host.events))
        return {"container": host.container, **view}

    def _reenter(self, host: Host) -> None:
        """After a failed dump, a new sock_diag socket for the next refresh: a dump the
        kernel could not finish (ENOBUFS) keeps an old socket refusing every new one."""
        with contextlib.suppress(OSError):
            fresh = netns.enter(host.namespace.pid)
            old, host.namespace = host.namespace, fresh
            with contextlib.suppress(OSError):
                old.diag.close()

    def snapshot(self) -> dict[str, Any]:
        """Every host now: the schema of docs/watch.md."""
        now = self.clock()
        if now - self.discovered_at >= DISCOVER_EVERY:
            self.discover()
            self.discovered_at = now
        with self.lock:
            hosts = dict(self.hosts)
        return {"lab": self.lab, "time": time.time(), "problem": self.problem,
                "hosts": {name: self.read_host(host, now) for name, host in hosts.items()}}

    def close(self) -> None:
        for host in self.hosts.values():
            host.stop()
