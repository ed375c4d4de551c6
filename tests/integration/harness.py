"""Test hosts on a private Docker network, built from compose/lab.yml.

Each pytest worker gets its own network and its own copies of the lab's
services, started from the very definitions in ``compose/lab.yml`` (command,
user, capabilities, sysctls, ulimits, health check), so the suite proves the
topology the learners run. Everything a run creates carries the label
``socklab.test-run=<run id>``; ``sweep`` removes it all, and the Makefile calls
it when the run ends, however it ends.

    python -m integration.harness sweep RUN_ID   # or "all"
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from socklab.host import labhosts
from socklab.host.containers import Completed, exec_in, resources_inside
from socklab.host.labhosts import compose_services
from socklab.host.paths import REPO_ROOT
from socklab.host.stack import network_name

ROOT = REPO_ROOT
COMPOSE_FILE = ROOT / "compose" / "lab.yml"

RUN_LABEL = "socklab.test-run"
WORKER_LABEL = "socklab.test-worker"
OWNER_LABEL = "socklab.test-owner-pid"

START_TIMEOUT = 60.0

# A command run on a test host is killed after this long: no test hangs forever.
EXEC_TIMEOUT = 120


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return bool(result)


CONNECT_SCRIPT = r"""
import json, socket, sys
results = {}
for address in sys.argv[3:]:
    try:
        socket.create_connection((address, int(sys.argv[2])), timeout=float(sys.argv[1])).close()
        results[address] = "connected"
    except OSError as error:
        results[address] = type(error).__name__
