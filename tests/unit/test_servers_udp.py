"""The datagram server: one ``ok`` per datagram, and peer errors survived."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Iterator

import pytest

from socklab.registry import ACK, MAX_DATAGRAM
from socklab.servers import udp

IO_TIMEOUT = 5.0
STOP = b"\x00stop-the-test-loop\x00"


class LoopStopped(Exception):
    pass


class StoppableDatagramSocket:
    """A real UDP socket; receiving ``STOP`` makes ``recvfrom`` raise instead."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recvfrom(self, size: int) -> tuple[bytes, object]:
        data, address = self.sock.recvfrom(size)
        if data == STOP:
            raise LoopStopped
        return data, address

    def sendto(self, data: bytes, address: object) -> int:
        return self.sock.sendto(data, address)


class ScriptedSocket:
    """No socket at all: ``recvfrom`` plays a script, ``sendto`` is recorded."""

    def __init__(self, script: list[object]) -> None:
        self.script = script
        self.sent: list[tuple[bytes, object]] = []

    def recvfrom(self, size: int) -> tuple[bytes, object]:
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step  # type: ignore[return-value]

    def sendto(self, data: bytes, address: object) -> int:
        self.sent.append((data, address))
        return len(data)


def serve(sock: StoppableDatagramSocket, log) -> None:
    with contextlib.suppress(LoopStopped):
        udp.serve_udp(sock, log)  # type: ignore[arg-type]


@pytest.fixture
def server_address(background, log) -> Iterator[tuple[str, int]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        background.start(serve, StoppableDatagramSocket(sock), log)
        address = sock.getsockname()
        yield address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stopper:
            stopper.sendto(STOP, address)
        background.join()


@pytest.mark.parametrize("datagram", [b"", b"hello", b"x" * MAX_DATAGRAM])
def test_udp_answer_is_ok(datagram: bytes) -> None:
    assert udp.answer(datagram) == ACK


def test_udp_one_reply_per_datagram(server_address) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(IO_TIMEOUT)
        datagrams = [b"", b"one", b"x" * MAX_DATAGRAM]
        for datagram in datagrams:
            client.sendto(datagram, server_address)
        replies = [client.recvfrom(100) for _ in datagrams]
        assert replies == [(b"ok", server_address)] * 3
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recvfrom(100)  # no fourth reply


def test_udp_replies_to_each_peer(server_address) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as two:
        for client in (one, two):
            client.settimeout(IO_TIMEOUT)
            client.sendto(b"hi", server_address)
        assert one.recv(10) == two.recv(10) == b"ok"


def test_udp_peer_errors_do_not_stop_the_server(log) -> None:
    sock = ScriptedSocket([(b"a", ("10.0.0.1", 1)), OSError(errno.ECONNREFUSED, "icmp"),
                           OSError(errno.EHOSTUNREACH, "icmp"), (b"b", ("10.0.0.2", 2)),
                           LoopStopped()])
    with pytest.raises(LoopStopped):
        udp.serve_udp(sock, log)  # type: ignore[arg-type]
    assert sock.sent == [(b"ok", ("10.0.0.1", 1)), (b"ok", ("10.0.0.2", 2))]


def test_udp_other_errors_propagate(log) -> None:
    sock = ScriptedSocket([OSError(errno.EBADF, "closed")])
    with pytest.raises(OSError) as caught:
        udp.serve_udp(sock, log)  # type: ignore[arg-type]
    assert caught.value.errno == errno.EBADF


def test_udp_logs_the_first_datagram_of_a_bounded_number_of_recent_peers(
        log, caplog, monkeypatch) -> None:
    monkeypatch.setattr(udp, "PEERS_REMEMBERED", 2)
    caplog.set_level(logging.INFO, logger=log.name)
    peers = {name: (f"10.0.0.{n}", n) for n, name in enumerate("abc", 1)}
    script: list[object] = [(b"x", peers[name]) for name in "abacbc"]
    sock = ScriptedSocket([*script, LoopStopped()])
    with pytest.raises(LoopStopped):
        udp.serve_udp(sock, log)  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records]
    first = [line.split()[0] for line in lines if "first datagram" in line]
    # a is seen again before c comes, so b is the one forgotten: b is new again, c is not
    assert first == ["peer=10.0.0.1:1", "peer=10.0.0.2:2", "peer=10.0.0.3:3", "peer=10.0.0.2:2"]
    assert len(sock.sent) == 6
