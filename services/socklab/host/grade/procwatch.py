"""The server's /proc on a worker VM, read there by one small container per server.

On this machine the grader reads a submission's /proc itself (procfs). When
the grading lab runs on another engine (a swarm worker, ``ssh://``), that
/proc is on the worker: one reader container per server container is
started there beside it, with the worker's PID namespace (``pid_mode=host``),
``CAP_SYS_PTRACE`` and ``CAP_DAC_READ_SEARCH`` alone (to list another user's
``/proc/PID/fd``), no network, a read-only root and a few processes. It
prints one JSON line per
``INTERVAL``: the files procfs reads (the listening sockets of the server's
namespace, its ``status`` lines, its descriptor count), which the host
follows through one log stream. Nothing is executed in the server's own
container, so a server at its ``pids`` limit is read as well.

The script is standard library only and is passed on the command line: the
lab image carries no host-side code.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from socklab.host.grade import procfs

INTERVAL = 0.05
# How long a caller waits for a reading newer than its call.
FRESH_TIMEOUT = 2.0
SERVER = "{server}"
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "1m", "max-file": "2"}}

# argv: the container's init PID, the interval, then paths with {server} for the
# server's PID (its init's first child); a path ending in /fd is counted, not read.
# Net tables are cut to their listening and bound sockets, status to three lines:
# a table of 300 connections is 40 KB, and 20 of them a second would cross ssh.
WATCH_SCRIPT = r"""
import json, os, sys, time
init, interval, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
KEEP = ("Threads", "VmRSS", "VmHWM")
def read(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    if "/net/" in path:
        lines = text.splitlines(True)
        return "".join(lines[:1] + [l for l in lines[1:] if l.split()[3:4] in (["0A"], ["07"])])
    if path.endswith("/status"):
        return "".join(l for l in text.splitlines(True) if l.split(":")[0] in KEEP)
    return text
def count(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return None
children_path = "/proc/%s/task/%s/children" % (init, init)
seq = 0
while os.path.exists("/proc/" + init):
    children = read(children_path)
    server = (children or "").split()[:1]
    files, counts = {children_path: children}, {}
    for path in paths if server else ():
        path = path.replace("{server}", server[0])
        if path.endswith("/fd"):
            counts[path] = count(path)
        else:
            files[path] = read(path)
    seq += 1
    print(json.dumps({"seq": seq, "files": files, "counts": counts}), flush=True)
    time.sleep(interval)
"""


def watched_paths(transport: str) -> list[str]:
    """The server's files the checks read (procfs.listening, procfs.sample)."""
    return ([f"/proc/{SERVER}/net/{table}" for table in procfs.net_tables(transport)]
            + [f"/proc/{SERVER}/status", f"/proc/{SERVER}/fd"])


@dataclass(frozen=True)
class Snapshot:
    """One reading of the reader: what procfs's ``read`` and ``count`` return."""

    seq: int = 0
    files: dict[str, str | None] = field(default_factory=dict)
    counts: dict[str, int | None] = field(default_factory=dict)

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def count(self, path: str) -> int | None:
        return self.counts.get(path)


def parse_lines(chunks: Iterator[bytes]) -> Iterator[Snapshot]:
    """Snapshots from a log stream's chunks (a line may come in pieces); others skipped."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                data = json.loads(line)
                yield Snapshot(int(data["seq"]), dict(data["files"]), dict(data["counts"]))
            except (ValueError, KeyError, TypeError):
                continue


def reader_spec(init_pid: int, transport: str) -> dict[str, Any]:
    """The reader container's settings (docker-py ``containers.run`` keywords)."""
    return {"command": ["python3", "-c", WATCH_SCRIPT, str(init_pid), str(INTERVAL),
                        *watched_paths(transport)],
            "pid_mode": "host", "network_mode": "none", "user": "root",
            "cap_drop": ["ALL"], "cap_add": ["SYS_PTRACE", "DAC_READ_SEARCH"], "read_only": True,
            "pids_limit": 8, "mem_limit": "64m", "security_opt": ["no-new-privileges"],
            "log_config": LOG_CONFIG, "detach": True}


class ProcWatch:
    """A reader container following one server container; the latest reading on demand."""

    def __init__(self, engine: Any, image: str, init_pid: int, transport: str, *,
                 name: str, labels: dict[str, str]) -> None:
        self.container = engine.containers.run(image, name=name, labels=labels,
                                               **reader_spec(init_pid, transport))
        self.latest = Snapshot()
        self.ended = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._follow, daemon=True,
                                       name=f"procwatch-{name}")
        self.thread.start()

    def _follow(self) -> None:
        try:
            for snapshot in parse_lines(self.container.logs(stream=True, follow=True)):
                with self.changed:
                    self.latest = snapshot
                    self.changed.notify_all()
        except (docker.errors.APIError, OSError):
            pass  # removed: the server is gone, or the lab closed
        finally:
            with self.changed:
                self.ended = True
                self.changed.notify_all()

    def snapshot(self, timeout: float = FRESH_TIMEOUT) -> Snapshot:
        """A reading taken after this call; an empty one if none comes (the server gone)."""
        with self.changed:
            after = self.latest.seq
            self.changed.wait_for(lambda: self.latest.seq > after or self.ended, timeout)
            return self.latest if self.latest.seq > after else Snapshot()

    def close(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.container.remove(force=True)
