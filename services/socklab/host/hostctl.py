"""Host-side helpers of ``make up``: lab names, health, the map, listing and removing labs.

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

``capacity`` (how many labs fit on this machine) is socklab.host.capacity;
it is reached from here too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from typing import Any

from socklab.host import containers
from socklab.host.containers import FAILED_STATES, READY_STATES, health, service_name
from socklab.host.grade import procfs
from socklab.registry import CLIENTS, VARIANTS

# A cold start of all seven servers takes 3-5 s here; a loaded machine more.
DEFAULT_WAIT = 120.0
POLL_INTERVAL = 0.3

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
COMPOSE_PROJECT_LABEL = containers.COMPOSE_PROJECT_LABEL
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


def lab_containers(project: str) -> list[dict[str, Any]]:
    """The inspected containers of a lab, stopped ones included, by service name."""
    ids = containers.container_ids(containers.project_label(project), stopped=True)
    return sorted(containers.inspect(*ids), key=service_name)


LAB_FIELDS = f'{{{{.Label "{COMPOSE_PROJECT_LABEL}"}}}}|{{{{.Label "{TEST_RUN_LABEL}"}}}}'


def lab_projects() -> list[str]:
    """The Compose projects of the learner labs on this machine (test labs excluded).

    From their containers, and from their uploads volumes: a lab stopped with
    ``make down LAB=…`` has no container left, but keeps its volume.
    """
    lines = []
    for command in (["ps", "-a", "--filter", "label=socklab.role"],
                    ["volume", "ls", "--filter", "label=socklab.lab"]):
        lines += containers.docker_lines(*command, "--format", LAB_FIELDS)
    return projects_of(lines)


def running_projects() -> list[str]:
    """The learner labs with a running container."""
    return projects_of(containers.docker_lines("ps", "--filter", "label=socklab.role",
                                               "--format", LAB_FIELDS))


def other_labs_lines(project: str, known: list[str], running: list[str]) -> list[str]:
    """What ``make ps`` and ``make up`` say of the labs other than ``project``: those
    running, and those stopped with their uploads kept (each with the command that
    starts it again)."""
    lines = []
    up = [lab_of(p) or "the default lab" for p in running if p != project]
    if up:
        lines.append(f"Other labs running on this machine: {', '.join(up)} "
                     "(make ps LAB=name)")
    stopped = [f"{lab_of(p) or 'the default lab'} (make up{lab_hint(p)})"
               for p in known if p != project and p not in running]
    if stopped:
        lines.append(f"Stopped here, their uploads kept: {', '.join(stopped)}")
    return lines


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
    selector = f"label={containers.project_label(project)}"
    for kind in ("container", "network", "volume"):
        ids = containers.docker_lines(kind, "ls", "-q", "--filter", selector,
                                      *(["-a"] if kind == "container" else []))
        remove = {"container": ["rm", "-fv"], "network": ["rm"], "volume": ["rm", "-f"]}[kind]
        if ids:
            subprocess.run(["docker", kind, *remove, *ids], capture_output=True, check=False)


# A server whose health check has not run yet, seen listening on its ports from here.
LISTENING = "listening"


def sort_states(states: dict[str, str]) -> tuple[list[str], list[str]]:
    """(pending, failed) host names of a lab, from their states."""
    failed = sorted(name for name, state in states.items() if state in FAILED_STATES)
    pending = sorted(name for name, state in states.items()
                     if state not in READY_STATES | FAILED_STATES | {LISTENING})
    return pending, failed


def health_ports(container: dict[str, Any]) -> tuple[list[int], str] | None:
    """(ports, transport) its health check looks for (``socklab-listening PORT [udp]``)."""
    test = list((container["Config"].get("Healthcheck") or {}).get("Test") or [])
    if "socklab-listening" not in test:
        return None
    args = test[test.index("socklab-listening") + 1:]
    ports = [int(a) for a in args if a.isdigit()]
    return (ports, "udp" if "udp" in args else "tcp") if ports else None


def is_local_process(container: dict[str, Any]) -> bool:
    """Whether the engine's PID for ``container`` is a process of this machine inside it:
    its /proc/PID/cgroup names the container's id. An engine elsewhere (DOCKER_HOST on
    another machine) gives PIDs of its own machine, which here are someone else's."""
    pid, container_id = container["State"].get("Pid"), container.get("Id")
    if not pid or not container_id:
        return False
    return container_id in (containers.read_host_file(f"/proc/{pid}/cgroup") or "")


def listening_now(container: dict[str, Any]) -> bool:
    """Whether a starting server already listens where its health check will look: read
    from this machine's /proc (the check's first run is up to an interval away, 5 s)."""
    looked_for = health_ports(container)
    if looked_for is None or not is_local_process(container):
        return False  # the health check will tell
    ports, transport = looked_for
    pid = container["State"]["Pid"]
    try:
        return all(procfs.listening(pid, port, transport).addresses for port in ports)
    except OSError:  # no right to read: wait for the check
        return False


def lab_states(hosts: list[dict[str, Any]]) -> dict[str, str]:
    """Each host's state; a server still ``starting`` that listens already counts as up."""
    states = {service_name(c): health(c) for c in hosts}
    for container in hosts:
        name = service_name(container)
        if states[name] == "starting" and listening_now(container):
            states[name] = LISTENING
    return states


def wait(project: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    shown: list[str] = []
    while True:
        hosts = lab_containers(project)
        states = lab_states(hosts)
        pending, failed = sort_states(states)
        if not hosts:
            print(f"socklab: no containers of project {project!r}", file=sys.stderr)
            return 1
        if failed or (pending and time.monotonic() > deadline):
            late = ", ".join(f"{name} ({states[name]})" for name in failed or pending)
            print(f"socklab: not healthy: {late}; see: make logs{lab_hint(project)}",
                  file=sys.stderr)
            return 1
        if not pending:
            early = sum(state == LISTENING for state in states.values())
            print(f"socklab: all {len(states)} hosts up" + (
                f" ({early} listening, their first health check still to come)"
                if early else ""), file=sys.stderr)
            return 0
        if pending != shown:
            print(f"socklab: waiting for health checks: {len(states) - len(pending)}/"
                  f"{len(states)} ready, waiting for {', '.join(pending)}", file=sys.stderr)
            shown = pending
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
    hosts = lab_containers(project)
    others = other_labs_lines(project, lab_projects(), running_projects())
    if others:
        print("\n".join(others) + "\n")
    if not hosts:
        print(f"socklab: the lab {project!r} is not running (make up{lab_hint(project)})",
              file=sys.stderr)
        return 1
    rows = [("HOST", "ADDRESS", "PORTS", "STATE", "CONTAINER")]
    rows += [(service_name(c), address(c), PORTS.get(service_name(c), "-"), health(c),
              c["Name"].lstrip("/")) for c in hosts]
    publishing = [(service_name(c), published(c)) for c in hosts if published(c)]
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["capacity"]:  # its own module, imported here as it imports this one
        from socklab.host import capacity

        return capacity.main(argv[1:], prog="python3 -m socklab.host.hostctl capacity")
    parser = argparse.ArgumentParser(
        prog="python3 -m socklab.host.hostctl",
        epilog="capacity [--counts 1,5,10,20 ...]: how many labs fit on this machine "
               "(socklab.host.capacity; capacity --help for its options)")
    parser.add_argument("action", choices=("check-lab", "wait", "map", "labs", "remove"))
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="compose project name")
    parser.add_argument("--lab", default="", help="check-lab: the LAB name to check")
    parser.add_argument("--publish", action="store_true", help="check-lab: PUBLISH=1 was given")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT)
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
