"""Host-side helpers of ``make up``: lab names, health, the map, and how many labs fit.

Runs on the host with the standard library only and talks to Docker through
its CLI, so ``make up`` needs no virtual environment. One machine can run
many labs (``make up LAB=alice``): lab ``alice`` is Compose project
``socklab-alice`` on network ``socklab-alice``; without a name it is the
default lab, project and network ``socklab``. Usage::

    PYTHONPATH=services python3 -m socklab.host.hostctl check-lab --lab alice [--publish]
    PYTHONPATH=services python3 -m socklab.host.hostctl wait --project socklab-alice
    PYTHONPATH=services python3 -m socklab.host.hostctl map --project socklab-alice
    PYTHONPATH=services python3 -m socklab.host.hostctl labs      # the named labs running here
    PYTHONPATH=services python3 -m socklab.host.hostctl remove --project socklab-alice
    PYTHONPATH=services python3 -m socklab.host.hostctl capacity --counts 1,5,10,20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socklab.host.paths import REPO_ROOT
from socklab.registry import CLIENTS, VARIANTS

# A cold start of all seven servers takes 3-5 s here; a loaded machine more.
DEFAULT_WAIT = 120.0
POLL_INTERVAL = 1.0

PORTS = {v.host: ", ".join(f"{p}/{v.transport}" for p in v.ports.values())
         for v in VARIANTS.values()}

DEFAULT_PROJECT = "socklab"
LAB_PREFIX = "socklab-"
LAB_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
# Compose names containers <project>_<service>_1 (v1) or <project>-<service>-1
# (v2), and a container's name is a DNS name on its network: a DNS label holds
# at most 63 characters. The longest service name decides what is left for LAB.
LONGEST_SERVICE = max([v.host for v in VARIANTS.values()] + list(CLIENTS), key=len)
MAX_LAB_LENGTH = 63 - len(LAB_PREFIX) - len(f"_{LONGEST_SERVICE}_1")
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
TEST_RUN_LABEL = "socklab.test-run"


def lab_project(lab: str) -> str:
    """The Compose project (and network) name of lab ``lab``; "" is the default lab."""
    return f"{LAB_PREFIX}{lab}" if lab else DEFAULT_PROJECT


def lab_of(project: str) -> str:
    """The LAB name of a project, "" for the default lab (inverse of lab_project)."""
    return project.removeprefix(LAB_PREFIX) if project.startswith(LAB_PREFIX) else ""


def lab_error(lab: str, publish: bool = False) -> str | None:
    """Why ``make up LAB=lab`` must not start, or None when it may."""
    if not lab:
        return None
    if not LAB_NAME.fullmatch(lab):
        return (f"LAB={lab!r} is not a lab name: use lower-case letters, digits and '-', "
                "starting with a letter or digit (e.g. LAB=alice)")
    if len(lab) > MAX_LAB_LENGTH:
        return (f"LAB={lab!r} has {len(lab)} characters, at most {MAX_LAB_LENGTH} fit: "
                f"its longest container name, {LAB_PREFIX}{lab}_{LONGEST_SERVICE}_1, "
                "must fit in one DNS label (63 characters)")
    if publish:
        return (f"PUBLISH=1 with LAB={lab}: every lab would publish the same ports on "
                "127.0.0.1 (19000, ...) and the second lab would fail to start. "
                "Reach a named lab from its client hosts (make shell LAB=" + lab + "), "
                "or publish the default lab only (make up PUBLISH=1)")
    return None


def lab_hint(project: str) -> str:
    """The ``LAB=...`` argument that names ``project`` on make's command line."""
    lab = lab_of(project)
    return f" LAB={lab}" if lab else ""


def docker_json(*args: str) -> Any:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"socklab: docker {args[0]} failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "null")


def lab_containers(project: str) -> list[dict[str, Any]]:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                          f"label=com.docker.compose.project={project}"],
                         capture_output=True, text=True, check=True).stdout.split()
    containers = docker_json("inspect", *ids) if ids else []
    return sorted(containers, key=service_name)


