"""Ephemeral ports: a client host has K of them per destination, and no more.

A TCP connection is named by its 4-tuple (source address, source port,
destination address, destination port). ``connect()`` without ``bind()``
takes a source port from ``net.ipv4.ip_local_port_range`` (K ports), so one
client address can hold K connections to one destination, then ``connect()``
fails with EADDRNOTAVAIL. Another destination has its own K.

Linux (since 4.2) gives ``connect()`` ports of the low end's parity first
(even, for the usual even low end) and ``bind(("", 0))`` the other parity,
so that the two rarely compete for the same ports.

A client that closes first keeps each port in TIME_WAIT (60 s) for that
destination: reconnecting fails until they expire. A close by RST
(``SO_LINGER`` with a zero timeout) skips TIME_WAIT, and so does, silently,
a ``close()`` with unread data in the receive buffer: Linux then sends RST
instead of FIN (RFC 2525), so the probe reads the server's greeting first.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import time
from typing import Any

from socklab.probes.common import port_range, sysctl, try_connect

NAME = "ports"
HELP = "fill the ephemeral port range towards one destination, then another"

CONNECT_TIMEOUT = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="epoll-server")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--second", default="twisted-server:8000",
                        help="a second destination HOST:PORT ('' for none)")
    parser.add_argument("--bind0", type=int, default=0,
                        help="first bind this many sockets to port 0 and report their ports")
    parser.add_argument("--close", choices=("fin", "rst"), default="fin",
                        help="how the client closes at the end: fin (TIME_WAIT) or rst")
    parser.add_argument("--max", type=int, default=1000,
                        help="stop after this many connections per destination")


def bind_zero(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def fill(host: str, port: int, limit: int) -> tuple[list[socket.socket], str]:
    """Connect until the first failure (or ``limit``); return the sockets and why it stopped."""
    socks: list[socket.socket] = []
    while len(socks) < limit:
        sock, outcome = try_connect(host, port, CONNECT_TIMEOUT)
        if sock is None:
            return socks, outcome
        socks.append(sock)
    return socks, "limit"


def drain(sock: socket.socket) -> None:
    """Read what the server sent (a greeting): close() with unread data sends RST, not FIN."""
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError, ConnectionError):
        while sock.recv(65536):
            pass


# Before a normal close, time for any greeting still on its way to arrive and
# be read: arriving after close() it would reset the connection instead.
SETTLE = 0.2


def close_all(socks: list[socket.socket], how: str) -> None:
    if how == "fin" and socks:
        time.sleep(SETTLE)
    for sock in socks:
        if how == "rst":  # linger on, timeout 0: close() sends RST, no TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            drain(sock)
        sock.close()


def destination(host: str, port: int, limit: int) -> tuple[list[socket.socket], dict[str, Any]]:
    socks, stopped = fill(host, port, limit)
    ports = [s.getsockname()[1] for s in socks]
    return socks, {"destination": f"{host}:{port}", "connected": len(socks),
                   "stopped_by": stopped, "source_ports": ports}


def run(args: argparse.Namespace) -> dict[str, Any]:
    low, high = port_range()
    result: dict[str, Any] = {"port_range": [low, high], "per_destination": high - low + 1,
                              "tcp_tw_reuse": sysctl("net.ipv4.tcp_tw_reuse"),
                              "bind0_ports": bind_zero(args.bind0)}
    first_socks, result["first"] = destination(args.host, args.port, args.max)
    second_socks: list[socket.socket] = []
    if args.second:
        second_host, second_port = args.second.rsplit(":", 1)
        second_socks, result["second"] = destination(second_host, int(second_port), args.max)
    close_all(first_socks + second_socks, args.close)
    result["closed_by"] = args.close
    again, outcome = try_connect(args.host, args.port, CONNECT_TIMEOUT)
    result["reconnect_after_close"] = outcome
    if again is not None:
        close_all([again], "rst")
    return result
