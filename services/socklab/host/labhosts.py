"""Copies of the lab's hosts, started with the Docker SDK from their compose/lab.yml definitions.

The integration suite (``tests/integration/harness.py``) and the benchmark
(``socklab.host.bench.lab``) each start their own hosts on a network of their
own, and both must run what learners run: the command, user, capabilities,
sysctls, ulimits, memory limit, read-only root, tmpfs mounts and health check
of ``compose/lab.yml``. This module turns one service definition into a
container, waits until it is ready, and removes what a run left by label.
Host side only (it needs the ``docker`` package of the project's venv).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml
from docker.types import Ulimit

from socklab.host.containers import FAILED_STATES, READY_STATES, health
from socklab.host.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "compose" / "lab.yml"


def compose_services(path: Path = COMPOSE_FILE) -> dict[str, dict[str, Any]]:
    """The services of compose/lab.yml, with YAML anchors and merges resolved."""
    return yaml.safe_load(path.read_text())["services"]


def healthcheck(spec: dict[str, Any], interval_ns: int, timeout_ns: int) -> dict[str, Any] | None:
    """The service's health check, polled every ``interval_ns`` (a run starts sooner than 5 s)."""
    check = spec.get("healthcheck")
    if not check:
        return None
    return {"test": check["test"], "interval": interval_ns, "timeout": timeout_ns,
            "retries": int(check.get("retries", 3))}


def check_command(spec: dict[str, Any]) -> list[str] | None:
    """The argv of the service's health check, to run by hand (None: it has none)."""
    test = (spec.get("healthcheck") or {}).get("test")
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:] if test[0] == "CMD" else test)


def host_config(api: Any, spec: dict[str, Any], binds: dict[str, dict[str, str]],
                **extra: Any) -> Any:
    """The HostConfig of a service: limits, kernel settings, mounts, as Compose would set them.

    ``extra`` adds settings the lab's Compose file does not have (the grader's
    CPU limit and capped log, for instance).
    """
    ulimits = [Ulimit(name=name, soft=v["soft"], hard=v["hard"])
               for name, v in spec.get("ulimits", {}).items()]
    sysctls = {k: str(v) for k, v in spec.get("sysctls", {}).items()}
    tmpfs = dict(entry.split(":", 1) if ":" in entry else (entry, "")
                 for entry in spec.get("tmpfs", []))
    return api.create_host_config(
        init=spec.get("init", False), cap_add=spec.get("cap_add"), cap_drop=spec.get("cap_drop"),
        security_opt=spec.get("security_opt"), sysctls=sysctls or None, ulimits=ulimits or None,
        pids_limit=spec.get("pids_limit"), read_only=spec.get("read_only", False),
        tmpfs=tmpfs or None, mem_limit=spec.get("mem_limit"),
        memswap_limit=spec.get("memswap_limit"), binds=binds or None, **extra)


def ensure_volume(engine: docker.DockerClient, name: str, labels: dict[str, str]) -> str:
    """The named volume ``name``, created (with ``labels``) unless it exists."""
    try:
        engine.volumes.get(name)
    except docker.errors.NotFound:
        engine.volumes.create(name, labels=labels)
    return name


def create(engine: docker.DockerClient, image: str, spec: dict[str, Any], *, name: str,
           alias: str, network: str, labels: dict[str, str],
           binds: dict[str, dict[str, str]], health_interval_ns: int,
           health_timeout_ns: int, host_extra: dict[str, Any] | None = None) -> Any:
    """A container (not started) of service ``spec``, named ``alias`` on ``network``.

    Its host name is ``alias`` too, whatever the service's: the engine answers a
    container's host name as one more DNS alias on its network, so a spare copy
    keeping the service's host name (the benchmark's reference servers in
    epoll-server's definition, a test's spare tcp-server) would answer for the
    service as well, and take part of the load meant for it.
    """
    api = engine.api
    created = api.create_container(
        image, command=spec.get("command"), hostname=alias,
        user=spec.get("user", ""), name=name, working_dir=spec.get("working_dir"),
        labels={**spec.get("labels", {}), **labels}, environment=spec.get("environment"),
        volumes=[b["bind"] for b in binds.values()],
        healthcheck=healthcheck(spec, health_interval_ns, health_timeout_ns),
        host_config=host_config(api, spec, binds, **(host_extra or {})),
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[alias])}))
    return engine.containers.get(created["Id"])


def wait_ready(container: Any, alias: str, timeout: float) -> None:
    """Wait until the container runs (and is healthy, if it has a check); raise with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        state = health(container.attrs)
        if state in FAILED_STATES:
            logs = container.logs().decode("utf-8", "replace")
            exit_code = container.attrs["State"]["ExitCode"]
            raise RuntimeError(f"{alias} {state} ({exit_code}):\n{logs}")
        if state in READY_STATES:
            return
        time.sleep(0.1)
    logs = container.logs().decode("utf-8", "replace")
    raise TimeoutError(f"{alias} not healthy after {timeout:.0f} s:\n{logs}")


def wait_answering(container: Any, alias: str, command: list[str] | None,
                   timeout: float) -> None:
    """Wait until the container runs and ``command`` (its health check) succeeds in it.

    For a container made without a Docker health check: the check runs only
    until it first passes, not every interval for the container's life (a
    process started in the container each time, on the container's CPUs).
    Raises with the container's log when it exits or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        status = container.attrs["State"]["Status"]
        if status in FAILED_STATES:
            logs = container.logs().decode("utf-8", "replace")
            exit_code = container.attrs["State"]["ExitCode"]
            raise RuntimeError(f"{alias} {status} ({exit_code}):\n{logs}")
        if status == "running" and (command is None or container.exec_run(command)[0] == 0):
            return
        time.sleep(0.1)
    logs = container.logs().decode("utf-8", "replace")
    raise TimeoutError(f"{alias} not answering its health check after {timeout:.0f} s:\n{logs}")


def sweep(engine: docker.DockerClient, labels: dict[str, str]) -> int:
    """Remove every container, network and volume carrying ``labels`` ("": any value)."""
    filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
    removed = 0
    for container in engine.containers.list(all=True, filters=filters, ignore_removed=True):
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:  # removed meanwhile (a test, a parallel sweep)
            continue
        except docker.errors.APIError as error:
            if error.status_code == 409:  # "removal already in progress": another sweep's
                continue
            raise
        removed += 1
    for network in engine.networks.list(filters=filters):
        network.remove()
        removed += 1
    for volume in engine.volumes.list(filters=filters):
        volume.remove(force=True)
        removed += 1
    return removed
