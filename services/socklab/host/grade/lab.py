"""The grading lab: a submission on its variant's host, a client beside it, nothing else.

Each grading gets a bridge network of its own, ``internal`` and with no
address of this machine on it (``NO_WAY_OUT``: nothing in it reaches the
machine, its other networks or anything outside), the learner's server under
the variant's host name with the limits of the lab's own server of that
variant (user, capabilities, read-only root, writable places, memory,
processes, ``nofile``, sysctls; all read from ``compose/lab.yml``) plus a CPU
limit, and one client host. The reference server, for the performance check,
joins under another name only for that check. Everything carries the label
``socklab.grade=<run id>`` and is removed by :meth:`GradeLab.close` (or by
``sweep``) however a run ends.

The server's output goes to Docker's ``json-file`` log, capped at two files of
1 MiB: a server that prints forever cannot fill the disk, and the tail (where
a traceback is) is what is kept.

The engine may be this machine's or a worker VM's (``ssh://``): the
submission reaches the server as a volume filled through the engine's API
(``put_archive``), never as a path of this machine, and the server's /proc
is read here (``procfs``) or, on another engine's machine, by a reader
container beside the server (``procwatch``).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors

from socklab.host import labhosts
from socklab.host.containers import Completed, exec_in
from socklab.host.grade import procfs
from socklab.host.grade.procwatch import ProcWatch
from socklab.host.grade.submission import MOUNT, STAGED_PREFIX, Submission
from socklab.registry import CLIENTS, Variant

RUN_LABEL = "socklab.grade"
# Where a run's submission was staged: a sweep of a kept lab removes it too.
STAGED_LABEL = "socklab.grade.staged"
# One CPU of the machine for the submission: a spinning server slows itself, not the rest.
CPU_LIMIT_NS = 1_000_000_000
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "1m", "max-file": "2"}}
LOG_CAP = 2 << 20
REFERENCE_ALIAS = "reference"
# ``internal`` alone keeps a network's traffic from being forwarded elsewhere,
# but the bridge still carries an address of this machine (the gateway), and
# through it every address of the machine answers: measured with Docker 20.10,
# a container on an internal network connected to a listener on the host's
# 172.17.0.1 and on its own gateway. With no address on the bridge nothing of
# the machine is on the network; a connect to it fails inside the container
# with EHOSTUNREACH ("No route to host"), and a submission, which has no
# capability to forge frames, cannot get past that.
NO_WAY_OUT = {"com.docker.network.bridge.inhibit_ipv4": "true"}
# The lab's own servers are in the image (/opt/socklab): an empty, read-only mount
# over them keeps a submission from starting one and taking its marks.
HIDE_LAB = "/opt/socklab:ro,size=4k,mode=0555"
# How the server's /proc is read: from this machine, or by a reader container on the engine's.
OBSERVE_HOST, OBSERVE_READER = "host", "reader"


def is_local(engine: docker.DockerClient) -> bool:
    """Whether ``engine`` runs on this machine (its processes are in this /proc)."""
    url = str(engine.api.base_url)
    return url.startswith(("http+docker://localhost", "http+docker://localunixsocket",
                           "unix://"))


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def submission_archive(directory: Path) -> bytes:
    """The staged submission as a tar: owned by root, modes as staging set them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name, filter=_owned_by_root)
    return buffer.getvalue()


def reference_overrides(spec: dict[str, Any]) -> dict[str, Any]:
    """How the reference differs from the lab's own server: ftp writes every upload
    through the page cache, as the exercise's server does.

    The lab's ftp-server writes large uploads with O_DIRECT from a second thread,
    which a learner is not asked for: against it, the corpus's correct servers
    (64 KiB reads, written and hashed as they come) fell from 0.50-0.62 of the
    reference to 0.36-0.48, with no change of their own.
    """
    command = spec.get("command") or []
    if command[:3] == ["socklab", "serve", "ftp"]:
        return {"command": [*command, "--page-cache-only"]}
    return {}


