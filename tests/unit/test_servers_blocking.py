"""One blocking connection: serve_connection over a socketpair, and accept_one's errors.

The idle timeout and the farewell are tested over every loop in test_servers_common.py.
"""

from __future__ import annotations

import errno
import logging
import socket

import pytest

from socklab.registry import HELLO
from socklab.servers import base, blocking
from socklab.servers.base import serve_connection
from socklab.sessions.echo import UpperEcho


class RecordingEcho(UpperEcho):
    """The upper-case echo, remembering whether it was closed; finishes on ``bye``."""

    def __init__(self) -> None:
        super().__init__(HELLO)
        self.closed = 0

    def feed(self, data: bytes) -> list[bytes]:
        if data == b"bye":
            self.finished = True
        return super().feed(data)

    def close(self) -> None:
        self.closed += 1


class FailingSession(RecordingEcho):
    def feed(self, data: bytes) -> list[bytes]:
        raise OSError(errno.EACCES, "our own bug")


@pytest.fixture
def session() -> RecordingEcho:
    return RecordingEcho()


def test_blocking_greeting_echo_then_eof_closes(socket_pair, session, background, log) -> None:
    server, client = socket_pair
    thread = background.start(serve_connection, server, session, log)
    assert client.recv(5) == HELLO
    client.sendall(b"abc")
    assert client.recv(10) == b"ABC"
    client.shutdown(socket.SHUT_WR)
    assert client.recv(10) == b""  # the server closed its end after our EOF
    thread.join(5)
    assert session.closed == 1 and server.fileno() == -1


def test_blocking_finished_session_closes_without_eof(socket_pair, session, log) -> None:
    server, client = socket_pair
    client.sendall(b"bye")  # already queued: serve_connection needs no second thread
    serve_connection(server, session, log)
    assert client.recv(10) == HELLO + b"BYE"
    assert client.recv(10) == b""
    assert session.closed == 1


def test_blocking_peer_reset_ends_quietly(socket_pair, session, background, log, caplog) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    server, client = socket_pair
    thread = background.start(serve_connection, server, session, log)
    assert client.recv(5, socket.MSG_PEEK) == HELLO
    client.close()  # unread bytes in its buffer: the server's recv gets ECONNRESET
    thread.join(5)
    assert session.closed == 1 and server.fileno() == -1
    assert "reason=ECONNRESET" in caplog.text


def test_blocking_other_errors_propagate_after_cleanup(socket_pair, log) -> None:
    server, client = socket_pair
    session = FailingSession()
    client.sendall(b"x")
    with pytest.raises(OSError) as caught:
        serve_connection(server, session, log)
    assert caught.value.errno == errno.EACCES
    assert session.closed == 1 and server.fileno() == -1


class FakeListener:
    def __init__(self, error: OSError) -> None:
        self.error = error

    def accept(self) -> tuple[socket.socket, object]:
        raise self.error


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ECONNABORTED])
def test_blocking_accept_one_survives_capacity_errors(code: int, log, monkeypatch) -> None:
    monkeypatch.setattr(base, "ACCEPT_RETRY_DELAY", 0)
    assert blocking.accept_one(FakeListener(OSError(code, "load")), log) is None


def test_blocking_accept_one_raises_other_errors(log) -> None:
    with pytest.raises(OSError):
        blocking.accept_one(FakeListener(OSError(errno.EBADF, "bug")), log)


def test_blocking_accept_one_returns_connection(log) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=5) as client:
        conn = blocking.accept_one(listener, log)
        assert conn is not None
        with conn:
            assert conn.getpeername() == client.getsockname()


def test_serve_connection_survives_a_connection_reset_in_the_queue(log) -> None:
    # accept() hands out a connection reset while queued; its getpeername()
    # fails with ENOTCONN, like this never-connected socket's.
    session = UpperEcho()
    serve_connection(socket.socket(), session, log)


class RecordingSocket:
    """Records each send call (all of it taken at once): what the kernel would get per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)


def test_send_all_gathers_small_chunks_into_one_write() -> None:
    from socklab.servers.base import send_all

    sock = RecordingSocket()
    assert send_all(sock, [b"header", b"stdout", b"stderr"]) == 18  # type: ignore[arg-type]
    assert sock.writes == [b"headerstdoutstderr"]


def test_send_all_flushes_at_an_empty_chunk() -> None:
    from socklab.servers.base import send_all
    from socklab.sessions import FLUSH

    sock = RecordingSocket()
    send_all(sock, [b"200", FLUSH, b"201"])  # type: ignore[arg-type]
    assert sock.writes == [b"200", b"201"]


def test_send_fully_times_out_only_without_progress(socket_pair) -> None:
    """A reader slower than the whole reply per timeout, but steady, is not dropped."""
    import threading
    import time

    from socklab.servers.base import send_fully

    server, client = socket_pair
    server.settimeout(0.5)
    reply = b"r" * (8 << 20)
    received = bytearray()

    def slow_reader() -> None:  # ~8 MiB in ~1.6 s: longer than the timeout in all
        while len(received) < len(reply):
            received.extend(client.recv(256 << 10))
            time.sleep(0.05)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    send_fully(server, reply)
    reader.join()
    assert bytes(received) == reply


def test_accept_failures_log_one_line_per_episode(log, caplog, monkeypatch) -> None:
    from socklab.servers.base import AcceptFailures

    clock = [100.0]
    monkeypatch.setattr(base.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger=log.name)
    failures = AcceptFailures(log)
    emfile = OSError(errno.EMFILE, "Too many open files")
    for _ in range(5):  # at the limit: fail, accept a freed slot, fail again...
        failures.failed(emfile)
        clock[0] += 0.1
        failures.accepted()
    clock[0] += base.ACCEPT_RECOVERED_AFTER
    failures.accepted()  # a second without failures: the episode is over
    assert [r.getMessage() for r in caplog.records] == [
        "accept failed: Too many open files; pausing accept, retrying every 0.1s",
        "accept resumed after 0.4s and 5 failed attempts",
    ]