print(json.dumps(results))
"""


class Host:
    """One container on the test network, reachable by its lab host name."""

    def __init__(self, container: docker.models.containers.Container, alias: str) -> None:
        self.container = container
        self.alias = alias

    @property
    def name(self) -> str:
        return self.container.name

    def run(self, *argv: str, timeout: int = EXEC_TIMEOUT, user: str = "") -> Completed:
        return exec_in(self.container, argv, timeout=timeout, user=user)

    def check(self, name: str, module: str = "socklab.clients.scripted",
              **kwargs: Any) -> dict[str, Any]:
        """Run one scripted client check (``module``'s ``name``) on this host; its JSON result."""
        result = self.run("python3", "-m", module, name, json.dumps(kwargs))
        if result.exit_code != 0:
            raise AssertionError(f"{name} on {self.alias} failed ({result.exit_code}):\n"
                                 f"{result.stderr}{result.stdout}")
        return json.loads(result.stdout)

    def probe(self, name: str, *args: str, timeout: int = EXEC_TIMEOUT) -> dict[str, Any]:
        """Run ``socklab probe NAME ARGS`` here, as a learner would; its JSON result."""
        result = self.run("socklab", "probe", name, *args, timeout=timeout)
        if result.exit_code != 0:
            raise AssertionError(f"probe {name} on {self.alias} failed ({result.exit_code}):\n"
                                 f"{result.stderr}{result.stdout}")
        return json.loads(result.stdout.splitlines()[-1])

    def read(self, path: str) -> str:
        return self.run("cat", path).stdout

    def connect_results(self, port: int, *addresses: str, timeout: float) -> dict[str, str]:
        """address -> "connected" or the error a TCP connect from here to it met."""
        result = self.run("python3", "-c", CONNECT_SCRIPT, str(timeout), str(port), *addresses)
        if result.exit_code != 0:
            raise AssertionError(f"connect from {self.alias} failed: {result.stderr}")
        return json.loads(result.stdout)

    def resources(self) -> dict[str, int]:
        """What this container uses, read inside it (its cgroup, v1 or v2, and /proc).

        Inside, not from the host: a swarm lab's containers run on other
        machines. The keys are those of ``socklab.host.containers.resources_inside``:
        ``current``, ``peak``, ``anon``, ``limit_hits``, ``cpu_ns``, and the
        server's ``server_pid``, ``server_hwm``, ``server_cpu_ns``.
        """
        return resources_inside(self.container, EXEC_TIMEOUT)

    def logs(self) -> str:
        return self.container.logs().decode("utf-8", "replace")

    def address(self) -> str:
        self.container.reload()
        networks = self.container.attrs["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]


class TestLab:
    """A worker's private network and the lab hosts started on it, on demand."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: docker.DockerClient, image: str, run_id: str, worker: str) -> None:
        self.client = client
        self.image = image
        self.prefix = f"socklab-t-{run_id}-{worker}"
        self.labels = {RUN_LABEL: run_id, WORKER_LABEL: worker,
                       OWNER_LABEL: os.environ.get("SOCKLAB_TEST_OWNER_PID", str(os.getpid()))}
        self.services = compose_services()
        self.hosts: dict[str, Host] = {}
        self.network = client.networks.create(self.prefix, driver="bridge", labels=self.labels)

    def host(self, service: str) -> Host:
        """The lab host ``service`` (e.g. ``tcp-server``), started on first use."""
        if service not in self.hosts:
            self.hosts[service] = self.start(service)
        return self.hosts[service]

    def hosts_up(self, *services: str) -> list[Host]:
        """Start several hosts in parallel."""
        missing = [s for s in services if s not in self.hosts]
        with ThreadPoolExecutor(max(1, len(missing))) as pool:
            for service, host in zip(missing, pool.map(self.start, missing), strict=True):
                self.hosts[service] = host
        return [self.hosts[s] for s in services]

    def start(self, service: str, alias: str | None = None, **overrides: Any) -> Host:
        """A new container of ``service``; ``alias`` gives a spare copy its own name.

        ``overrides`` replace keys of the compose service (``command``,
        ``cap_add``, …); ``sysctls`` and ``ulimits`` are merged into its own.
        """
        alias = alias or service
        spec = _override(self.services[service], overrides)
        # The health check runs here until it first passes (labhosts.wait_answering), not
        # by the engine every interval for the container's life: a process started in
        # the container each time, on CPUs the tests share.
        check = labhosts.check_command(spec)
        spec.pop("healthcheck", None)
        engine = self.engine_for(spec)
        binds = {self.volume(alias, name, engine): {"bind": path, "mode": "rw"}
                 for name, path in (v.split(":")[:2] for v in spec.get("volumes", []))}
        container = labhosts.create(
            engine, self.image, spec, name=f"{self.prefix}-{alias}", alias=alias,
            network=self.network_name, labels=self.labels, binds=binds,
            health_interval_ns=0, health_timeout_ns=0)
        container.start()
        host = Host(container, alias)
        labhosts.wait_answering(container, alias, check, START_TIMEOUT)
        return host

    @property
    def network_name(self) -> str:
        return self.network.name

    def engine_for(self, spec: dict[str, Any]) -> docker.DockerClient:
        """The engine a new container of ``spec`` starts on: this lab's one engine."""
        return self.client

    def volume(self, alias: str, name: str, engine: docker.DockerClient | None = None) -> str:
        """Host ``alias``'s copy of the lab's named volume ``name`` (e.g. ``uploads``).

        Created on first use, it outlives the container, as a Compose named
        volume does: a host removed and started again under the same alias
        finds the files it had written. Spare copies (other aliases) get their own.
        """
        return labhosts.ensure_volume(engine or self.client, f"{self.prefix}-{alias}-{name}",
                                      self.labels)

    def remove(self, host: Host) -> None:
        host.container.remove(force=True, v=True)
        self.hosts = {k: v for k, v in self.hosts.items() if v is not host}

    def close(self) -> None:
        sweep(self.client, {RUN_LABEL: self.labels[RUN_LABEL],
                            WORKER_LABEL: self.labels[WORKER_LABEL]})



class SwarmLab(TestLab):
    """A lab stack deployed on a Docker Swarm, seen through its nodes' engines.

    ``host(service)`` is the stack's own task of that service, on whichever
    node Swarm placed it; ``start`` puts a spare copy (a plain container with
    the run's labels, on the stack's attachable overlay network) on a node of
    the service's kind: servers on nodes labelled ``socklab.servers``, clients
    on nodes labelled ``socklab.clients``, as compose/swarm.yml places them.
    Engines are reached as the manager is (``ssh://user@address`` over
    paramiko), each node at the address it advertises to the swarm. Only what
    the run started is removed at the end; the stack stays deployed.

    The suite targets a swarm lab when ``SOCKLAB_SWARM`` names the manager's
    engine (e.g. ``ssh://labadmin@172.18.0.2``) and ``SOCKLAB_STACK`` the stack.
    """

    def __init__(self, manager_url: str, stack: str, run_id: str, worker: str) -> None:
        self.manager_url = manager_url
        self.stack = stack
        self.engines: dict[str, docker.DockerClient] = {}
        manager = self.engine(manager_url)
        spec = manager.services.get(f"{stack}_client-1").attrs["Spec"]
        self.prefix = f"socklab-t-{run_id}-{worker}"
        self.client = manager
        self.image = spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
        self.labels = {RUN_LABEL: run_id, WORKER_LABEL: worker,
                       OWNER_LABEL: os.environ.get("SOCKLAB_TEST_OWNER_PID", str(os.getpid()))}
        self.services = compose_services()
        self.hosts: dict[str, Host] = {}

    @property
    def network_name(self) -> str:
        return network_name(self.stack)

    def engine(self, url: str) -> docker.DockerClient:
        if url not in self.engines:
            self.engines[url] = docker.DockerClient(base_url=url, use_ssh_client=False,
                                                    timeout=EXEC_TIMEOUT)
        return self.engines[url]

    def node_engine(self, node_id: str) -> docker.DockerClient:
        """The engine of swarm node ``node_id``, at the address it advertises."""
        address = self.client.nodes.get(node_id).attrs["Status"]["Addr"]
        scheme, _, rest = self.manager_url.partition("://")
        user = rest.split("@", 1)[0] + "@" if "@" in rest else ""
        return self.engine(f"{scheme}://{user}{address}")

    def task_placement(self, service: str) -> tuple[str, str]:
        """(node id, container id) of the running task of the stack's ``service``."""
        def running() -> list[dict[str, Any]]:
            tasks = self.client.api.tasks(filters={"service": f"{self.stack}_{service}",
                                                   "desired-state": "running"})
            return [t for t in tasks if t["Status"]["State"] == "running"]

        if not wait_until(running, START_TIMEOUT, interval=1.0):
            raise TimeoutError(f"no running task of {self.stack}_{service}")
        task = running()[0]
        return task["NodeID"], task["Status"]["ContainerStatus"]["ContainerID"]

    def start(self, service: str, alias: str | None = None, **overrides: Any) -> Host:
        if alias is None or alias == service:  # the stack's own task
            node, container_id = self.task_placement(service)
            host = Host(self.node_engine(node).containers.get(container_id), service)
            labhosts.wait_ready(host.container, service, START_TIMEOUT)
            return host
        return super().start(service, alias, **overrides)

    def engine_for(self, spec: dict[str, Any]) -> docker.DockerClient:
        kind = "clients" if spec.get("labels", {}).get("socklab.role") == "client" else "servers"
        nodes = [n for n in self.client.nodes.list()
                 if n.attrs["Spec"].get("Labels", {}).get(f"socklab.{kind}") == "true"
                 and n.attrs["Status"]["State"] == "ready"]
        if not nodes:
            raise RuntimeError(f"no ready swarm node is labelled socklab.{kind}=true")
        return self.node_engine(sorted(nodes, key=lambda n: n.id)[0].id)

    def remove(self, host: Host) -> None:
        if host.container.labels.get(RUN_LABEL) != self.labels[RUN_LABEL]:
            raise ValueError(f"{host.alias} belongs to the stack, not to this test run")
        super().remove(host)

    def close(self) -> None:
        for engine in self.engines.values():
            sweep(engine, {RUN_LABEL: self.labels[RUN_LABEL],
                           WORKER_LABEL: self.labels[WORKER_LABEL]})
            engine.close()


def _override(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**spec, **overrides}
    for key in ("sysctls", "ulimits"):
        merged[key] = {**spec.get(key, {}), **overrides.get(key, {})}
    return merged


def sweep(client: docker.DockerClient, labels: dict[str, str]) -> int:
    """Remove every container, network and volume carrying ``labels``; count them."""
    return labhosts.sweep(client, labels)


def sweep_orphans(client: docker.DockerClient) -> int:
    """Remove what runs whose owning pytest process is gone left behind."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL},
                                            ignore_removed=True):
        pid = container.labels.get(OWNER_LABEL, "")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            removed += sweep(client, {RUN_LABEL: container.labels[RUN_LABEL]})
    return removed


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "sweep":
        print("usage: python -m integration.harness sweep RUN_ID|all", file=sys.stderr)
        return 2
    labels = {RUN_LABEL: "" if argv[1] == "all" else argv[1]}
    removed = sweep(docker.from_env(), labels)
    print(f"socklab: removed {removed} test containers/networks/volumes of run {argv[1]}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