class GradeLab:
    """One grading's network, server and client; a context manager that removes them."""

    def __init__(self, engine: docker.DockerClient, image: str, run_id: str,
                 variant: Variant, submission: Submission,
                 labels: dict[str, str] | None = None, observe: str = "") -> None:
        """``observe``: OBSERVE_HOST or OBSERVE_READER (default: host for this machine's
        engine, a reader container for another's)."""
        self.engine, self.image, self.variant, self.submission = engine, image, variant, submission
        self.observe = observe or (OBSERVE_HOST if is_local(engine) else OBSERVE_READER)
        self.watches: dict[str, ProcWatch] = {}
        self.run_id = run_id
        self.prefix = f"socklab-grade-{run_id}"
        self.labels = {**(labels or {}), RUN_LABEL: run_id}
        if submission.staged is not None:
            self.labels[STAGED_LABEL] = str(submission.staged)
        self.services = labhosts.compose_services()
        self.network = engine.networks.create(self.prefix, driver="bridge", internal=True,
                                              options=NO_WAY_OUT, labels=self.labels)
        self.server: Any = None
        self.client: Any = None
        self.reference: Any = None
        self.starts = 0
        self.submission_volume: str | None = None  # shipped at the first start

    def __enter__(self) -> GradeLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the hosts -------------------------------------------------------------------

    def _ship_submission(self, staged: Path) -> str:
        """A volume holding the submission, filled through the engine's API (which works
        the same for a remote engine): an unstarted container is its door."""
        volume = labhosts.ensure_volume(self.engine, f"{self.prefix}-submission", self.labels)
        door = self.engine.containers.create(
            self.image, ["true"], name=f"{self.prefix}-stager", labels=self.labels,
            network_mode="none", volumes={volume: {"bind": MOUNT, "mode": "rw"}})
        try:
            if not door.put_archive(MOUNT, submission_archive(staged)):
                raise RuntimeError(f"the engine refused the submission's files ({volume})")
        finally:
            door.remove(force=True)
        return volume

    def _create(self, service: str, alias: str, suffix: str,
                binds: dict[str, dict[str, str]] | None = None, **overrides: Any) -> Any:
        spec = {**self.services[service], **overrides}
        spec.pop("healthcheck", None)  # the grader watches the ports itself
        binds = dict(binds or {})
        for entry in spec.get("volumes", []):  # ftp's uploads: a fresh volume per start
            name, path = entry.split(":")[:2]
            volume = labhosts.ensure_volume(self.engine, f"{self.prefix}-{name}-{suffix}",
                                            self.labels)
            binds[volume] = {"bind": path, "mode": "rw"}
        container = labhosts.create(
            self.engine, self.image, spec, name=f"{self.prefix}-{suffix}", alias=alias,
            network=self.network.name, labels=self.labels, binds=binds,
            health_interval_ns=0, health_timeout_ns=0,
            host_extra={"nano_cpus": CPU_LIMIT_NS, "log_config": LOG_CONFIG}
            if service != CLIENTS[0] else None)
        container.start()
        if self.observe == OBSERVE_READER and service != CLIENTS[0]:
            self.watches[container.id] = ProcWatch(
                self.engine, self.image, self.init_pid(container), self.variant.transport,
                name=f"{self.prefix}-{suffix}-proc", labels=self.labels)
        return container

    def _remove(self, container: Any) -> None:
        watch = self.watches.pop(container.id, None)
        if watch is not None:
            watch.close()
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)

    def start_client(self) -> None:
        self.client = self._create(CLIENTS[0], CLIENTS[0], "client")

    def start_server(self) -> None:
        """The submission (a fresh container each time) under the variant's host name."""
        if self.server is not None:
            self._remove(self.server)
        self.starts += 1
        overrides: dict[str, Any] = {}
        if self.submission.staged is not None:
            if self.submission_volume is None:
                self.submission_volume = self._ship_submission(self.submission.staged)
            overrides = {"command": list(self.submission.argv), "working_dir": MOUNT,
                         "binds": {self.submission_volume: {"bind": MOUNT, "mode": "ro"}},
                         "tmpfs": [*self.services[self.variant.host].get("tmpfs", []),
                                   HIDE_LAB]}
        self.server = self._create(self.variant.host, self.variant.host,
                                   f"server-{self.starts}", **overrides)

    def start_reference(self) -> None:
        # Its host name is its alias (labhosts.create): with the variant's host name the
        # reference would answer for the learner's server too, taking part of its load.
        if self.reference is None:
            self.reference = self._create(self.variant.host, REFERENCE_ALIAS, "reference",
                                          **reference_overrides(self.services[self.variant.host]))

    def stop_reference(self) -> None:
        if self.reference is not None:
            self._remove(self.reference)
            self.reference = None

    # --- looking at the server -------------------------------------------------------

    def server_state(self) -> dict[str, Any]:
        self.server.reload()
        return self.server.attrs["State"]

    def alive(self) -> bool:
        return self.server_state()["Status"] == "running"

    def init_pid(self, container: Any | None = None) -> int:
        container = container or self.server
        container.reload()
        return int(container.attrs["State"]["Pid"] or 0)

    def _proc(self, container: Any) -> tuple[procfs.Reader, procfs.Counter]:
        """Where ``container``'s /proc files are read now: here, or a fresh reading."""
        watch = self.watches.get(container.id)
        if watch is None:
            return procfs.read_host_file, procfs.count_entries
        snapshot = watch.snapshot()
        return snapshot.read, snapshot.count

    def sample(self) -> procfs.Sample | None:
        pid = self.init_pid()
        return procfs.sample(pid, *self._proc(self.server)) if pid else None

    def listening(self, container: Any | None = None) -> list[procfs.Listening]:
        """Where the server listens on each of its variant's ports (empty when it is gone)."""
        container = container or self.server
        init = self.init_pid(container)
        if not init:
            return []
        read, _ = self._proc(container)
        pid = procfs.first_child(init, read)
        if pid is None:
            return []
        return [procfs.listening(pid, port, self.variant.transport, read)
                for port in self.variant.ports.values()]

    def wait_ready(self, window: float, container: Any | None = None) -> tuple[bool, str, float]:
        """Poll until every port answers other hosts; (ready, why not, seconds taken).

        Never a fixed sleep: the kernel's listening table is read every 50 ms
        until each port is bound to an address other hosts reach, the process
        exits, or ``window`` seconds pass.
        """
        container = container or self.server
        started = time.monotonic()
        while True:
            container.reload()
            state = container.attrs["State"]
            if state["Status"] != "running":
                return False, (f"the server exited with code {state.get('ExitCode')} before "
                               "it listened"), time.monotonic() - started
            found = self.listening(container)
            if found and all(port.ready for port in found):
                return True, "", time.monotonic() - started
            if time.monotonic() - started > window:
                return False, not_ready_reason(found, window, self.variant.transport), window
            time.sleep(0.05)

    def logs(self, container: Any | None = None) -> str:
        container = container or self.server
        with contextlib.suppress(docker.errors.APIError):
            raw = container.logs(stdout=True, stderr=True, tail=20000)
            return raw[-LOG_CAP:].decode("utf-8", "replace")
        return ""

    def client_run(self, argv: list[str], timeout: int) -> Completed:
        return exec_in(self.client, argv, timeout=timeout)

    def server_run(self, argv: list[str], timeout: int, user: str = "") -> Completed:
        """A command in the server's container (the grader's own setup, never the learner's)."""
        return exec_in(self.server, argv, timeout=timeout, user=user)

    def enter_command(self) -> str:
        return f"docker exec -it {self.client.name} bash"

    def close(self) -> None:
        for watch in self.watches.values():
            watch.close()
        self.watches.clear()
        sweep(self.engine, self.labels[RUN_LABEL])


