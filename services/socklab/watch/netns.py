"""Reach into a container's network namespace from outside it, once per container.

A netlink socket belongs to the network namespace it was made in, whoever
uses it later. So for each host the watcher enters the namespace once, in a
thread of its own (``setns(2)`` moves only the calling thread), makes its
sock_diag socket and reads the sysctls that do not change there
(``/proc/sys/net`` answers for the reading thread's namespace), and the
thread ends. Every refresh after that reads the socket and
``/proc/<pid>/net/*`` (the namespace of that process), with no ``docker
exec`` and no new process. It needs ``CAP_SYS_ADMIN`` over the namespace
(root on the machine; ``--cap-add SYS_ADMIN`` with ``--pid host`` in a
container).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from dataclasses import dataclass

from socklab.watch import diag

CLONE_NEWNET = 0x40000000
# Per-namespace settings read once: they change only when a host is recreated.
SYSCTLS = ("net/ipv4/ip_local_port_range", "net/core/somaxconn")


@dataclass
class Namespace:
    """A host's sock_diag socket and its settings, made inside its network namespace."""

    pid: int
    diag: socket.socket
    sysctls: dict[str, str]
    inode: int = 0  # of /proc/<pid>/ns/net when entered: which namespace it is


def namespace_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def still_in(namespace: Namespace) -> bool:
    """Whether ``namespace.pid`` still runs in the namespace its socket was made in (a
    restarted container has a new process in a new one; the old PID may be reused)."""
    return namespace_inode(namespace.pid) == namespace.inode


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def read_sysctl(name: str) -> str | None:
    try:
        with open(f"/proc/sys/{name}") as file:
            return file.read().strip()
    except OSError:
        return None


def enter(pid: int) -> Namespace:
    """``pid``'s network namespace: a sock_diag socket made in it, its settings read there."""
    made: list[Namespace | BaseException] = []

    def inside() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                inode = os.fstat(fd).st_ino
                _setns(fd)
            finally:
                os.close(fd)
            made.append(Namespace(pid, diag.open_socket(),
                                  {name: value for name in SYSCTLS
                                   if (value := read_sysctl(name)) is not None}, inode))
        except BaseException as error:  # raised again in the caller's thread
            made.append(error)

    thread = threading.Thread(target=inside, name=f"netns-{pid}")
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]
