"""Blocking versus concurrent: who answers N clients that are all connected at once.

Every client connects first and stays connected; then each sends one request
and waits (with a time limit) for its answer. A blocking server answers the
first client only: the others wait in the accept queue until it leaves. The
threaded, select, epoll and Twisted servers answer them all at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from socklab.clients.core import open_connection, recv_exact, recv_some
from socklab.probes.common import Stopwatch
from socklab.protocol.errors import ProtocolError
from socklab.registry import ECHO_VARIANTS, VARIANTS, Variant

NAME = "concurrency"
HELP = "N clients connected at once: how many get an answer, and how long each waits"

PING = b"ping"
FTP_LIST = json.dumps({"action": "list"}).encode()


def _target(variant: Variant) -> tuple[bytes, bytes, bytes]:
    """(what comes on connect, the request, the answer's first bytes) of a variant."""
    if variant.name == "ftp":
        return variant.banner(), FTP_LIST, b'{"status": 200'
    return variant.greeting, PING, variant.transform(PING)


# The variants served over TCP one request at a time: the echo servers and ftp.
TARGETS = {name: _target(VARIANTS[name]) for name in (*ECHO_VARIANTS, "ftp")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--host", help="server host (default: the target's lab host)")
    parser.add_argument("--clients", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument("--wait", type=float, default=3.0,
                        help="seconds each client waits for its answer (default: %(default)s)")


def greet(sock: socket.socket, greeting: bytes) -> None:
    """Read what the server sends on connect: a greeting, or a banner line."""
    if greeting.endswith(b"\n"):  # a banner line: read to its end, whatever its text
        while not recv_some(sock, 4096).endswith(b"\n"):
            pass
    elif greeting:
        recv_exact(sock, len(greeting))


def ask(sock: socket.socket, request: bytes, answer: bytes, wait: float,
        clock: Stopwatch) -> float | None:
    """Send one request; seconds until the answer began, or None if none came."""
    sock.settimeout(wait)
    sent_at = clock()
    try:
        sock.sendall(request)
        reply = recv_exact(sock, len(answer))
    except (TimeoutError, OSError):
        return None
    return round(clock() - sent_at, 4) if reply == answer else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    greeting, request, answer = TARGETS[args.target]
    variant = VARIANTS[args.target]
    host, port = args.host or variant.host, variant.main_port
    socks = [open_connection(host, port, timeout=10) for _ in range(args.clients)]
    clock = Stopwatch()
    try:
        if greeting:  # a blocking server greets nobody but the client it serves
            with ThreadPoolExecutor(len(socks)) as pool:
                list(pool.map(lambda s: _greet_quietly(s, greeting, args.wait), socks))
        asked = Stopwatch()  # all requests go out now
        with ThreadPoolExecutor(len(socks)) as pool:
            waits = list(pool.map(lambda s: ask(s, request, answer, args.wait, asked), socks))
        late = answers_after_the_others_leave(socks, waits, answer, args.wait, asked)
    finally:
        for sock in socks:
            sock.close()
    answered = [w for w in waits if w is not None]
    return {"target": args.target, "clients": args.clients, "answered": len(answered),
            "unanswered_after_wait": len(waits) - len(answered), "wait_limit": args.wait,
            "answer_seconds_max": max(answered, default=None),
            "answered_after_others_left": len([w for w in late if w is not None]),
            "late_answer_seconds": late, "seconds": clock()}


def answers_after_the_others_leave(socks: list[socket.socket], waits: list[float | None],
                                   answer: bytes, wait: float,
                                   clock: Stopwatch) -> list[float | None]:
    """Close the answered clients; seconds from the requests until each other one's answer."""
    for sock, waited in zip(socks, waits, strict=True):
        if waited is not None:
            sock.close()
    late = []
    for sock, waited in zip(socks, waits, strict=True):
        if waited is None:
            sock.settimeout(wait)
            with contextlib.suppress(TimeoutError, OSError, ProtocolError):
                recv_exact(sock, len(answer))
                late.append(round(clock(), 4))
                continue
            late.append(None)
    return late


def _greet_quietly(sock: socket.socket, greeting: bytes, wait: float) -> None:
    sock.settimeout(wait)
    with contextlib.suppress(TimeoutError, OSError):
        greet(sock, greeting)
