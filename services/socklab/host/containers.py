"""Container access from the host: run a command in one, read its state and what it uses.

Written once for every host-side caller: ``make up``'s lab lifecycle
(``socklab.host.hostctl``), the capacity measurement
(``socklab.host.capacity``), the benchmark (``socklab.host.bench``) and the
integration harness. Standard library only, so ``make up`` needs no virtual
environment: the Docker CLI for listing and inspecting, and for ``exec`` a
container object of the Docker SDK passed in by the caller (duck-typed, not
imported here).

What a container uses is read from its cgroup, v1 or v2, and from ``/proc``.
The same reader serves two places to read from: the host's file system
(:meth:`CgroupDirs.on_host`, free for the container, fit for sampling during a
run) and the container's own view (:meth:`CgroupDirs.inside`, through one
``exec``: the only way when the engine is on another machine, as for a swarm
node reached over ssh).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

CGROUP = "/sys/fs/cgroup"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"

# Reads one file: its text, or None when it is absent or unreadable.
Reader = Callable[[str], "str | None"]


# --- Running commands in a container --------------------------------------------------


class Completed(NamedTuple):
    """How a command run in a container ended (unpacks as ``code, out, err``)."""

    exit_code: int
    stdout: str
    stderr: str


def exec_in(container: Any, argv: Iterable[str], *, timeout: int, user: str = "") -> Completed:
    """Run ``argv`` in ``container`` (an SDK container), killed after ``timeout`` seconds.

    ``timeout`` runs inside the container: a command that hangs is killed
    there, so no caller waits forever on the exec.
    """
    command = ["timeout", "--kill-after=5", str(timeout), *argv]
    code, (out, err) = container.exec_run(command, demux=True, user=user)
    return Completed(code, (out or b"").decode("utf-8", "replace"),
                     (err or b"").decode("utf-8", "replace"))


def exec_detached(container: Any, argv: Iterable[str]) -> None:
    """Start ``argv`` in ``container`` and return at once (it runs on, unwatched)."""
    container.exec_run(list(argv), detach=True)


# --- Listing and inspecting with the Docker CLI ----------------------------------------


def docker_lines(*args: str, check: bool = True) -> list[str]:
    """The output lines of ``docker ARGS``; a failure raises (unless ``check`` is false)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=check)
    return result.stdout.splitlines()


def inspect(*ids: str) -> list[dict[str, Any]]:
    """``docker inspect`` of the containers ``ids`` (none: an empty list)."""
    if not ids:
        return []
    result = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"socklab: docker inspect failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "[]")


def container_ids(label: str, *, stopped: bool = False) -> list[str]:
    """The full ids of the containers carrying ``label`` (``key=value``), running only
    unless ``stopped``."""
    return docker_lines("ps", "-q", "--no-trunc", *(["-a"] if stopped else []),
                        "--filter", f"label={label}")


def project_label(project: str) -> str:
    """The label Compose puts on every container of ``project``."""
    return f"{COMPOSE_PROJECT_LABEL}={project}"


def service_name(attrs: dict[str, Any]) -> str:
    """The Compose service of an inspected container, else its name."""
    return attrs["Config"]["Labels"].get(COMPOSE_SERVICE_LABEL, attrs["Name"])


def health(attrs: dict[str, Any]) -> str:
    """A container's state in one word: its health if it runs and has a check, else its status."""
    state = attrs["State"]
    if state["Status"] != "running":
        return state["Status"]
    return state.get("Health", {}).get("Status", "running")


# A container in one of these states has stopped: waiting longer will not help.
# "unhealthy" is not among them: on a loaded machine a server can start after its
# health check's start period and three tries and still turn healthy.
FAILED_STATES = frozenset({"exited", "dead", "restarting"})
READY_STATES = frozenset({"healthy", "running"})


# --- Reading files, here or in the container ------------------------------------------


