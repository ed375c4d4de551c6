"""Half-close: a client that sends, then ``shutdown(SHUT_WR)``, gets the whole reply.

``shutdown(SHUT_WR)`` sends a FIN: "I have nothing more to say". The server
reads EOF, but the connection still carries data the other way until the
server closes its side. A server that closes at once on EOF, with replies
still buffered, would cut them off.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import socket
import threading
from typing import Any

from socklab.clients.core import BULK_RECV, open_connection
from socklab.probes.common import Stopwatch
from socklab.protocol import exec_framed
from socklab.protocol.framing import FrameDecoder
from socklab.registry import ECHO_VARIANTS, VARIANTS

NAME = "halfclose"
HELP = "send, shutdown(SHUT_WR), and check the whole reply still arrives"

EXEC = VARIANTS["exec"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1 << 20,
                        help="bytes sent before the half-close (default: %(default)s)")
    parser.add_argument("--targets", nargs="+", default=[*ECHO_VARIANTS, "exec"],
                        choices=[*ECHO_VARIANTS, "exec"])


def read_to_eof(sock: socket.socket) -> bytes:
    parts = []
    while data := sock.recv(BULK_RECV):
        parts.append(data)
    return b"".join(parts)


def send_then_half_close(host: str, port: int, payload: bytes) -> bytes:
    """Send (from a thread, so a large payload cannot deadlock on full buffers), then FIN."""
    with open_connection(host, port) as sock:

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # FIN: no more requests, replies still welcome

        sender = threading.Thread(target=send)
        sender.start()
        reply = read_to_eof(sock)
        sender.join()
        return reply


def echo(name: str, size: int) -> dict[str, Any]:
    variant = VARIANTS[name]
    payload = random.Random(size).randbytes(size)
    clock = Stopwatch()
    reply = send_then_half_close(variant.host, variant.main_port, payload)
    expected = variant.greeting + variant.transform(payload)
    return {"target": name, "sent": size, "received": len(reply), "complete": reply == expected,
            "seconds": clock()}


def exec_framed_target(size: int) -> dict[str, Any]:
    command = f"head -c {size} /dev/zero"
    reply = send_then_half_close(EXEC.host, EXEC.port("framed"),
                                 exec_framed.encode_request(command))
    decoder = FrameDecoder(len(reply))
    decoder.feed(reply)
    frames = [decoder.next_frame() for _ in range(exec_framed.REPLY_FRAMES)]
    stdout = frames[1] or b""
    return {"target": "exec", "sent": len(command), "received": len(stdout),
            "complete": hashlib.sha256(stdout).digest() == hashlib.sha256(bytes(size)).digest()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    results = [exec_framed_target(args.size) if name == "exec" else echo(name, args.size)
               for name in args.targets]
    return {"results": results, "all_complete": all(r["complete"] for r in results)}
