"""Host-side helpers of ``make up``: wait for the lab's health checks, print the map.

Runs on the host with the standard library only and talks to Docker through
its CLI, so ``make up`` needs no virtual environment. Usage::

    PYTHONPATH=services python3 -m socklab.hostctl wait --project socklab
    PYTHONPATH=services python3 -m socklab.hostctl map --project socklab
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from socklab.variants import VARIANTS

# A cold start of all seven servers takes 3-5 s here; a loaded machine more.
DEFAULT_WAIT = 120.0
POLL_INTERVAL = 1.0

PORTS = {v.host: ", ".join(f"{p}/{v.transport}" for p in v.ports) for v in VARIANTS.values()}


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


def service_name(container: dict[str, Any]) -> str:
    return container["Config"]["Labels"].get("com.docker.compose.service", container["Name"])


def health(container: dict[str, Any]) -> str:
    state = container["State"]
    if state["Status"] != "running":
        return state["Status"]
    return state.get("Health", {}).get("Status", "running")


def wait(project: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        containers = lab_containers(project)
        states = {service_name(c): health(c) for c in containers}
        pending = sorted(name for name, state in states.items() if state not in
                         ("healthy", "running"))
        failed = [name for name, state in states.items()
                  if state in ("exited", "dead", "restarting", "unhealthy")]
        if not containers:
            print(f"socklab: no containers of project {project!r}", file=sys.stderr)
            return 1
        if failed or (pending and time.monotonic() > deadline):
            print(f"socklab: not healthy: {', '.join(failed or pending)}; see: make logs",
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
    if not containers:
        print(f"socklab: the lab {project!r} is not running (make up)", file=sys.stderr)
        return 1
    rows = [("HOST", "ADDRESS", "PORTS", "STATE", "CONTAINER")]
    rows += [(service_name(c), address(c), PORTS.get(service_name(c), "-"), health(c),
              c["Name"].lstrip("/")) for c in containers]
    publishing = [(service_name(c), published(c)) for c in containers if published(c)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print("\nEnter a client host:   make shell      (a shell on client-1)")
    print("Then, for example:     socklab client tcp     socklab client exec --mode naive")
    if not publishing:
        print("Host names resolve on the lab network only; no port is published on this machine.")
        return 0
    print("Host names resolve on the lab network only. Published on this machine (PUBLISH=1):")
    for name, ports in publishing:
        print(f"  {name}: {ports}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m socklab.hostctl")
    parser.add_argument("action", choices=("wait", "map"))
    parser.add_argument("--project", default="socklab", help="compose project name")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT)
    args = parser.parse_args(argv)
    if args.action == "wait":
        return wait(args.project, args.timeout)
    return print_map(args.project)


if __name__ == "__main__":
    raise SystemExit(main())
