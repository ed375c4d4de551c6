"""How many labs fit on this machine: start labs in steps, measure them idle, remove them.

For each step of ``--counts`` it starts labs ``PREFIX1..PREFIXN`` with
``make up LAB=...``, lets them idle, and prints one JSON line: the machine's
free memory and busy CPUs, and per lab its memory (charged, anonymous, its
helpers' share) and its CPU split where it is spent (in its containers, their
shims, their storage processes) beside the Docker daemons' own. Whatever
happens (an error, Ctrl-C, SIGTERM), the labs it started are removed. Usage::

    PYTHONPATH=services python3 -m socklab.host.capacity --counts 1,5,10,20
    PYTHONPATH=services python3 -m socklab.host.hostctl capacity --counts 1,5,10,20

Standard library only, like ``make up``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socklab.host import containers
from socklab.host.containers import CgroupDirs, read_cgroup, read_host_file, stat_value
from socklab.host.hostctl import (
    lab_containers,
    lab_error,
    lab_project,
    lab_projects,
    remove_project,
)
from socklab.host.paths import REPO_ROOT

MIB = 2**20


@dataclass(frozen=True)
class Memory:
    """What a container is charged (``usage``, page cache included) and its anonymous part."""

    usage: int
    anon: int


def container_memory(container_id: str) -> Memory:
    """A container's memory from the host's cgroup files; 0 for what is unreadable."""
    found = read_cgroup(CgroupDirs.on_host(container_id), ["memory", "anon"])
    return Memory(found["memory"] or 0, found["anon"] or 0)


def running_ids(project: str) -> set[str]:
    """The full ids of a lab's running containers."""
    return set(containers.container_ids(containers.project_label(project)))


def lab_memory(project: str) -> Memory:
    """The sum over a lab's running containers."""
    readings = [container_memory(i) for i in running_ids(project)]
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
    stat = read_host_file(f"/proc/{pid}/stat")
    return containers.stat_ticks(stat, children) if stat else 0  # None: gone meanwhile


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
    rollup = read_host_file(f"/proc/{pid}/smaps_rollup")
    return stat_value(rollup, "Pss") * 1024 if rollup else 0


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
    return CpuSample(sum(containers.cpu_ns(c) or 0 for c in ids) / 1e9,
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
    process = subprocess.Popen(["make", "-s", "up", f"LAB={lab}"], cwd=REPO_ROOT, text=True,
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


def per_lab_figures(labs: list[str], helpers: dict[str, list[int]]) -> dict[str, Any]:
    """Memory per lab (mean over ``labs``) and how many of their hosts are not ready."""
    memory = [lab_memory(lab_project(lab)) for lab in labs]
    unhealthy = [c for lab in labs for c in lab_containers(lab_project(lab))
                 if containers.health(c) not in containers.READY_STATES]
    helper_pss = sum(process_pss(p) for pids in helpers.values() for p in pids)
    return {"not_healthy": len(unhealthy),
            "lab_usage_mib": round(sum(m.usage for m in memory) / len(memory) / MIB, 1),
            "lab_anon_mib": round(sum(m.anon for m in memory) / len(memory) / MIB, 1),
            "lab_helpers_pss_mib": round(helper_pss / len(labs) / MIB, 1)}


def cpu_figures(before: CpuSample, after: CpuSample, labs: int,
                seconds: float) -> dict[str, float]:
    """CPUs busy per lab, by where, and the daemons' (for the whole machine), between samples."""
    per_lab = labs * seconds
    return {"lab_cores_containers": round((after.containers - before.containers) / per_lab, 3),
            "lab_cores_shims": round((after.shims - before.shims) / per_lab, 3),
            "lab_cores_storage": round((after.storage - before.storage) / per_lab, 3),
            "daemon_cores": round((after.daemons - before.daemons) / seconds, 3)}


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
    ids = set().union(*(running_ids(lab_project(lab)) for lab in labs))
    helpers, daemons = helper_pids(ids), daemon_pids()
    before, started = cpu_sample(ids, helpers, daemons), time.monotonic()
    host = host_figures(window)
    after, seconds = cpu_sample(ids, helpers, daemons), time.monotonic() - started
    lab_figures = per_lab_figures(labs, helpers)
    return {"labs": len(labs), "not_healthy": lab_figures.pop("not_healthy"), **host,
            **lab_figures, **cpu_figures(before, after, len(labs), seconds),
            "up_seconds_mean": round(sum(up_seconds) / len(up_seconds), 1),
            "up_seconds_max": round(max(up_seconds), 1)}


def start_labs(labs: list[str], up_seconds: list[float], count: int, prefix: str,
               existing: set[str]) -> None:
    """Start labs until ``count`` run, appending each to ``labs`` before it starts."""
    for number in range(len(labs) + 1, count + 1):
        lab = f"{prefix}{number}"
        if lab_project(lab) in existing or lab_error(lab):
            raise SystemExit(f"socklab: lab {lab} exists or is not a lab name")
        labs.append(lab)  # first: a lab half started is removed too
        up_seconds.append(start_lab(lab))
        print(f"socklab: lab {lab} up in {up_seconds[-1]:.1f} s", file=sys.stderr)


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
            start_labs(labs, up_seconds, count, prefix, existing)
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


def main(argv: list[str] | None = None, prog: str = "python3 -m socklab.host.capacity") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,5,10,20",
                        help="how many labs to measure with, in steps")
    parser.add_argument("--prefix", default="m", help="labs are named PREFIX1, ...")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="seconds to idle before measuring")
    parser.add_argument("--window", type=float, default=30.0,
                        help="seconds over which CPU use is averaged")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    return capacity(counts, args.prefix, args.settle, args.window)


if __name__ == "__main__":
    raise SystemExit(main())
