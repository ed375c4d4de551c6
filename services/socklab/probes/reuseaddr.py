"""SO_REUSEADDR and TIME_WAIT: why a restarted server cannot bind, and the fix.

The side that closes a TCP connection first keeps it in TIME_WAIT for 60 s.
When that side is a server, its port stays tied to that connection: a
restarted server's ``bind()`` fails with EADDRINUSE ("address already in
use"). ``SO_REUSEADDR`` lifts this only if the old sockets had it too: Linux
lets a new socket share the port with a TIME_WAIT socket when *both* set the
option, so a server that sets it is restartable at once, and one that does
not blocks its successor for a minute whatever the successor does. The
option never lets two servers listen on one address: a second listener is
refused either way.

The client must let the server close first: if it sends its own FIN first
(``nc -N`` with nothing to send does), the client holds the TIME_WAIT and
the server's port is free at once.

Run this probe on one host (it plays the server) and connect to it from
another (``nc HOST 9500``): it accepts that one connection, closes it first,
then tries the binds a restarted server would.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

from socklab.probes.common import errno_name

NAME = "reuseaddr"
HELP = "close a connection first as a server, then bind again with and without SO_REUSEADDR"

FAREWELL = b"bye\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9500)
    parser.add_argument("--reuse", action="store_true",
                        help="the first server sets SO_REUSEADDR too")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait for the one client (default: %(default)s)")


def open_socket(reuse: bool) -> socket.socket:
    sock = socket.socket()
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def try_bind(port: int, reuse: bool, listen: bool = False) -> tuple[str, socket.socket | None]:
    sock = open_socket(reuse)
    try:
        sock.bind(("0.0.0.0", port))
        if listen:
            sock.listen()
    except OSError as error:
        sock.close()
        return errno_name(error), None
    return "ok", sock


def serve_one_and_close_first(port: int, reuse: bool, wait: float) -> str:
    with open_socket(reuse) as listener:
        listener.bind(("0.0.0.0", port))
        listener.listen()
        listener.settimeout(wait)
        conn, address = listener.accept()  # the accepted socket inherits the option
    with conn:
        conn.sendall(FAREWELL)
        conn.shutdown(socket.SHUT_WR)  # the server closes first: its FIN goes out...
        conn.settimeout(wait)
        while conn.recv(4096):  # ...then the client's FIN comes back: TIME_WAIT is ours
            pass
    return f"{address[0]}:{address[1]}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    peer = serve_one_and_close_first(args.port, args.reuse, args.wait)
    without, _ = try_bind(args.port, reuse=False)
    with_reuse, first = try_bind(args.port, reuse=True, listen=True)
    result = {"client": peer, "first_server_reuseaddr": args.reuse,
              "restart_without_reuseaddr": without, "restart_with_reuseaddr": with_reuse}
    if first is not None:  # a second listener beside a running one
        result["second_listener_with_reuseaddr"] = try_bind(args.port, True, True)[0]
        result["second_listener_without_reuseaddr"] = try_bind(args.port, False, True)[0]
        first.close()
    return result
