"""Small helpers the probes share: kernel settings, errno names, timing."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

PROC_SYS = Path("/proc/sys")


def sysctl(name: str) -> str:
    """The value in force in this host's namespace, read from /proc/sys."""
    return (PROC_SYS / name.replace(".", "/")).read_text().strip()


def port_range() -> tuple[int, int]:
    low, high = sysctl("net.ipv4.ip_local_port_range").split()
    return int(low), int(high)


def errno_name(error: OSError) -> str:
    return errno.errorcode.get(error.errno or 0, str(error))


def try_connect(host: str, port: int, timeout: float,
                source: socket.socket | None = None) -> tuple[socket.socket | None, str]:
    """Connect; return ``(socket, "ok")`` or ``(None, errno name or "timeout")``."""
    sock = source or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except TimeoutError:
        sock.close()
        return None, "timeout"
    except OSError as error:
        sock.close()
        return None, errno_name(error)
    return sock, "ok"


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self) -> float:
        return round(time.monotonic() - self.started, 4)