def lab_projects() -> list[str]:
    """The Compose projects of the learner labs on this machine (test labs excluded).

    From their containers, and from their uploads volumes: a lab stopped with
    ``make down LAB=…`` has no container left, but keeps its volume.
    """
    fields = f'{{{{.Label "{COMPOSE_PROJECT_LABEL}"}}}}|{{{{.Label "{TEST_RUN_LABEL}"}}}}'
    lines = []
    for command in (["ps", "-a", "--filter", "label=socklab.role"],
                    ["volume", "ls", "--filter", "label=socklab.lab"]):
        lines += subprocess.run(["docker", *command, "--format", fields], capture_output=True,
                                text=True, check=True).stdout.splitlines()
    return projects_of(lines)


def projects_of(lines: list[str]) -> list[str]:
    """The lab projects in ``PROJECT|TEST-RUN`` lines (one per container), tests left out."""
    projects = set()
    for line in lines:
        project, _, test_run = line.partition("|")
        if not test_run and (project == DEFAULT_PROJECT or lab_of(project)):
            projects.add(project)
    return sorted(projects)


def remove_project(project: str) -> None:
    """Remove a lab's containers, network and volumes (``compose down -v``, by label)."""
    selector = f"label={COMPOSE_PROJECT_LABEL}={project}"
    for kind in ("container", "network", "volume"):
        ids = subprocess.run(["docker", kind, "ls", "-q", "--filter", selector, *(
            ["-a"] if kind == "container" else [])], capture_output=True, text=True,
            check=True).stdout.split()
        remove = {"container": ["rm", "-fv"], "network": ["rm"], "volume": ["rm", "-f"]}[kind]
        if ids:
            subprocess.run(["docker", kind, *remove, *ids], capture_output=True, check=False)


def service_name(container: dict[str, Any]) -> str:
    return container["Config"]["Labels"].get("com.docker.compose.service", container["Name"])


def health(container: dict[str, Any]) -> str:
    state = container["State"]
    if state["Status"] != "running":
        return state["Status"]
    return state.get("Health", {}).get("Status", "running")


# A container in one of these states has stopped: waiting longer will not help.
# "unhealthy" is not among them: on a loaded machine a server can start after its
# health check's start period and three tries and still turn healthy.
FAILED_STATES = frozenset({"exited", "dead", "restarting"})
READY_STATES = frozenset({"healthy", "running"})


def sort_states(states: dict[str, str]) -> tuple[list[str], list[str]]:
    """(pending, failed) host names of a lab, from their states."""
    failed = sorted(name for name, state in states.items() if state in FAILED_STATES)
    pending = sorted(name for name, state in states.items()
                     if state not in READY_STATES | FAILED_STATES)
    return pending, failed


