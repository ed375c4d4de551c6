"""The blocking ``socket`` server: one client at a time, on purpose.

While one client is connected, the next waits in the kernel's accept queue:
its ``connect()`` already succeeded (the handshake is done by the kernel), but
nobody reads what it sends until the first client leaves. That is the lesson
every other variant answers.
"""

from __future__ import annotations

import logging
import socket
import time

from socklab.log import peer_name
from socklab.servers import base
from socklab.servers.base import ACCEPT_CAPACITY_ERRNOS, AcceptFailures, serve_connection
from socklab.sessions import SessionFactory


def accept_one(listener: socket.socket, log: logging.Logger,
               failures: AcceptFailures | None = None) -> socket.socket | None:
    """Accept the next connection; ``None`` after a load error, which is logged."""
    failures = failures or AcceptFailures(log)
    try:
        conn, address = listener.accept()
    except OSError as error:
        if error.errno not in ACCEPT_CAPACITY_ERRNOS:
            raise
        failures.failed(error)
        time.sleep(base.ACCEPT_RETRY_DELAY)
        return None
    failures.accepted()
    log.info("accept peer=%s", peer_name(address))
    return conn


def serve_blocking(listener: socket.socket, new_session: SessionFactory,
                   log: logging.Logger, idle_timeout: float | None = None) -> None:
    """Accept a client, serve it until it leaves (or idles), then accept the next."""
    failures = AcceptFailures(log)
    while True:
        conn = accept_one(listener, log, failures)
        if conn is not None:
            serve_connection(conn, new_session(), log, idle_timeout=idle_timeout)
