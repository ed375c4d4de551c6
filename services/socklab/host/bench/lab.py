"""The benchmark's own hosts: a private Docker network and containers from compose/lab.yml.

Every bench run gets a network and containers named ``socklab-bench-<run>-…``
and labelled ``socklab.bench-run=<run>``; ``close`` (called in ``finally``,
also on Ctrl-C and SIGTERM) removes them, and ``python -m socklab.host.bench
sweep RUN|all`` removes what a killed run left. Servers are started with
their compose/lab.yml definition (command, user, capabilities, sysctls,
ulimits, memory, read-only root), the references with epoll-server's
definition and their own command; the load comes from the client hosts,
never from the host or through a published port.

The host reads each container's CPU time and memory from its cgroup (v1 or
v2) and the server process's RSS from /proc (``socklab.host.containers``):
reading them costs the container nothing, so they can be sampled during a run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker

from socklab.host import containers, labhosts
from socklab.host.labhosts import compose_services

RUN_LABEL = "socklab.bench-run"
OWNER_LABEL = "socklab.bench-owner-pid"
NAME_PREFIX = "socklab-bench"
START_TIMEOUT = 90.0
EXEC_TIMEOUT = 900  # no load step may hang the run for ever
CPU_SAMPLE_INTERVAL = 0.05


class ExecError(RuntimeError):
    """A command on a bench host failed."""


class BenchHost:
    """One container of the bench network, reachable there by ``alias``."""

    def __init__(self, container: Any, alias: str) -> None:
        self.container = container
        self.alias = alias
        self.cgroup = containers.CgroupDirs.on_host(container.id)
        self._pid: int | None = None
        self._thread_wait: dict[str, int] = {}  # ns per server thread, as last read
        self._wait_total = 0

    def run(self, *argv: str, timeout: int = EXEC_TIMEOUT) -> containers.Completed:
        return containers.exec_in(self.container, argv, timeout=timeout)

    def json(self, *argv: str, timeout: int = EXEC_TIMEOUT,
             whole: bool = False) -> dict[str, Any]:
        """Run a command that prints JSON: its last line, or its ``whole`` output (iperf3 -J)."""
        code, out, err = self.run(*argv, timeout=timeout)
        if code != 0:
            raise ExecError(f"{' '.join(argv[:6])}… on {self.alias} failed ({code}): "
                            f"{(err or out).strip()[-800:]}")
        return json.loads(out if whole else out.strip().splitlines()[-1])

    def start_detached(self, *argv: str) -> None:
        containers.exec_detached(self.container, argv)

    # --- what the host can read about the container without entering it ---------------

    def cpu_seconds(self) -> float | None:
        """CPU time of every process of the container so far (cgroup), or None if unreadable."""
        ns = containers.read_cgroup(self.cgroup, ["cpu_ns"])["cpu_ns"]
        return None if ns is None else ns / 1e9

    def memory_bytes(self) -> int | None:
        """Memory charged to the container's cgroup now."""
        return containers.read_cgroup(self.cgroup, ["memory"])["memory"]

    def server_wait_seconds(self) -> float | None:
        """Time the server's threads spent runnable but waiting for a CPU, so far.

        The second field of /proc/<pid>/task/<tid>/schedstat (run-queue wait, ns):
        on a shared machine, the share of a run the server wanted a CPU and had none.
        Threads come and go (the threaded servers), so the total adds each thread's
        growth since it was last read: it never goes back when a thread ends.
        """
        pid = self.server_pid(cached=True)
        if pid is None:
            return None
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                waited = int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that just ended
            tid = stat.parent.name
            self._wait_total += waited - self._thread_wait.get(tid, 0)
            self._thread_wait[tid] = waited
        return self._wait_total / 1e9

    def server_pid(self, cached: bool = False) -> int | None:
        """Host PID of the server: the one child of the container's init (tini)."""
        if cached and self._pid:
            return self._pid
        self.container.reload()
        child = containers.first_child(self.container.attrs["State"]["Pid"])
        self._pid = int(child) if child else None
        return self._pid

    def server_rss(self) -> int | None:
        """Resident memory of the server process (bytes), from /proc/<pid>/status."""
        pid = self.server_pid()
        return None if pid is None else containers.process_usage(f"/proc/{pid}")["rss"]