def wait(project: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        containers = lab_containers(project)
        states = {service_name(c): health(c) for c in containers}
        pending, failed = sort_states(states)
        if not containers:
            print(f"socklab: no containers of project {project!r}", file=sys.stderr)
            return 1
        if failed or (pending and time.monotonic() > deadline):
            late = ", ".join(f"{name} ({states[name]})" for name in failed or pending)
            print(f"socklab: not healthy: {late}; see: make logs{lab_hint(project)}",
                  file=sys.stderr)
            return 1
        if not pending:
            print(f"socklab: all {len(states)} hosts up", file=sys.stderr)
            return 0
        print(f"socklab: waiting for health checks: {len(states) - len(pending)}/{len(states)}"
              f" ready, waiting for {', '.join(pending)}", file=sys.stderr)
        time.sleep(POLL_INTERVAL)


def address(container: dict[str, Any]) -> str:
    networks = container["NetworkSettings"]["Networks"]
    return ", ".join(f"{n['IPAddress']}" for n in networks.values() if n.get("IPAddress")) or "-"


def published(container: dict[str, Any]) -> str:
    """The host addresses a container's ports are published on (``make up PUBLISH=1``)."""
    ports = container["NetworkSettings"].get("Ports") or {}
    return ", ".join(f"{b['HostIp']}:{b['HostPort']}->{port}"
                     for port, bindings in sorted(ports.items()) for b in bindings or [])


def print_map(project: str) -> int:
    containers = lab_containers(project)
    others = [lab_of(p) or "(the default lab)" for p in lab_projects() if p != project]
    if others:
        print(f"Other labs on this machine: {', '.join(others)} (make ps LAB=name)\n")
    if not containers:
        print(f"socklab: the lab {project!r} is not running (make up{lab_hint(project)})",
              file=sys.stderr)
        return 1
    rows = [("HOST", "ADDRESS", "PORTS", "STATE", "CONTAINER")]
    rows += [(service_name(c), address(c), PORTS.get(service_name(c), "-"), health(c),
              c["Name"].lstrip("/")) for c in containers]
    publishing = [(service_name(c), published(c)) for c in containers if published(c)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    hint = lab_hint(project)
    print(f"\nEnter a client host:   make shell{hint}      (a shell on client-1)")
    print("Then, for example:     socklab client tcp     socklab client exec --mode naive")
    if not publishing:
        print("Host names resolve on the lab network only; no port is published on this machine.")
        return 0
    print("Host names resolve on the lab network only. Published on this machine (PUBLISH=1):")
    for name, ports in publishing:
        print(f"  {name}: {ports}")
    return 0


# --- how many labs fit on this machine (capacity) ---------------------------------

ROOT = REPO_ROOT
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Memory:
    """What a container is charged (``usage``, page cache included) and its anonymous part."""

    usage: int
    anon: int


def stat_value(text: str, key: str) -> int:
    """The value of ``key`` in a cgroup ``memory.stat`` or ``/proc/meminfo`` text (0 if absent)."""
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if fields[:1] == [key]:
            return int(fields[1])
    return 0


def container_memory(container_id: str) -> Memory:
    """A container's memory from the host's cgroup files (v1 under docker/, v2 a scope)."""
    v1 = CGROUP / "memory" / "docker" / container_id
    if v1.is_dir():
        stat = (v1 / "memory.stat").read_text()
        return Memory(int((v1 / "memory.usage_in_bytes").read_text()),
                      stat_value(stat, "total_rss"))
    v2 = CGROUP / "system.slice" / f"docker-{container_id}.scope"
    stat = (v2 / "memory.stat").read_text()
    return Memory(int((v2 / "memory.current").read_text()), stat_value(stat, "anon"))


def container_ids(project: str) -> set[str]:
    """The full ids of a lab's running containers."""
    return set(subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter",
                               f"label={COMPOSE_PROJECT_LABEL}={project}"],
                              capture_output=True, text=True, check=True).stdout.split())


def lab_memory(project: str) -> Memory:
    """The sum over a lab's running containers."""
    readings = [container_memory(i) for i in container_ids(project)]
    return Memory(sum(m.usage for m in readings), sum(m.anon for m in readings))


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat; idle and iowait count as not busy."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already inside user and nice
    return total - fields[3] - fields[4], total


def cores_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How many CPUs were busy on average between two cpu_times() readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / total if total else 0.0


def host_figures(window: float) -> dict[str, float]:
    """MemAvailable, CPUs busy over ``window`` seconds and the load averages, now."""
    before = cpu_times()
    time.sleep(window)
    busy = cores_busy(before, cpu_times())
    available = stat_value(Path("/proc/meminfo").read_text(), "MemAvailable") * 1024
    load = os.getloadavg()
    return {"mem_available_gib": round(available / 2**30, 2), "cores_busy": round(busy, 2),
            "load1": load[0], "load5": load[1]}


def process_ticks(pid: int, children: bool = True) -> int:
    """CPU clock ticks of a process (user + system), with its reaped children's if asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone in the meantime
        return 0
    return sum(int(f) for f in fields[11:15 if children else 13])


def container_cpu_ns(container_id: str) -> int:
    """CPU time of everything that ran in a container's cgroup (v1 cpuacct, v2 cpu.stat)."""
    v1 = CGROUP / "cpuacct" / "docker" / container_id / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text())
    v2 = CGROUP / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat"
    return stat_value(v2.read_text(), "usage_usec") * 1000


