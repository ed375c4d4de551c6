"""``socketserver.ThreadingTCPServer``: one thread per client (ftp and exec).

This is the tutorial's socketserver: ``serve_forever`` waits for the listening
socket to become readable and hands every accepted connection to a new
thread, which drives one session with blocking calls.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import socket
import socketserver
import threading

from socklab.log import peer_name
from socklab.servers.base import (
    ACCEPT_CAPACITY_ERRNOS,
    ACCEPT_RETRY_DELAY,
    AcceptFailures,
    serve_connection,
    stop_on_signals,
)
from socklab.sessions import SessionFactory

# How often serve_forever checks for shutdown(): stopping takes at most this.
POLL_INTERVAL = 0.1

# Descriptors kept free for the clients already connected: an exec command
# needs pipes (about six descriptors while it starts), an upload its file.
# Accepting up to the very last descriptor would leave them failing instead.
DESCRIPTOR_RESERVE = 32


def free_descriptors() -> int:
    """How many more descriptors this process may open (its soft RLIMIT_NOFILE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return soft - len(os.listdir("/proc/self/fd"))


class SessionHandler(socketserver.BaseRequestHandler):
    server: SessionServer

    def handle(self) -> None:
        peer = peer_name(self.client_address)
        self.server.log.info("accept peer=%s", peer)
        serve_connection(self.request, self.server.new_session(), self.server.log, peer,
                         self.server.idle_timeout)


class SessionServer(socketserver.ThreadingTCPServer):
    """A ThreadingTCPServer whose handler drives a ``Session``."""

    daemon_threads = True  # a stop does not wait for connected clients
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], new_session: SessionFactory,
                 log: logging.Logger, backlog: int, idle_timeout: float | None = None) -> None:
        self.request_queue_size = backlog
        self.descriptor_reserve = DESCRIPTOR_RESERVE
        self.accept_failures = AcceptFailures(log)
        self.idle_timeout = idle_timeout
        self.new_session = new_session
        self.log = log
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, SessionHandler)

    def get_request(self) -> tuple[socket.socket, object]:
        """Accept, unless the descriptors left are the reserve of the clients being served.

        Out of descriptors (or into the reserve), the server waits a moment
        and lets ``serve_forever`` come back: no busy loop; the clients
        waiting in the listen queue are accepted once descriptors are freed.
        """
        try:
            if free_descriptors() < self.descriptor_reserve:
                raise OSError(errno.EMFILE, f"{os.strerror(errno.EMFILE)} "
                              f"(the last {self.descriptor_reserve} are kept for open clients)")
            request = super().get_request()
        except OSError as error:
            if error.errno in ACCEPT_CAPACITY_ERRNOS:
                self.accept_failures.failed(error)
                threading.Event().wait(ACCEPT_RETRY_DELAY)  # no busy loop on EMFILE
            raise
        self.accept_failures.accepted()
        return request


def serve_threaded(servers: list[SessionServer], log: logging.Logger) -> None:
    """Run every server in its own thread until SIGTERM/SIGINT, then close them all."""
    threads = [threading.Thread(target=s.serve_forever, args=(POLL_INTERVAL,), daemon=True,
                                name=f"serve-{s.server_address[1]}") for s in servers]
    try:
        with stop_on_signals(log):
            for thread in threads:
                thread.start()
            while True:
                signal.pause()
    finally:
        for server, thread in zip(servers, threads, strict=True):
            if thread.is_alive():  # shutdown() would wait forever for a loop never started
                server.shutdown()
            server.server_close()
