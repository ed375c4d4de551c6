"""What every connection loop does alike: the idle timeout, the farewell, the close line.

One test body per behaviour, run over every loop that serves connections
(udp-server has none): the blocking loop, socketserver's threads, select,
epoll (level- and edge-triggered) and the Twisted reactor. Each serves on
127.0.0.1 with a short idle timeout and small socket buffers, from a thread
the test stops again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from socklab.servers.base import open_listener
from socklab.servers.blocking import serve_blocking
from socklab.servers.readiness import EpollPoller, Poller, ReadinessServer, SelectPoller
from socklab.servers.threaded import SessionServer
from socklab.sessions import SessionFactory
from socklab.sessions.echo import UpperEcho

IDLE = 0.3
# The readiness loops look for idle connections once a second; Twisted's and
# the blocking loops' timers are exact. Long enough for all, on a busy machine.
WAIT = 10.0
# Small kernel buffers: a client that does not read fills them in a few sends.
BUFFER = 16 << 10
FAREWELL = b"bye: idle\n"

Address = tuple[str, int]
Loop = Callable[[SessionFactory, logging.Logger], AbstractContextManager[Address]]


class ByeOnIdle(UpperEcho):
    """The upper-case echo with a farewell, counting how often the loop asked for it."""

    def __init__(self) -> None:
        super().__init__()
        self.farewells = 0

    def farewell(self) -> bytes:
        self.farewells += 1
        return FAREWELL


def small_buffers(sock: socket.socket) -> None:
    """Set on a listener, inherited by every connection it accepts."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)


def started(target: Callable[..., object], *args: object, **kwargs: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def stopped(thread: threading.Thread) -> None:
    thread.join(WAIT)
    assert not thread.is_alive(), "the loop did not stop"


def accept_until_shut(listener: socket.socket, new_session: SessionFactory,
                      log: logging.Logger) -> None:
    with contextlib.suppress(OSError):  # EINVAL from accept() once the listener is shut
        serve_blocking(listener, new_session, log, IDLE)


@contextlib.contextmanager
def blocking_loop(new_session: SessionFactory, log: logging.Logger) -> Iterator[Address]:
    with open_listener("127.0.0.1", 0) as listener:
        small_buffers(listener)
        thread = started(accept_until_shut, listener, new_session, log)
        try:
            yield listener.getsockname()
        finally:
            listener.shutdown(socket.SHUT_RDWR)  # Linux wakes the blocked accept() with EINVAL
            stopped(thread)


@contextlib.contextmanager
def threaded_loop(new_session: SessionFactory, log: logging.Logger) -> Iterator[Address]:
    server = SessionServer(("127.0.0.1", 0), new_session, log, 16, IDLE)
    small_buffers(server.socket)
    thread = started(server.serve_forever, 0.05)
    try:
        yield server.server_address
    finally:
        server.shutdown()
        stopped(thread)
        server.server_close()


@contextlib.contextmanager
def readiness_loop(new_poller: Callable[[], Poller], new_session: SessionFactory,
                   log: logging.Logger) -> Iterator[Address]:
    stop = threading.Event()
    poller = new_poller()
    with open_listener("127.0.0.1", 0) as listener:
        small_buffers(listener)
        server = ReadinessServer(listener, new_session, poller, log, IDLE)

        def serve() -> None:
            while not stop.is_set():
                server.serve_once()  # waits a second at most: the idle sweep is due

        thread = started(serve)
        try:
            yield listener.getsockname()
        finally:
            stop.set()
            stopped(thread)
            server.close()
            if isinstance(poller, EpollPoller):
                poller.epoll.close()


@contextlib.contextmanager
def twisted_loop(new_session: SessionFactory, log: logging.Logger) -> Iterator[Address]:
    from twisted.internet.selectreactor import SelectReactor

    from socklab.servers.twisted_server import SessionFactoryAdapter

    reactor = SelectReactor()  # a reactor of our own: the global one cannot be restarted
    factory = SessionFactoryAdapter(new_session, log, IDLE, clock=reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    small_buffers(port.socket)
    thread = started(reactor.run, installSignalHandlers=False)
    try:
        yield ("127.0.0.1", port.getHost().port)
    finally:
        reactor.callFromThread(reactor.stop)
        stopped(thread)


LOOPS: dict[str, Loop] = {
    "blocking": blocking_loop,
    "threaded": threaded_loop,
    "select": functools.partial(readiness_loop, SelectPoller),
    "epoll-level": functools.partial(readiness_loop, EpollPoller),
    "epoll-edge": functools.partial(readiness_loop, functools.partial(EpollPoller, True)),
    "twisted": twisted_loop,
}


class Served:
    """A loop serving ``ByeOnIdle`` sessions; the sessions it made and its close lines."""

    def __init__(self, loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
        self.loop = loop
        self.caplog = caplog
        self.log = logging.getLogger("socklab.test.loops")
        self.sessions: list[ByeOnIdle] = []

    def new_session(self) -> ByeOnIdle:
        self.sessions.append(ByeOnIdle())
        return self.sessions[-1]

    def close_lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records
                if r.name == self.log.name and r.getMessage().startswith("close ")]

    def wait_closed(self) -> None:
        deadline = time.monotonic() + WAIT
        while not self.close_lines():
            assert time.monotonic() < deadline, "no close line"
            time.sleep(0.01)


@pytest.fixture(params=list(LOOPS))
def served(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Served:
    caplog.set_level(logging.INFO, logger="socklab.test.loops")
    return Served(LOOPS[request.param], caplog)


def connect(address: Address) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.settimeout(WAIT)
    sock.connect(address)
    return sock


def recv_to_close(sock: socket.socket) -> bytes:
    """Everything until EOF, or until a reset (a server closing with our bytes unread)."""
    received = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(1 << 20):
            received += data
    return bytes(received)


def flood(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # until the server gives up on us
        sock.sendall(b"x" * (64 << 20))


def test_loop_says_the_farewell_to_a_silent_client_then_closes(served: Served) -> None:
    with served.loop(served.new_session, served.log) as address, connect(address) as client:
        started_at = time.monotonic()
        assert recv_to_close(client) == FAREWELL
        assert time.monotonic() - started_at >= IDLE * 0.9  # not before the timeout
        served.wait_closed()
    (line,) = served.close_lines()  # once, even after the loop stopped
    assert "reason=idle-timeout" in line
    assert [s.farewells for s in served.sessions] == [1]


def test_loop_gives_a_client_that_does_not_read_no_farewell(served: Served) -> None:
    with served.loop(served.new_session, served.log) as address, connect(address) as client:
        flooding = started(flood, client)
        served.wait_closed()  # the server gave up: only now does the client read
        received = recv_to_close(client)
        stopped(flooding)
    assert received and set(received) == {ord("X")}  # replies only, no farewell among them
    assert [s.farewells for s in served.sessions] == [0]
    (line,) = served.close_lines()
    assert "reason=idle-timeout" in line


def test_loop_keeps_a_client_that_keeps_talking(served: Served) -> None:
    with served.loop(served.new_session, served.log) as address, connect(address) as client:
        for _ in range(6):  # 1.5 idle timeouts in all, never one in silence
            client.sendall(b"a")
            assert client.recv(1) == b"A"
            time.sleep(IDLE / 4)
        assert served.close_lines() == []
        client.shutdown(socket.SHUT_WR)
        assert recv_to_close(client) == b""
        served.wait_closed()
    (line,) = served.close_lines()
    assert "reason=idle-timeout" not in line
    assert [s.farewells for s in served.sessions] == [0]
