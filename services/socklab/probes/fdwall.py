"""The 1024-descriptor wall of ``select`` versus ``epoll``.

``select()`` takes bitmaps of FD_SETSIZE (1024) bits: a descriptor numbered
1024 or more cannot be watched at all (CPython raises "filedescriptor out of
range in select()"). A select server whose process may open more descriptors
(``ulimit -n`` above 1024) will sooner or later be handed one by
``accept()``. Ours refuses that connection with a log line and keeps serving
the ones it has. ``epoll`` has no such limit: it holds 10,000 connections.

The probe opens N connections, reads each one's greeting (a refused one is
closed instead), then has every greeted connection do one exchange.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from typing import Any

from socklab.clients.core import recv_exact
from socklab.probes.common import Stopwatch, try_connect
from socklab.protocol.errors import ProtocolError
from socklab.registry import VARIANTS

NAME = "fdwall"
HELP = "open N connections at once; count greeted, refused and served"

# select-server's echo; epoll-server speaks the same, so --host epoll-server works as is.
SELECT = VARIANTS["select"]
GREETING = SELECT.greeting


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=SELECT.host, help="(default: %(default)s)")
    parser.add_argument("--port", type=int, default=SELECT.main_port,
                        help="(default: %(default)s)")
    parser.add_argument("--connections", type=int, default=1100, help="(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0)


def greeted(sock: socket.socket) -> bool:
    with contextlib.suppress(OSError, ProtocolError):  # EOF, reset or timeout: refused
        return recv_exact(sock, len(GREETING)) == GREETING
    return False


def exchange(sock: socket.socket, index: int) -> bool:
    request = b"c%d" % index
    with contextlib.suppress(OSError, ProtocolError):
        sock.sendall(request)
        return recv_exact(sock, len(request)) == SELECT.transform(request)
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = Stopwatch()
    socks, failures = [], {}
    for _ in range(args.connections):
        sock, outcome = try_connect(args.host, args.port, args.timeout)
        if sock is None:
            failures[outcome] = failures.get(outcome, 0) + 1
        else:
            socks.append(sock)
    connected_at = clock()
    try:
        alive = [s for s in socks if greeted(s)]
        served = sum(exchange(s, i) for i, s in enumerate(alive))
    finally:
        for sock in socks:
            sock.close()
    return {"host": args.host, "connections": args.connections, "connected": len(socks),
            "connect_failures": failures, "greeted": len(alive),
            "refused": len(socks) - len(alive), "served": served,
            "connect_seconds": connected_at, "seconds": clock()}
