"""What a handshake costs: exec's handshake port needs two round trips per command, framed one.

On the handshake port the client sends the command, waits for ``Ready|<n>``,
sends ``start``, and waits for the output: two round trips. On the framed
port the request
frame goes out and the reply frames come back: one. On a fast link the
difference hides in the command's own run time; add delay to the link
(``socklab delay --ms 100`` on the client host) and it is one RTT per
command.

Try ``--command true`` too: the output is empty, so after ``start`` the
server sends nothing, the client's next command follows its ``start`` while
that is still unacknowledged, and Nagle's algorithm holds it until the
server's delayed ACK (40 ms) comes. ``--nodelay`` sets TCP_NODELAY on the
client and the stall is gone.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from typing import Any

from socklab.clients.core import FramedClient, HandshakeClient, open_connection
from socklab.probes.common import Stopwatch
from socklab.registry import VARIANTS

NAME = "framing_rtt"
HELP = "time commands on exec's handshake and framed ports: round trips per command"
EXEC = VARIANTS["exec"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=EXEC.host, help="(default: %(default)s)")
    parser.add_argument("--commands", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--command", default="echo hi",
                        help="a command with some output (default: %(default)r); see below")
    parser.add_argument("--nodelay", action="store_true",
                        help="set TCP_NODELAY on the client sockets (turn Nagle off)")


def timed(run: Any, command: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        clock = Stopwatch()
        run(command)
        times.append(clock())
    return times


def nodelay(sock: socket.socket, on: bool) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))


def connect_time(host: str, port: int) -> float:
    """The TCP handshake takes one round trip: a fair measure of the RTT."""
    started = time.monotonic()
    with open_connection(host, port):
        return time.monotonic() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    # Noise only ever adds time (a busy machine, the delayer's queue): the
    # fastest of several tries is the best estimate of what the protocol costs.
    rtt = min(connect_time(args.host, EXEC.port("framed")) for _ in range(5))
    with open_connection(args.host, EXEC.port("handshake")) as sock:
        nodelay(sock, args.nodelay)
        handshake = timed(HandshakeClient(sock).run, args.command, args.commands)
    with open_connection(args.host, EXEC.port("framed")) as sock:
        nodelay(sock, args.nodelay)
        framed = timed(FramedClient(sock).run, args.command, args.commands)
    h, f = min(handshake), min(framed)
    return {"rtt_seconds": round(rtt, 4), "handshake_median": statistics.median(handshake),
            "framed_median": statistics.median(framed), "handshake_fastest": h,
            "framed_fastest": f, "extra_seconds_per_command": round(h - f, 4),
            "extra_round_trips": round((h - f) / rtt, 2) if rtt else None,
            "handshake_seconds": handshake, "framed_seconds": framed}
