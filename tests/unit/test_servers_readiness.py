"""The readiness loop, one conformance suite for select, level epoll and edge epoll.

The idle timeout and the farewell are tested over every loop in test_servers_common.py.

Each test drives a real ``ReadinessServer`` on 127.0.0.1 in a daemon thread. The
poller is wrapped so that the loop can be stopped: it also watches a wake-up
socket, and once told to stop, its next ``poll()`` raises.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from socklab.clients.core import recv_exact
from socklab.registry import ECHO_OUTPUT_CAP, HELLO
from socklab.servers.base import RECV_SIZE, open_listener
from socklab.servers.readiness import (
    FD_SETSIZE,
    EpollPoller,
    Poller,
    ReadinessServer,
    SelectPoller,
)
from socklab.sessions import FileSpan
from socklab.sessions.echo import UpperEcho

IO_TIMEOUT = 5.0
MEGABYTE = bytes(range(256)) * 4096  # every byte value, lower-case letters included
SERVER_SEND_BUFFER = 16 << 10

POLLERS = {
    "select": SelectPoller,
    "epoll-level": functools.partial(EpollPoller, edge_triggered=False),
    "epoll-edge": functools.partial(EpollPoller, edge_triggered=True),
}


class LoopStopped(Exception):
    pass


class StoppablePoller:
    """A real poller that also watches a wake-up pipe; ``stop()`` makes ``poll()`` raise."""

    def __init__(self, inner: Poller) -> None:
        self.inner = inner
        self.stopping = threading.Event()
        self.wake_read, self.wake_write = socket.socketpair()
        inner.register(self.wake_read.fileno(), True, False)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def poll(self, timeout: float | None = None) -> list[int]:
        ready = self.inner.poll(timeout)
        if self.stopping.is_set():
            raise LoopStopped
        return ready

    def stop(self) -> None:
        self.stopping.set()
        self.wake_write.send(b"!")

    def close(self) -> None:
        self.wake_read.close()
        self.wake_write.close()
        if isinstance(self.inner, EpollPoller):
            self.inner.epoll.close()


@dataclass
class Running:
    address: tuple[str, int]
    server: ReadinessServer

    def connect(self, receive_buffer: int | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:  # a small window makes the server hold its replies
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(IO_TIMEOUT)
        sock.connect(self.address)
        return sock

    def wait_open(self, count: int) -> None:
        deadline = time.monotonic() + IO_TIMEOUT
        while len(self.server.connections) != count:
            assert time.monotonic() < deadline, f"{len(self.server.connections)} open"
            time.sleep(0.01)


def serve(server: ReadinessServer) -> None:
    with contextlib.suppress(LoopStopped):
        server.serve_forever()


@pytest.fixture(params=list(POLLERS))
def running(request: pytest.FixtureRequest, background, log) -> Iterator[Running]:
    listener = open_listener("127.0.0.1", 0)
    # Accepted sockets inherit this: with small kernel buffers the loop's own output
    # buffering (and its back-pressure) is what the tests see.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SEND_BUFFER)
    poller = StoppablePoller(POLLERS[request.param]())
    server = ReadinessServer(listener, functools.partial(UpperEcho, HELLO), poller, log)
    background.start(serve, server)
    address = listener.getsockname()
    try:
        yield Running(address, server)
    finally:
        poller.stop()
        background.join()
        server.close()
        listener.close()
        poller.close()


def recv_to_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(RECV_SIZE):
        data += chunk
    return bytes(data)


def test_readiness_closes_a_reply_whose_file_is_short_and_serves_the_others(
        running: Running, tmp_path) -> None:
    """A FileSpan longer than its file ends that connection, not the loop."""
    (tmp_path / "f").write_bytes(b"12345")
    normal = running.server.new_session

    class Short(UpperEcho):
        def feed(self, data: bytes):
            with (tmp_path / "f").open("rb") as file:
                yield b"header\n"
                yield FileSpan(file, 8)

    running.server.new_session = functools.partial(Short, HELLO)
    with running.connect() as short:
        short.sendall(b"get")
        assert recv_to_eof(short).startswith(HELLO)  # closed, not left waiting
    running.server.new_session = normal
    with running.connect() as client:
        assert recv_exact(client, len(HELLO)) == HELLO
        client.sendall(b"abc")
        assert recv_exact(client, 3) == b"ABC"


def test_readiness_greets_with_hello(running: Running) -> None:
    with running.connect() as client:
        assert recv_exact(client, len(HELLO)) == HELLO


def test_readiness_echoes_upper_case_1mb_while_client_reads(running: Running, background) -> None:
    with running.connect() as client:
        background.start(client.sendall, MEGABYTE)
        assert recv_exact(client, len(HELLO) + len(MEGABYTE)) == HELLO + MEGABYTE.upper()


def test_readiness_half_close_gets_whole_reply_then_eof(running: Running) -> None:
    with running.connect(receive_buffer=4096) as client:
        client.sendall(MEGABYTE)  # the server holds most of the reply when our EOF arrives
        client.shutdown(socket.SHUT_WR)
        assert recv_to_eof(client) == HELLO + MEGABYTE.upper()
    running.wait_open(0)


def test_readiness_clients_get_their_own_replies(running: Running) -> None:
    with running.connect() as one, running.connect() as two:
        assert recv_exact(one, 5) == recv_exact(two, 5) == HELLO
        one.sendall(b"first")
        two.sendall(b"second")
        one.sendall(b"again")
        assert recv_exact(two, 6) == b"SECOND"
        assert recv_exact(one, 10) == b"FIRSTAGAIN"


def test_readiness_reset_peer_is_closed_others_served(running: Running) -> None:
    with running.connect() as rude:
        recv_exact(rude, 5)
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.sendall(b"unanswered")
    with running.connect() as polite:  # close() above sent a RST
        assert recv_exact(polite, 5) == HELLO
        polite.sendall(b"ok")
        assert recv_exact(polite, 2) == b"OK"
        running.wait_open(1)


def test_readiness_client_that_does_not_read_does_not_stall_others(running: Running) -> None:
    with running.connect() as slow:
        slow.setblocking(False)
        chunk, sent, refused_since = b"x" * RECV_SIZE, 0, None
        deadline = time.monotonic() + IO_TIMEOUT
        while refused_since is None or time.monotonic() - refused_since < 0.2:
            assert time.monotonic() < deadline, "the server never stopped reading"
            try:
                sent += slow.send(chunk)
                refused_since = None
            except BlockingIOError:
                refused_since = refused_since or time.monotonic()
                time.sleep(0.01)
        assert sent > ECHO_OUTPUT_CAP  # the server did read, and then held back
        with running.connect() as other:
            assert recv_exact(other, 5) == HELLO
            other.sendall(b"still served")
            assert recv_exact(other, 12) == b"STILL SERVED"
        held = max(len(conn.out) for conn in list(running.server.connections.values()))
        assert ECHO_OUTPUT_CAP <= held < ECHO_OUTPUT_CAP + RECV_SIZE


@pytest.mark.parametrize(("fd", "watchable"), [(0, True), (FD_SETSIZE - 1, True),
                                               (FD_SETSIZE, False), (5000, False)])
def test_select_poller_can_watch_below_fd_setsize(fd: int, watchable: bool) -> None:
    assert SelectPoller().can_watch(fd) is watchable


def test_epoll_poller_can_watch_high_descriptors() -> None:
    poller = EpollPoller()
    try:
        assert poller.can_watch(FD_SETSIZE) and poller.can_watch(50_000)
    finally:
        poller.epoll.close()


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= FD_SETSIZE + 100,
                    reason="needs descriptors past FD_SETSIZE")
def test_readiness_select_refuses_descriptor_past_fd_setsize(log) -> None:
    with open_listener("127.0.0.1", 0) as listener:
        server = ReadinessServer(listener, UpperEcho, SelectPoller(), log)
        ours, theirs = socket.socketpair()
        high = socket.socket(fileno=os.dup2(ours.fileno(), FD_SETSIZE + 100))
        ours.close()
        with theirs, high:
            server.adopt(high, "peer")
            assert server.connections == {} and high.fileno() == -1
            theirs.settimeout(IO_TIMEOUT)
            assert theirs.recv(1) == b""  # refused: closed, not served


class CountingSocket:
    """A socket whose recv() calls are recorded: the bytes each returned, or EAGAIN."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs: list[int | str] = []

    def recv(self, size: int) -> bytes:
        try:
            data = self.sock.recv(size)
        except BlockingIOError:
            self.recvs.append("EAGAIN")
            raise
        self.recvs.append(len(data))
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


@pytest.mark.parametrize("poller", list(POLLERS))
def test_readiness_reads_to_eagain_only_where_edge_triggered_needs_it(poller: str,
                                                                       log) -> None:
    """A level-triggered poller reports data that comes later again: after a recv that
    emptied the queue (it returned less than it asked for), no recv() to meet EAGAIN."""
    with open_listener("127.0.0.1", 0) as listener:
        made = POLLERS[poller]()
        server = ReadinessServer(listener, functools.partial(UpperEcho, HELLO), made, log)
        ours, theirs = socket.socketpair()
        counted = CountingSocket(ours)
        with theirs:
            server.adopt(counted, "peer")  # type: ignore[arg-type]
            theirs.settimeout(IO_TIMEOUT)
            assert recv_exact(theirs, len(HELLO)) == HELLO
            counted.recvs.clear()
            theirs.sendall(b"x" * 1024)
            server.serve_once()
            assert recv_exact(theirs, 1024) == b"X" * 1024
            expected = [1024, "EAGAIN"] if made.edge_triggered else [1024]
            assert counted.recvs == expected
            server.close()
        if isinstance(made, EpollPoller):
            made.epoll.close()
