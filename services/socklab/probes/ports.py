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
instead of FIN (RFC 2525), so the probe shuts down its side first and reads to the
server's end of stream before it closes.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
from typing import Any

from socklab.probes.common import port_range, sysctl, try_connect
from socklab.registry import VARIANTS

NAME = "ports"
HELP = "fill the ephemeral port range towards one destination, then another"

CONNECT_TIMEOUT = 5.0


# Two servers of the lab that accept any number of clients, on two destinations.
EPOLL, TWISTED = VARIANTS["epoll"], VARIANTS["twisted"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=EPOLL.host, help="(default: %(default)s)")
    parser.add_argument("--port", type=int, default=EPOLL.main_port, help="(default: %(default)s)")
    parser.add_argument("--second", default=f"{TWISTED.host}:{TWISTED.main_port}",
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


def finish(sock: socket.socket) -> None:
    """After our ``shutdown(SHUT_WR)``: read the server's data to its FIN, then close.

    Our FIN is out; the server reads EOF and closes, and everything it sent
    (a greeting) is read up to its FIN. Only then does ``close()`` release
    the socket, which sits in TIME_WAIT. Reading to EOF, instead of reading
    what has arrived so far, means a greeting still on its way cannot arrive
    after ``close()`` and reset the connection.
    """
    sock.settimeout(CONNECT_TIMEOUT)
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass
    sock.close()


def close_all(socks: list[socket.socket], how: str) -> None:
    if how == "rst":  # linger on, timeout 0: close() sends RST, no TIME_WAIT
        for sock in socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        return
    for sock in socks:  # every FIN out first, so the servers close in parallel
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
    for sock in socks:
        finish(sock)


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