@contextmanager
def sampling_cpu(host: BenchHost) -> Iterator[dict[str, list[tuple[float, float]]]]:
    """(monotonic time, seconds) every 50 ms while the block runs, of ``host``'s CPU
    time (``cpu``, its cgroup) and of its server's run-queue wait (``wait``)."""
    samples: dict[str, list[tuple[float, float]]] = {"cpu": [], "wait": []}
    stop = threading.Event()

    def sample_once() -> None:
        now = time.monotonic()
        for key, read in (("cpu", host.cpu_seconds), ("wait", host.server_wait_seconds)):
            try:
                value = read()
            except Exception:  # a missed sample; window_rate checks the edges are covered
                continue
            if value is not None:
                samples[key].append((now, value))

    def sample() -> None:
        while True:
            sample_once()
            if stop.wait(CPU_SAMPLE_INTERVAL):
                break

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        sample_once()


def pinned_cpus(role: str, count: int | None = None) -> str | None:
    """The CPUs a bench host runs on: servers on CPU 0, clients (the load generator,
    the idle connections' holder) on the others, so that a server's figures are its
    own and not shared with its load; None (unpinned) on a machine of one CPU."""
    count = count if count is not None else (os.cpu_count() or 1)
    if count < 2 or role not in ("server", "client"):
        return None
    return "0" if role == "server" else ("1" if count == 2 else f"1-{count - 1}")


class BenchLab:
    """A bench run's network and hosts; a context manager that removes them all."""

    def __init__(self, image: str, run_id: str, client: Any = None) -> None:
        self.client = client or docker.from_env()
        self.image = image
        self.run_id = run_id
        self.prefix = f"{NAME_PREFIX}-{run_id}"
        self.labels = {RUN_LABEL: run_id, OWNER_LABEL: str(os.getpid())}
        self.services = compose_services()
        self.network = self.client.networks.create(self.prefix, driver="bridge",
                                                   labels=self.labels)

    def __enter__(self) -> BenchLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, service: str, alias: str | None = None,
              command: list[str] | None = None) -> BenchHost:
        """A container of compose ``service``, named ``alias`` on the network, ready."""
        alias = alias or service
        spec = dict(self.services[service])
        if command is not None:
            spec["command"] = command
        # No Docker health check: its process, started in the container every
        # interval, took 4-7% of the pinned server's CPU during the bulk runs
        # (perf). The check's command runs here until it first passes.
        check = labhosts.check_command(spec)
        spec.pop("healthcheck", None)
        binds = {self._volume(alias, name): {"bind": path, "mode": "rw"}
                 for name, path in (v.split(":")[:2] for v in spec.get("volumes", []))}
        cpus = pinned_cpus(spec.get("labels", {}).get("socklab.role", ""))
        container = labhosts.create(
            self.client, self.image, spec, name=f"{self.prefix}-{alias}", alias=alias,
            network=self.network.name, labels=self.labels, binds=binds,
            health_interval_ns=0, health_timeout_ns=0,
            host_extra={"cpuset_cpus": cpus} if cpus else None)
        host = BenchHost(container, alias)
        try:
            container.start()
            labhosts.wait_answering(container, alias, check, START_TIMEOUT)
        except BaseException:
            container.remove(force=True, v=True)
            raise
        return host

    def start_many(self, specs: list[tuple[str, str | None, list[str] | None]]) -> list[BenchHost]:
        """Start several hosts at once ((service, alias, command) each); all or none."""
        with ThreadPoolExecutor(max(1, len(specs))) as pool:
            futures = [pool.submit(self.start, *spec) for spec in specs]
        failed = [f.exception() for f in futures if f.exception()]
        if failed:
            for future in futures:
                if not future.exception():
                    self.remove(future.result())
            raise failed[0]  # type: ignore[misc]
        return [f.result() for f in futures]

    def _volume(self, alias: str, name: str) -> str:
        return labhosts.ensure_volume(self.client, f"{self.prefix}-{alias}-{name}", self.labels)

    def remove(self, host: BenchHost) -> None:
        host.container.remove(force=True, v=True)

    def close(self) -> None:
        sweep(self.client, self.run_id)


def sweep(client: Any, run_id: str) -> int:
    """Remove every container, network and volume of bench run ``run_id`` ("" = every run)."""
    return labhosts.sweep(client, {RUN_LABEL: run_id})