def helper_pids(ids: set[str]) -> dict[str, list[int]]:
    """The processes outside the containers that serve them, by kind.

    ``shims``: one containerd shim per container (``-id <container id>``).
    ``storage``: with the fuse-overlayfs storage driver (these machines),
    each container's root file system is a fuse-overlayfs process, outside
    its cgroup, that serves every file the container opens, health checks
    included.
    """
    merged = set(subprocess.run(
        ["docker", "inspect", "--format", "{{.GraphDriver.Data.MergedDir}}", *ids],
        capture_output=True, text=True, check=False).stdout.split()) if ids else set()
    found: dict[str, list[int]] = {"shims": [], "storage": []}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = [a.decode(errors="replace") for a in cmdline.read_bytes().split(b"\0")[:-1]]
        except OSError:
            continue
        pid = int(cmdline.parent.name)
        if "-id" in argv[:-1] and argv[argv.index("-id") + 1] in ids:
            found["shims"].append(pid)
        elif argv and argv[0].endswith("fuse-overlayfs") and argv[-1] in merged:
            found["storage"].append(pid)
    return found


def process_pss(pid: int) -> int:
    """A process's proportional share of memory in bytes: its shared pages (the shims'
    Go binary, say) divided among the processes that map them; 0 if it is gone."""
    try:
        return stat_value(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss") * 1024
    except OSError:
        return 0


def daemon_pids() -> list[int]:
    """This machine's dockerd (a child of PID 1) and the containerd it runs or uses."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if name.endswith("(dockerd") and rest.split()[1] == "1":
            pids.append(int(stat.parent.name))
    return pids + [int(p) for p in subprocess.run(
        ["pgrep", "-P", ",".join(map(str, pids)) or "0", "containerd"],
        capture_output=True, text=True, check=False).stdout.split()]


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU of the labs, split where it is spent, at one moment (seconds)."""

    containers: float
    shims: float
    storage: float
    daemons: float


def cpu_sample(ids: set[str], helpers: dict[str, list[int]],
               daemons: list[int]) -> CpuSample:
    tick = os.sysconf("SC_CLK_TCK")
    return CpuSample(sum(container_cpu_ns(c) for c in ids) / 1e9,
                     sum(process_ticks(p) for p in helpers["shims"]) / tick,
                     sum(process_ticks(p) for p in helpers["storage"]) / tick,
                     sum(process_ticks(p, children=False) for p in daemons) / tick)


class StartFailed(Exception):
    """``make up`` of one lab failed: the machine holds no more (or something broke)."""


def start_lab(lab: str) -> float:
    """``make up LAB=lab`` from the checkout; the seconds it took.

    ``make`` runs in a process group of its own: if this is interrupted (a
    SIGTERM, Ctrl-C), the whole group, Compose included, is stopped before
    the caller removes the lab, so no container is created after that.
    """
    started = time.monotonic()
    process = subprocess.Popen(["make", "-s", "up", f"LAB={lab}"], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _, stderr = process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise
    if process.returncode != 0:
        raise StartFailed(f"make up LAB={lab} failed after {time.monotonic() - started:.0f} s:"
                          f"\n{stderr[-2000:]}")
    return time.monotonic() - started


def measure_step(labs: list[str], up_seconds: list[float], settle: float,
                 window: float) -> dict[str, Any]:
    """The figures with ``labs`` running, after ``settle`` seconds of idling.

    ``up_seconds``: how long ``make up`` took for the labs started in this step.

    CPU is split where it is spent: in the labs' containers (idle servers and
    the health-check processes), in their shims (each health check is a
    ``runc exec`` the shim starts and reaps: runc and, again, the check), and
    in dockerd and containerd (every container of the machine, not only labs).
    """
    time.sleep(settle)
    ids = set().union(*(container_ids(lab_project(lab)) for lab in labs))
    helpers, daemons = helper_pids(ids), daemon_pids()
    before, started = cpu_sample(ids, helpers, daemons), time.monotonic()
    host = host_figures(window)
    after, seconds = cpu_sample(ids, helpers, daemons), time.monotonic() - started
    memory = [lab_memory(lab_project(lab)) for lab in labs]
    unhealthy = [c for lab in labs for c in lab_containers(lab_project(lab))
                 if health(c) not in ("healthy", "running")]
    helper_pss = sum(process_pss(p) for pids in helpers.values() for p in pids)
    per_lab = len(labs) * seconds
    mib = 2**20
    return {"labs": len(labs), "not_healthy": len(unhealthy), **host,
            "lab_usage_mib": round(sum(m.usage for m in memory) / len(memory) / mib, 1),
            "lab_anon_mib": round(sum(m.anon for m in memory) / len(memory) / mib, 1),
            "lab_helpers_pss_mib": round(helper_pss / len(labs) / mib, 1),
            "lab_cores_containers": round((after.containers - before.containers) / per_lab, 3),
            "lab_cores_shims": round((after.shims - before.shims) / per_lab, 3),
            "lab_cores_storage": round((after.storage - before.storage) / per_lab, 3),
            "daemon_cores": round((after.daemons - before.daemons) / seconds, 3),
            "up_seconds_mean": round(sum(up_seconds) / len(up_seconds), 1),
            "up_seconds_max": round(max(up_seconds), 1)}


def capacity(counts: list[int], prefix: str, settle: float, window: float) -> int:
    """Start labs prefix1..prefixN in steps of ``counts``, print the figures, remove them."""
    labs: list[str] = []
    up_seconds: list[float] = []
    existing = set(lab_projects())
    # kill PID (SIGTERM) stops a measurement and still removes its labs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("socklab: capacity stopped"))
    try:
        print(json.dumps({"labs": 0, **host_figures(window)}), flush=True)
        for count in sorted(counts):
            step_start = len(labs)
            for number in range(len(labs) + 1, count + 1):
                lab = f"{prefix}{number}"
                if lab_project(lab) in existing or lab_error(lab):
                    raise SystemExit(f"socklab: lab {lab} exists or is not a lab name")
                labs.append(lab)
                up_seconds.append(start_lab(lab))
                print(f"socklab: lab {lab} up in {up_seconds[-1]:.1f} s", file=sys.stderr)
            figures = measure_step(labs, up_seconds[step_start:] or [0.0], settle, window)
            print(json.dumps(figures), flush=True)
    except StartFailed as error:
        print(json.dumps({"labs": len(labs) - 1, "failed": labs[-1],
                          "up_seconds": [round(t, 1) for t in up_seconds]}), flush=True)
        print(f"socklab: {error}", file=sys.stderr)
        return 1
    finally:
        for lab in labs:
            remove_project(lab_project(lab))
        print(f"socklab: removed {len(labs)} labs", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m socklab.host.hostctl")
    parser.add_argument("action", choices=("check-lab", "wait", "map", "labs", "remove",
                                           "capacity"))
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="compose project name")
    parser.add_argument("--lab", default="", help="check-lab: the LAB name to check")
    parser.add_argument("--publish", action="store_true", help="check-lab: PUBLISH=1 was given")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT)
    parser.add_argument("--counts", default="1,5,10,20",
                        help="capacity: how many labs to measure with, in steps")
    parser.add_argument("--prefix", default="m", help="capacity: labs are named PREFIX1, ...")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="capacity: seconds to idle before measuring")
    parser.add_argument("--window", type=float, default=30.0,
                        help="capacity: seconds over which CPU use is averaged")
    args = parser.parse_args(argv)
    if args.action == "check-lab":
        return check_lab(args.lab, args.publish)
    if args.action == "wait":
        return wait(args.project, args.timeout)
    if args.action == "labs":
        print("\n".join(lab_of(p) for p in lab_projects() if lab_of(p)))
        return 0
    if args.action == "remove":
        remove_project(args.project)
        return 0
    if args.action == "capacity":
        counts = [int(c) for c in args.counts.split(",")]
        return capacity(counts, args.prefix, args.settle, args.window)
    return print_map(args.project)


def check_lab(lab: str, publish: bool) -> int:
    """Exit status 1 with the reason when ``make ... LAB=lab`` must not run."""
    error = lab_error(lab, publish)
    if error:
        print(f"socklab: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
