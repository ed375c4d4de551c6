"""The benchmark's reference echo servers, run in a server container like the variants.

    python3 -m socklab.loadgen.refservers asyncio|uvloop|threaded [--port PORT]

All three speak the echo of select-server and epoll-server (docs/protocols.md):
the greeting on connect, then each chunk answered with
``chunk.upper()``, so the benchmark's ratios compare event loops, not
protocols. ``asyncio``: a ``Protocol`` on the default loop; ``uvloop``: the
same ``Protocol`` on uvloop (Debian's python3-uvloop, in the image);
``threaded``: ``socketserver.ThreadingTCPServer``, one thread per client.
Each is the idiomatic minimum of its kind, as in vmbench's servers: no idle
timeout, no output cap; they exist to be measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import socketserver
import sys

from socklab.registry import VARIANTS

ECHO = VARIANTS["epoll"]  # whose greeting, echo and port the references copy
GREETING = ECHO.greeting
RECV_SIZE = 64 << 10  # as the lab's servers (servers/base.py RECV_SIZE)
BACKLOG = 4096  # as the concurrent echo servers in compose/lab.yml


class UpperEchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


async def serve_protocol(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set_result, None)
    server = await loop.create_server(UpperEchoProtocol, "0.0.0.0", port, backlog=BACKLOG,
                                      reuse_address=True)
    print(f"listen 0.0.0.0:{port} loop={type(loop).__module__}", file=sys.stderr, flush=True)
    async with server:
        await stop


class UpperEchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # the client left
            sock.sendall(GREETING)
            while data := sock.recv(RECV_SIZE):
                sock.sendall(data.upper())


class ThreadedEchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = BACKLOG


def serve_threaded(port: int) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with ThreadedEchoServer(("0.0.0.0", port), UpperEchoHandler) as server:
        print(f"listen 0.0.0.0:{port} threaded", file=sys.stderr, flush=True)
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python3 -m socklab.loadgen.refservers",
                                  description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("kind", choices=("asyncio", "uvloop", "threaded"))
    top.add_argument("--port", type=int, default=ECHO.main_port)
    args = top.parse_args(argv)
    if args.kind == "threaded":
        serve_threaded(args.port)
    elif args.kind == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve_protocol(args.port))
    else:
        asyncio.run(serve_protocol(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
