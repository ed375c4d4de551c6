"""A listener that does not accept: the accept queue fills, then SYNs are dropped.

``socklab hold`` listens with the given backlog (or, with ``--socketserver``,
exactly as ``socketserver.TCPServer`` does: ``request_queue_size`` = 5) and
accepts nothing until it receives SIGUSR1. Then it serves the upper-case echo
to every queued client from one epoll loop, until SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import socket
import socketserver

from socklab.servers.base import open_listener, stop_on_signals
from socklab.servers.readiness import EpollPoller, ReadinessServer
from socklab.sessions.echo import UpperEcho

RELEASE_SIGNAL = signal.SIGUSR1


def open_socketserver_listener(host: str, port: int) -> socket.socket:
    """The socket ``socketserver.TCPServer`` makes: ``listen(request_queue_size)``."""
    server = socketserver.TCPServer((host, port), socketserver.BaseRequestHandler)
    return server.socket


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def hold(listener: socket.socket, log: logging.Logger) -> None:
    """Accept nothing until SIGUSR1 (or stop on SIGTERM/SIGINT), then serve everyone."""
    waited_for = {RELEASE_SIGNAL, *STOP_SIGNALS}
    # sigwait() does not return for a signal that has a handler: block them all
    # and wait for whichever comes first.
    signal.pthread_sigmask(signal.SIG_BLOCK, waited_for)
    log.info("holding: not accepting until %s", RELEASE_SIGNAL.name)
    received = signal.sigwait(waited_for)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if received in STOP_SIGNALS:
        log.info("stop signal=%s", signal.Signals(received).name)
        return
    with stop_on_signals(log):
        log.info("released: accepting")
        server = ReadinessServer(listener, UpperEcho, EpollPoller(), log)
        try:
            server.serve_forever()
        finally:
            server.close()


def serve_hold(host: str, port: int, backlog: int, use_socketserver: bool,
               log: logging.Logger) -> None:
    listener = (open_socketserver_listener(host, port) if use_socketserver
                else open_listener(host, port, backlog))
    effective = socketserver.TCPServer.request_queue_size if use_socketserver else backlog
    log.info("listen %s:%d backlog=%d%s", host, port, effective,
             " (socketserver's default)" if use_socketserver else "")
    with listener:
        hold(listener, log)
