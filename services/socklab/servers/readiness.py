"""One thread, many clients: a readiness loop over ``select.select`` or ``epoll``.

The loop is written once; a *poller* says which descriptors are ready, and the
loop then reads and writes each of them until the kernel says EAGAIN. The
select and epoll variants differ only in the poller, the way CPython's
``EpollSelector`` differs from ``PollSelector`` by a few attributes.

Every socket is non-blocking. On readiness the loop writes until EAGAIN and
reads until the kernel's receive queue is empty: with edge-triggered epoll,
until EAGAIN (no new event would come for data left behind); with a
level-triggered poller, until a recv() returns less than it asked for (the
queue was emptied, and whatever comes next is reported again), which saves
the recv() that only meets EAGAIN, one per request of a closed-loop client.
A client that does not read its replies makes its output buffer grow only up
to ``ECHO_OUTPUT_CAP``; past that the loop stops reading from it until it
catches up (back-pressure, not dropping).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from dataclasses import dataclass, field

from socklab.log import peer_name
from socklab.registry import ECHO_OUTPUT_CAP
from socklab.servers.base import (
    ACCEPT_CAPACITY_ERRNOS,
    ACCEPT_RETRY_DELAY,
    PEER_GONE_ERRNOS,
    RECV_SIZE,
    AcceptFailures,
)
from socklab.servers.conn import (
    EOF,
    FINISHED,
    IDLE_TIMEOUT,
    SERVER_STOP,
    SHORT_FILE,
    Connection,
    error_reason,
)
from socklab.sessions import SessionFactory, byte_chunks

# Bytes one connection may read in one turn before the loop serves the others:
# a client streaming at full speed must not starve the rest (16 recvs).
READ_BUDGET = 1 << 20

# What one recv() found: nothing (or EOF), less than it asked for, or all it asked for.
BLOCKED, SHORT, FULL = 0, 1, 2

# How often the loop looks for idle connections: an idle client is dropped
# between idle_timeout and idle_timeout + this many seconds.
IDLE_SWEEP_INTERVAL = 1.0

# FD_SETSIZE of glibc: select() works on a bitmap of this many descriptors and
# CPython refuses any descriptor numbered this or higher ("filedescriptor out
# of range in select()"). epoll has no such limit.
FD_SETSIZE = 1024


class Poller:
    """Which of the registered descriptors are ready. Subclasses pick the syscall."""

    name = "poller"
    edge_triggered = False

    def can_watch(self, fd: int) -> bool:
        return True

    def register(self, fd: int, read: bool, write: bool) -> None:
        raise NotImplementedError

    def modify(self, fd: int, read: bool, write: bool) -> None:
        raise NotImplementedError

    def unregister(self, fd: int) -> None:
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[int]:
        """Wait until something is ready (``None``: for ever); return the ready descriptors."""
        raise NotImplementedError


class SelectPoller(Poller):
    name = "select"

    def __init__(self) -> None:
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def can_watch(self, fd: int) -> bool:
        return fd < FD_SETSIZE  # select's bitmap ends here; see FD_SETSIZE

    def register(self, fd: int, read: bool, write: bool) -> None:
        self.modify(fd, read, write)

    def modify(self, fd: int, read: bool, write: bool) -> None:
        (self.readers.add if read else self.readers.discard)(fd)
        (self.writers.add if write else self.writers.discard)(fd)

    def unregister(self, fd: int) -> None:
        self.readers.discard(fd)
        self.writers.discard(fd)

    def poll(self, timeout: float | None = None) -> list[int]:
        readable, writable, _ = select.select(self.readers, self.writers, [], timeout)
        return list(set(readable) | set(writable))


class EpollPoller(Poller):
    name = "epoll"

    def __init__(self, edge_triggered: bool = False) -> None:
        self.epoll = select.epoll()
        self.edge_triggered = edge_triggered

    def _mask(self, read: bool, write: bool) -> int:
        if self.edge_triggered:  # registered once for both: edges are never re-armed
            return select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
        return (select.EPOLLIN | select.EPOLLRDHUP if read else 0) | (
            select.EPOLLOUT if write else 0)

    def register(self, fd: int, read: bool, write: bool) -> None:
        self.epoll.register(fd, self._mask(read, write))

    def modify(self, fd: int, read: bool, write: bool) -> None:
        if not self.edge_triggered:
            self.epoll.modify(fd, self._mask(read, write))

    def unregister(self, fd: int) -> None:
        self.epoll.unregister(fd)

    def poll(self, timeout: float | None = None) -> list[int]:
        # An error or hang-up needs no flag: the next recv() or send() reports it.
        return [fd for fd, _events in self.epoll.poll(-1 if timeout is None else timeout)]


@dataclass(eq=False, kw_only=True)
class PolledConnection(Connection):
    """A connection as the loop keeps it: its socket, the replies not yet sent, its interest."""

    sock: socket.socket
    out: bytearray = field(default_factory=bytearray)
    interest: tuple[bool, bool] = (True, False)
    eof: bool = False
    last_active: float = field(default_factory=time.monotonic)

    def wants(self) -> tuple[bool, bool]:
        """(read, write) interest: stop reading past the cap, after EOF or when finished."""
        reading = not (self.eof or self.session.finished) and len(self.out) < ECHO_OUTPUT_CAP
        return (reading, bool(self.out))


class ReadinessServer:
    """Accepts and serves every client from one thread."""

    def __init__(self, listener: socket.socket, new_session: SessionFactory,
                 poller: Poller, log: logging.Logger, idle_timeout: float | None = None) -> None:
        self.listener = listener
        self.idle_timeout = idle_timeout
        self.next_idle_sweep = time.monotonic() + IDLE_SWEEP_INTERVAL
        self.new_session = new_session
        self.poller = poller
        self.log = log
        self.connections: dict[int, PolledConnection] = {}
        # Connections that used up their READ_BUDGET with data still waiting.
        # In edge-triggered mode no new event would come for them.
        self.unfinished: set[int] = set()
        self.accept_paused_until: float | None = None
        self.accept_failures = AcceptFailures(log)
        listener.setblocking(False)
        poller.register(listener.fileno(), True, False)

    def serve_forever(self) -> None:
        while True:
            self.serve_once()

    def serve_once(self) -> None:
        """Wait for readiness once, then serve every ready descriptor."""
        ready = set(self.poller.poll(self._poll_timeout())) | self.unfinished
        self.unfinished = set()
        for fd in ready:
            if fd == self.listener.fileno():
                self._accept_all()
            elif fd in self.connections:
                self._service(self.connections[fd])
        if self.accept_paused_until and time.monotonic() >= self.accept_paused_until:
            self._resume_accepting()
        if self.idle_timeout is not None and time.monotonic() >= self.next_idle_sweep:
            self._close_idle()

    def _poll_timeout(self) -> float | None:
        if self.unfinished:
            return 0
        deadlines = [t for t in (self.accept_paused_until,
                                 self.next_idle_sweep if self.idle_timeout else None)
                     if t is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _close_idle(self) -> None:
        now = time.monotonic()
        self.next_idle_sweep = now + IDLE_SWEEP_INTERVAL
        assert self.idle_timeout is not None
        for conn in [c for c in self.connections.values()
                     if now - c.last_active > self.idle_timeout]:
            if farewell := conn.idle_farewell(unread_output=bool(conn.out)):
                with contextlib.suppress(OSError):  # best effort: one send, never a wait
                    conn.bytes_out += conn.sock.send(farewell)
            self._close(conn, IDLE_TIMEOUT)

    def close(self) -> None:
        for conn in list(self.connections.values()):
            self._close(conn, SERVER_STOP)

    def _accept_all(self) -> None:
        while True:
            try:
                sock, address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                self._pause_accepting(error)
                return
            self.accept_failures.accepted()
            self.adopt(sock, peer_name(address))

    def _pause_accepting(self, error: OSError) -> None:
        """Out of descriptors: stop watching the listener for a while, keep serving.

        Sleeping would stall every client; watching would spin, since the
        queued connection keeps the listener readable.
        """
        self.accept_failures.failed(error)
        self.poller.unregister(self.listener.fileno())
        self.accept_paused_until = time.monotonic() + ACCEPT_RETRY_DELAY

    def _resume_accepting(self) -> None:
        self.accept_paused_until = None
        self.poller.register(self.listener.fileno(), True, False)
        self._accept_all()

    def adopt(self, sock: socket.socket, peer: str) -> None:
        """Serve an accepted socket from now on (refused when the poller cannot watch it)."""
        fd = sock.fileno()
        if not self.poller.can_watch(fd):
            self.log.warning("refuse peer=%s fd=%d: %s cannot watch descriptors >= %d",
                             peer, fd, self.poller.name, FD_SETSIZE)
            sock.close()
            return
        sock.setblocking(False)
        conn = PolledConnection(self.new_session(), self.log, peer, sock=sock)
        self.connections[fd] = conn
        self.poller.register(fd, True, False)
        self.log.info("accept peer=%s fd=%d open=%d", peer, fd, len(self.connections))
        conn.out += conn.session.greeting()
        self._service(conn)

    def _service(self, conn: PolledConnection) -> None:
        """Write and read until the socket would block, then update interest."""
        budget = READ_BUDGET
        try:
            while True:
                self._flush(conn)
                if conn.out and (conn.eof or len(conn.out) >= ECHO_OUTPUT_CAP):
                    break
                if budget <= 0:
                    self.unfinished.add(conn.sock.fileno())  # the others' turn first
                    break
                if conn.eof or conn.session.finished:
                    break
                got = self._read(conn)
                if got == BLOCKED:
                    break
                if got == SHORT and not self.poller.edge_triggered:
                    # The receive queue was empty when recv() returned: a level-triggered
                    # poller reports what comes next, so no recv() to meet EAGAIN.
                    self._flush(conn)
                    break
                budget -= RECV_SIZE
        except OSError as error:
            if error.errno not in PEER_GONE_ERRNOS:
                raise
            self._close(conn, error_reason(error))
            return
        except EOFError as error:  # a file under a reply was cut short: only a close tells
            self.log.warning("reply cut short peer=%s: %s", conn.peer, error)
            self._close(conn, SHORT_FILE)
            return
        if not conn.out and (conn.eof or conn.session.finished):
            self._close(conn, EOF if conn.eof else FINISHED)
            return
        self._update_interest(conn)

    def _read(self, conn: PolledConnection) -> int:
        """One recv: FULL (there may be more), SHORT (the queue was emptied), or BLOCKED
        (nothing to read, or the end of the client's stream)."""
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return BLOCKED
        if not data:
            conn.eof = True  # half-close: finish sending what we owe, then close
            return BLOCKED
        conn.bytes_in += len(data)
        conn.last_active = time.monotonic()
        for chunk in byte_chunks(conn.session.feed(data)):
            conn.out += chunk
        return FULL if len(data) == RECV_SIZE else SHORT

    def _flush(self, conn: PolledConnection) -> None:
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except BlockingIOError:
                return
            del conn.out[:sent]
            conn.bytes_out += sent
            conn.last_active = time.monotonic()

    def _update_interest(self, conn: PolledConnection) -> None:
        wants = conn.wants()
        if wants != conn.interest:
            self.poller.modify(conn.sock.fileno(), *wants)
            conn.interest = wants

    def _close(self, conn: PolledConnection, reason: str) -> None:
        fd = conn.sock.fileno()
        self.connections.pop(fd, None)
        self.poller.unregister(fd)
        conn.sock.close()
        conn.close(reason, open=len(self.connections))
