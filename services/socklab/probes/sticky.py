"""Sticky packets (粘包): TCP is a byte stream, so message boundaries need framing.

On exec-server's naive port (no framing) two replies sent back to back
arrive glued in one ``recv``, and a reply longer than the ``recv`` size
arrives split. The handshake port (``Ready|<n>``) and the framed port
(length prefix) deliver each output exactly, whatever its size and however
the requests are timed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import socket
import sys
import termios
import time
from typing import Any

from socklab.clients.core import (
    TUTORIAL_RECV,
    FramedClient,
    HandshakeClient,
    open_connection,
    recv_some,
)
from socklab.protocol import exec_framed
from socklab.registry import VARIANTS

NAME = "sticky"
HELP = "glued and split replies on exec's naive port; exact delivery on its framed ports"
EXEC = VARIANTS["exec"]

PATTERN = b"0123456789abcdef\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=EXEC.host, help="(default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1, 5000, 10_000_000],
                        help="output sizes checked on the handshake and framed ports "
                        "(default: %(default)s)")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds between the two naive commands (default: %(default)s)")


def expected_output(size: int) -> bytes:
    """What ``yes 0123456789abcdef | head -c SIZE`` prints."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def command_for(size: int) -> str:
    return f"yes 0123456789abcdef | head -c {size}"


def wait_buffered(sock: socket.socket, size: int, timeout: float = 10.0) -> None:
    """Wait until ``size`` bytes sit unread in the receive buffer (FIONREAD)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0")
        if int.from_bytes(waiting, sys.byteorder) >= size:
            return
        time.sleep(0.01)


def naive(host: str, pause: float) -> dict[str, Any]:
    with open_connection(host, EXEC.port("naive")) as sock:
        recv_some(sock, TUTORIAL_RECV)  # the banner
        sock.sendall(b"echo one")
        time.sleep(pause)  # so the server reads two chunks, two commands
        sock.sendall(b"echo two")
        wait_buffered(sock, len(b"one\ntwo\n"))
        glued = recv_some(sock, 65536)  # both replies wait in the receive buffer
        sock.sendall(b"seq 1 2000")
        time.sleep(pause)
        first = recv_some(sock, TUTORIAL_RECV)
        rest = recv_some(sock, 65536)
    return {"two_replies_in_one_recv": glued.decode(), "glued": glued == b"one\ntwo\n",
            "split_first_recv_bytes": len(first), "split_rest_bytes": len(rest),
            "split": len(first) == TUTORIAL_RECV and len(rest) > 0}


def exact(size: int, output: bytes) -> dict[str, Any]:
    want = expected_output(size)
    return {"size": size, "received": len(output), "exact": output == want,
            "sha256": hashlib.sha256(output).hexdigest()}


def handshake(host: str, sizes: list[int]) -> list[dict[str, Any]]:
    with open_connection(host, EXEC.port("handshake")) as sock:
        client = HandshakeClient(sock)
        return [exact(size, client.run(command_for(size))[1]) for size in sizes]


def framed(host: str, sizes: list[int]) -> list[dict[str, Any]]:
    """All requests in one sendall: the length prefixes keep the replies apart."""
    with open_connection(host, EXEC.port("framed")) as sock:
        client = FramedClient(sock)
        sock.sendall(b"".join(exec_framed.encode_request(command_for(s)) for s in sizes))
        replies = [client.reply() for _ in sizes]
    return [exact(size, reply.stdout) for size, reply in zip(sizes, replies, strict=True)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    return {"naive": naive(args.host, args.pause), "handshake": handshake(args.host, args.sizes),
            "framed_pipelined": framed(args.host, args.sizes)}