def not_ready_reason(found: list[procfs.Listening], window: float, transport: str) -> str:
    """Why a server is not ready after ``window`` seconds, in words a learner can act on."""
    kind = "listening on" if transport == "tcp" else "bound to"
    loopback = [p for p in found if p.loopback_only]
    if loopback:
        where = ", ".join(f"{a}:{p.port}" for p in loopback for a in p.addresses)
        return (f"the server is {kind} {where} only: the loopback address answers its own "
                "host, not the client hosts. Bind to 0.0.0.0 (or '') instead")
    missing = [str(p.port) for p in found if not p.addresses]
    return (f"nothing was {kind} port {', '.join(missing) or '?'} after {window:.0f} s "
            f"({transport}); the server must {'listen' if transport == 'tcp' else 'bind'} "
            "on its variant's port")


def sweep(engine: docker.DockerClient, run_id: str = "", label: str = RUN_LABEL) -> int:
    """Remove what grading run ``run_id`` (every grading run: "") left behind.

    ``label``: the label that carries ``run_id``; another one than
    ``RUN_LABEL`` (a class run's, given with ``--label``) removes every
    grading lab carrying it. A kept lab's staged submission (its containers
    name it in ``STAGED_LABEL``) goes with it.
    """
    filters = {"label": [f"{label}={run_id}" if run_id else label]}
    staged = {c.labels.get(STAGED_LABEL, "")
              for c in engine.containers.list(all=True, filters=filters, ignore_removed=True)}
    removed = labhosts.sweep(engine, {label: run_id})
    for path in staged:
        if Path(path).name.startswith(STAGED_PREFIX):  # only what stage() made
            shutil.rmtree(path, ignore_errors=True)
    return removed
