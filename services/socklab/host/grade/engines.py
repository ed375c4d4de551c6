"""The Docker engines a grading runs on: this machine's, or a swarm worker's over ssh.

A class spread over a swarm grades each learner on one worker's engine
(``ssh://user@address``), as plain containers: a Swarm service could not
carry the grading lab's protections (``no-new-privileges``, a bridge with no
address of the machine on it). The workers are the swarm's nodes labelled
``socklab.servers`` (as Ansible labels them; every ready worker when none
is), their addresses read from the manager.

The Docker SDK's ssh transport (paramiko) reads ``~/.ssh/config`` and
``~/.ssh/known_hosts`` only. ``--ssh-config FILE`` (``make vms`` writes
``.vms/ssh_config``) is given to it as a home of its own: the file as
``config``, and the known hosts files it names with this user's own, as
``known_hosts``. Host keys are checked: an unknown host is refused.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVERS_LABEL = "socklab.servers"


class EngineError(Exception):
    """A worker or the manager cannot be used; the message says why."""


def known_hosts_files(config_text: str) -> list[Path]:
    """The ``UserKnownHostsFile`` paths an ssh_config names (each may list several)."""
    found: list[Path] = []
    for line in config_text.splitlines():
        keyword, _, rest = line.strip().replace("=", " ", 1).partition(" ")
        if keyword.lower() != "userknownhostsfile":
            continue
        try:
            words = shlex.split(rest, comments=True)
        except ValueError as error:
            raise EngineError(f"ssh config line {line.strip()!r}: {error}") from None
        found += [Path(w).expanduser() for w in words if w != "/dev/null"]
    return found


def ssh_home(ssh_config: Path, into: Path) -> Path:
    """``into`` made a home whose ~/.ssh holds ``ssh_config`` and the hosts it trusts."""
    text = ssh_config.read_text()
    directory = into / ".ssh"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "config").write_text(text)
    known = [Path("~/.ssh/known_hosts").expanduser(), *known_hosts_files(text)]
    texts = [p.read_text() for p in known if p.is_file()]
    (directory / "known_hosts").write_text("".join(t if t.endswith("\n") or not t else t + "\n"
                                                   for t in texts))
    return into


# The Docker SDK's ssh transport reads ~/.ssh (config, known hosts) only while a client
# is made, with no way to name another directory: HOME points at ``home`` for that
# moment. HOME is the process's, so the moments are taken one at a time.
_HOME_LOCK = threading.Lock()


@contextlib.contextmanager
def _home(home: Path | None) -> Iterator[None]:
    if home is None:
        yield
        return
    with _HOME_LOCK:
        before = os.environ.get("HOME")
        os.environ["HOME"] = str(home)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = before


def connect(url: str | None, home: Path | None = None, timeout: int = 120) -> Any:
    """A Docker SDK client: ``url`` (``ssh://…``), or this machine's engine when None.

    ``home``: an ssh home (``ssh_home``) the ssh transport reads its
    configuration from, while the client is made.
    """
    import docker

    if not url:
        return docker.from_env(timeout=timeout)
    with _home(home):
        return docker.DockerClient(base_url=url, use_ssh_client=False, timeout=timeout)


@contextlib.contextmanager
def session_home(ssh_config: str | None) -> Iterator[Path | None]:
    """A temporary ssh home for ``ssh_config`` (None: the user's own), removed after."""
    if not ssh_config:
        yield None
        return
    path = Path(ssh_config)
    if not path.is_file():
        raise EngineError(f"no ssh config {path}")
    with tempfile.TemporaryDirectory(prefix="socklab-ssh-") as directory:
        yield ssh_home(path, Path(directory))


@dataclass(frozen=True)
class Worker:
    """One engine a class's gradings go to."""

    name: str
    url: str | None  # None: this machine's engine
    cpus: int


def worker_url(manager_url: str, address: str) -> str:
    """A node's engine, reached as the manager is (same ssh user)."""
    user = urllib.parse.urlparse(manager_url).username
    host = f"[{address}]" if ":" in address else address
    return f"ssh://{user}@{host}" if user else f"ssh://{host}"


def node_address(node: dict[str, Any]) -> str:
    """Where a node is reached: a manager's ``Status.Addr`` may read 0.0.0.0 or
    127.0.0.1, its ``ManagerStatus.Addr`` (``address:2377``) does not."""
    address = str(node["Status"].get("Addr") or "")
    manager = str((node.get("ManagerStatus") or {}).get("Addr") or "")
    if manager and address in ("", "0.0.0.0", "127.0.0.1"):
        address = manager.rsplit(":", 1)[0].strip("[]")
    return address


def swarm_workers(manager: Any, manager_url: str) -> list[Worker]:
    """The ready, active nodes that run the lab's servers (``socklab.servers``)."""
    nodes = [n.attrs for n in manager.nodes.list()]
    usable = [n for n in nodes if n["Status"]["State"] == "ready"
              and n["Spec"].get("Availability") == "active"]
    labelled = [n for n in usable if SERVERS_LABEL in (n["Spec"].get("Labels") or {})]
    chosen = labelled or [n for n in usable if n["Spec"].get("Role") == "worker"] or usable
    if not chosen:
        raise EngineError(f"the swarm of {manager_url} has no ready node to grade on")
    return [Worker(n["Description"]["Hostname"], worker_url(manager_url, node_address(n)),
                   max(1, int(n["Description"]["Resources"]["NanoCPUs"]) // 10**9))
            for n in sorted(chosen, key=lambda n: n["Description"]["Hostname"])]
