"""Listen backlog and somaxconn: how many connections wait for ``accept()``.

A listening socket's accept queue holds connections whose handshake the
kernel completed but which the program has not accepted yet. Its length is
``min(backlog, net.core.somaxconn)``, and Linux lets one more in (it checks
"is the queue *over* full"): so min(B, S) + 1 connections complete. When the
queue is full, the kernel drops further SYNs without an answer (counted as
ListenOverflows and ListenDrops): the client's ``connect()`` retries and
times out. ``ss -lnt`` shows the queue: Recv-Q is its fill, Send-Q its length.

Each client that connected sends one request at once; once the server
starts accepting, every queued client gets its answer.

``--burst N`` shows ``net.ipv4.tcp_abort_on_overflow``. The probe first
fills the queue to its length with ``--prefill`` clients, then starts N
connects at once. Their SYNs are admitted while the queue still has room;
their ACKs arrive after it has filled, and the kernel must choose. With 0
(the default) it drops the ACK, and the client believes it is connected
while the server never saw it. With 1 it answers with RST, and the client
gets ECONNRESET. Run ``socklab delay --ms 100`` on the client host first, so
that the ACKs come back after all the SYNs. Set ``net.ipv4.tcp_syncookies``
to 0 on the server host: with SYN cookies the kernel drops such ACKs
whatever the setting.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import json
import socket
import sys
import time
from typing import Any

from socklab.clients.core import recv_exact
from socklab.probes.common import errno_name, try_connect
from socklab.registry import VARIANTS

NAME = "backlog"
HELP = "connect to a server that does not accept until connects time out"

REQUEST = b"queued"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=VARIANTS["tcp"].main_port,
                        help="(default: %(default)s, tcp-server's)")
    parser.add_argument("--max", type=int, default=200, help="give up after this many")
    parser.add_argument("--timeout", type=float, default=1.5,
                        help="connect timeout; a dropped SYN is retried after 1 s "
                        "(default: %(default)s)")
    parser.add_argument("--timeouts", type=int, default=2,
                        help="stop after this many connects timed out in a row")
    parser.add_argument("--wait-replies", type=float, default=0.0,
                        help="then wait this long for the queued clients to be served")
    parser.add_argument("--burst", type=int, default=0,
                        help="instead: prefill the queue, then start this many connects at once")
    parser.add_argument("--prefill", type=int, default=2,
                        help="with --burst: clients connected first, one by one")
    parser.add_argument("--settle", type=float, default=1.5,
                        help="with --burst: seconds before looking at the burst's sockets")


def fill(args: argparse.Namespace) -> tuple[list[socket.socket], int, str]:
    """Connect until ``--timeouts`` connects in a row time out, or another error."""
    socks: list[socket.socket] = []
    timeouts = 0
    while len(socks) < args.max and timeouts < args.timeouts:
        sock, outcome = try_connect(args.host, args.port, args.timeout)
        if sock is None and outcome != "timeout":
            return socks, timeouts, outcome  # refused, unknown host…: not a full queue
        if sock is None:
            timeouts += 1
            continue
        timeouts = 0
        sock.sendall(REQUEST)  # waits in the kernel until the server accepts
        socks.append(sock)
    return socks, timeouts, "timeout" if timeouts else "max"


def served(socks: list[socket.socket], wait: float) -> int:
    deadline = time.monotonic() + wait
    count = 0
    for sock in socks:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError, OSError):
            count += recv_exact(sock, len(REQUEST)) == REQUEST.upper()
    return count


def outcome(sock: socket.socket, wait: float) -> str:
    """What one burst socket became: an errno name, or "connected-no-answer"."""
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        return errno.errorcode.get(error, str(error))
    sock.setblocking(True)
    sock.settimeout(wait)
    try:
        sock.sendall(REQUEST)
        return "answered" if sock.recv(len(REQUEST)) else "eof"
    except TimeoutError:
        return "connected-no-answer"  # we think we are connected; nobody answers
    except OSError as error_:
        return errno_name(error_)


def burst(args: argparse.Namespace) -> dict[str, Any]:
    prefill = [socket.create_connection((args.host, args.port), timeout=args.timeout)
               for _ in range(args.prefill)]
    time.sleep(0.3)
    socks = [socket.socket() for _ in range(args.burst)]
    for sock in socks:
        sock.setblocking(False)
        sock.connect_ex((args.host, args.port))  # all SYNs leave at once
    time.sleep(args.settle)
    outcomes = collections.Counter(outcome(sock, 0.5) for sock in socks)
    for sock in prefill + socks:
        sock.close()
    return {"phase": "done", "prefill": args.prefill, "burst": args.burst,
            "outcomes": dict(outcomes)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.burst:
        return burst(args)
    socks, timeouts, stopped_by = fill(args)
    filled = {"phase": "filled", "completed": len(socks), "timed_out": timeouts,
              "stopped_by": stopped_by}
    print(json.dumps(filled), flush=True)  # the orchestrator may act on this line
    print("filled; waiting for the server to accept", file=sys.stderr, flush=True)
    result = {**filled, "phase": "done"}
    if args.wait_replies > 0:
        result["served"] = served(socks, args.wait_replies)
    for sock in socks:
        sock.close()
    return result