def read_host_file(path: str) -> str | None:
    """The text of a file on the host, None if it is absent or unreadable (a process gone)."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


def stat_value(text: str, key: str) -> int:
    """The value of ``key`` in a cgroup ``*.stat``/``*.events`` or ``/proc/*/status`` text
    (0 if absent)."""
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if fields[:1] == [key]:
            return int(fields[1])
    return 0


def _stat(key: str, scale: int = 1) -> Callable[[str], int]:
    return lambda text: stat_value(text, key) * scale


# --- Cgroups, v1 and v2 -----------------------------------------------------------------


@dataclass(frozen=True)
class CgroupFile:
    """Where a figure is in cgroup v1 (controller, file) and v2 (file), and how to read it."""

    v1_controller: str
    v1_name: str
    v2_name: str
    parse_v1: Callable[[str], int] = int
    parse_v2: Callable[[str], int] = int


CGROUP_FILES: dict[str, CgroupFile] = {
    # Bytes charged to the container now, page cache included.
    "memory": CgroupFile("memory", "memory.usage_in_bytes", "memory.current"),
    # The most it was charged so far. v2 has memory.peak from Linux 5.19 only; before, 0.
    "peak": CgroupFile("memory", "memory.max_usage_in_bytes", "memory.peak"),
    # Anonymous memory (heaps, stacks): what the processes hold, page cache left out.
    "anon": CgroupFile("memory", "memory.stat", "memory.stat",
                       _stat("total_rss"), _stat("anon")),
    # Allocations that met the memory limit.
    "limit_hits": CgroupFile("memory", "memory.failcnt", "memory.events", int, _stat("max")),
    # CPU time of every process that ran in it, in ns.
    "cpu_ns": CgroupFile("cpuacct", "cpuacct.usage", "cpu.stat", int,
                         _stat("usage_usec", 1000)),
}


@dataclass(frozen=True)
class CgroupDirs:
    """Where one container's cgroup files are, seen from where they are read.

    ``v1`` holds ``{controller}`` (``memory``, ``cpuacct``); ``v2`` lists the
    unified directories it may be in, first found wins.
    """

    v1: str
    v2: tuple[str, ...]

    @classmethod
    def on_host(cls, container_id: str) -> CgroupDirs:
        """From the host: under ``docker/`` (v1), a systemd scope or ``docker/`` (v2)."""
        return cls(f"{CGROUP}/{{controller}}/docker/{container_id}",
                   (f"{CGROUP}/system.slice/docker-{container_id}.scope",
                    f"{CGROUP}/docker/{container_id}"))

    @classmethod
    def inside(cls) -> CgroupDirs:
        """From inside the container, whose cgroup namespace shows its own cgroup as the root."""
        return cls(f"{CGROUP}/{{controller}}", (CGROUP,))

    def paths(self, figure: str) -> list[tuple[str, Callable[[str], int]]]:
        """(path, parser) of ``figure``'s file, v1 first, then each v2 directory."""
        file = CGROUP_FILES[figure]
        v1 = (f"{self.v1.format(controller=file.v1_controller)}/{file.v1_name}", file.parse_v1)
        return [v1, *((f"{d}/{file.v2_name}", file.parse_v2) for d in self.v2)]


def read_cgroup(dirs: CgroupDirs, figures: Iterable[str],
                read: Reader = read_host_file) -> dict[str, int | None]:
    """``figures`` (names of CGROUP_FILES) of one container; None where no file has it."""
    found: dict[str, int | None] = {}
    for figure in figures:
        found[figure] = None
        for path, parse in dirs.paths(figure):
            text = read(path)
            if text is not None:
                found[figure] = parse(text)
                break
    return found


def cpu_ns(container_id: str) -> int | None:
    """A container's CPU time so far (ns), read from the host; None if unreadable."""
    return read_cgroup(CgroupDirs.on_host(container_id), ["cpu_ns"])["cpu_ns"]


# --- Processes: the server under tini, its memory and CPU ------------------------------


def first_child(init_pid: int | str, read: Reader = read_host_file) -> str | None:
    """The first child of ``init_pid`` (a container's tini: the server), None if none."""
    children = (read(f"/proc/{init_pid}/task/{init_pid}/children") or "").split()
    return children[0] if children else None


def stat_ticks(stat_text: str, children: bool = False) -> int:
    """CPU clock ticks (user + system) in a ``/proc/PID/stat`` text, with those of the
    process's reaped children if asked."""
    fields = stat_text.rsplit(")", 1)[1].split()  # the name in () may hold spaces
    return sum(int(f) for f in fields[11:15 if children else 13])


def process_usage(proc_dir: str, read: Reader = read_host_file) -> dict[str, int | None]:
    """``rss`` and ``hwm`` (its peak RSS), bytes, and ``cpu_ns`` of the process at
    ``proc_dir`` (``/proc/PID``); None for what could not be read (it is gone)."""
    status, stat = read(f"{proc_dir}/status"), read(f"{proc_dir}/stat")
    ns_per_tick = 10**9 // os.sysconf("SC_CLK_TCK")
    return {"rss": stat_value(status, "VmRSS") * 1024 if status else None,
            "hwm": stat_value(status, "VmHWM") * 1024 if status else None,
            "cpu_ns": stat_ticks(stat) * ns_per_tick if stat else None}


# --- Everything at once, read inside the container by one exec --------------------------

SERVER = "{server}"  # in a path given to READ_FILES_SCRIPT: the server's PID there

# Run with python3 -c inside a container: the text (or null) of each path in argv,
# as JSON, with SERVER in a path replaced by the first child of PID 1 (tini's: the
# server). Standard library only: the lab image has no socklab.host.
READ_FILES_SCRIPT = r"""
import json, sys
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
children = (read("/proc/1/task/1/children") or "").split()
server = children[0] if children else None
files = {p: read(p.replace("{server}", server)) if server or "{server}" not in p else None
         for p in sys.argv[1:]}
print(json.dumps({"server": server, "files": files}))
"""

RESOURCE_FIGURES = ("memory", "peak", "anon", "limit_hits", "cpu_ns")


def resources_inside(container: Any, timeout: int) -> dict[str, int]:
    """What ``container`` uses, read inside it (its cgroup and its server's /proc) by one exec.

    ``current``, ``peak``, ``anon`` (bytes: charged now, at most so far,
    anonymous now), ``limit_hits`` (allocations that met the memory limit),
    ``cpu_ns`` (the container's CPU time so far, this reading's own included),
    and for the server (tini's one child, PID as seen in the container)
    ``server_pid``, ``server_hwm`` (its peak RSS) and ``server_cpu_ns`` (its
    CPU time so far, user and system, its threads included). 0 where unreadable.
    """
    dirs = CgroupDirs.inside()
    paths = [p for figure in RESOURCE_FIGURES for p, _ in dirs.paths(figure)]
    paths += [f"/proc/{SERVER}/status", f"/proc/{SERVER}/stat"]
    result = exec_in(container, ["python3", "-c", READ_FILES_SCRIPT, *paths], timeout=timeout)
    if result.exit_code != 0:
        raise RuntimeError(f"reading resources in {container.name}: {result.stderr}")
    answer = json.loads(result.stdout)
    files: Mapping[str, str | None] = answer["files"]
    cgroup = read_cgroup(dirs, RESOURCE_FIGURES, files.get)
    server = process_usage(f"/proc/{SERVER}", files.get)
    figures = {"current": cgroup["memory"], "peak": cgroup["peak"], "anon": cgroup["anon"],
               "limit_hits": cgroup["limit_hits"], "cpu_ns": cgroup["cpu_ns"],
               "server_pid": int(answer["server"] or 0), "server_hwm": server["hwm"],
               "server_cpu_ns": server["cpu_ns"]}
    return {key: value or 0 for key, value in figures.items()}
