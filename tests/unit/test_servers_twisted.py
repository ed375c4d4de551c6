"""The Twisted protocol over StringTransport: greeting, echo, finishing, half-close."""

from __future__ import annotations

import logging

import pytest
from twisted.internet import interfaces
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from socklab.registry import HELLO
from socklab.servers.twisted_server import SessionFactoryAdapter, SessionProtocol
from socklab.sessions import FileSpan
from socklab.sessions.echo import Echo, UpperEcho


class ByeSession(Echo):
    """Echo; finished after ``bye``; remembers being closed."""

    closed = False

    def feed(self, data: bytes) -> list[bytes]:
        self.finished = data == b"bye"
        return super().feed(data)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def session() -> ByeSession:
    return ByeSession()


@pytest.fixture
def transport() -> StringTransport:
    return StringTransport()


def connected(session, transport, log) -> SessionProtocol:
    protocol = SessionProtocol(session, log)
    protocol.makeConnection(transport)
    return protocol


def test_twisted_writes_greeting_on_connect(transport, log) -> None:
    connected(UpperEcho(HELLO), transport, log)
    assert transport.value() == HELLO


def test_twisted_echoes_each_chunk(session, transport, log) -> None:
    protocol = connected(session, transport, log)
    protocol.dataReceived(b"one ")
    protocol.dataReceived(b"two")
    assert transport.value() == b"one two"
    assert (protocol.connection.bytes_in, protocol.connection.bytes_out) == (7, 7)
    assert not transport.disconnecting


def test_twisted_finished_session_loses_connection(session, transport, log) -> None:
    protocol = connected(session, transport, log)
    protocol.dataReceived(b"bye")
    assert transport.value() == b"bye" and transport.disconnecting


def test_twisted_read_connection_lost_closes_after_writes(session, transport, log) -> None:
    protocol = connected(session, transport, log)
    assert interfaces.IHalfCloseableProtocol.providedBy(protocol)
    protocol.dataReceived(b"pending")
    protocol.readConnectionLost()
    assert transport.disconnecting  # loseConnection: the transport flushes, then closes
    assert transport.value() == b"pending"


def test_twisted_reply_with_a_short_file_loses_only_that_connection(transport, log, tmp_path,
                                                                    caplog) -> None:
    """A FileSpan longer than its file: what there is, then the close, no exception."""
    (tmp_path / "f").write_bytes(b"12345")

    class Short(Echo):
        def feed(self, data: bytes):
            with (tmp_path / "f").open("rb") as file:
                yield b"header\n"
                yield FileSpan(file, 8)

    protocol = connected(Short(), transport, log)
    with caplog.at_level(logging.WARNING, logger=log.name):
        protocol.dataReceived(b"get")
    assert transport.value() == b"header\n12345" and transport.disconnecting
    assert "3 bytes short of the 8" in caplog.text


def test_twisted_write_connection_lost_loses_connection(session, transport, log) -> None:
    connected(session, transport, log).writeConnectionLost()
    assert transport.disconnecting


def test_twisted_connection_lost_closes_session(session, transport, log) -> None:
    protocol = connected(session, transport, log)
    protocol.connectionLost(Failure(ConnectionError("gone")))
    assert session.closed


def test_twisted_factory_builds_one_session_per_connection(log) -> None:
    factory = SessionFactoryAdapter(ByeSession, log)
    first, second = factory.buildProtocol(None), factory.buildProtocol(None)
    assert isinstance(first, SessionProtocol)
    assert first.session is not second.session


def test_twisted_protocol_stops_reading_while_write_buffer_is_full(session, transport,
                                                                   log) -> None:
    protocol = connected(session, transport, log)
    assert transport.producer is protocol and transport.streaming
    protocol.pauseProducing()  # what the transport does past its bufferSize
    assert transport.producerState == "paused"
    protocol.resumeProducing()
    assert transport.producerState == "producing"


def test_twisted_protocol_unregisters_before_closing(session, transport, log) -> None:
    protocol = connected(session, transport, log)
    protocol.dataReceived(b"bye")
    assert transport.producer is None and transport.disconnecting


def test_twisted_protocol_aborts_an_idle_client(session, transport, log) -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    protocol = SessionProtocol(session, log, idle_timeout=5)
    protocol.callLater = clock.callLater
    protocol.makeConnection(transport)
    clock.advance(4)
    protocol.dataReceived(b"x")  # activity resets the timer
    clock.advance(4)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting and transport.producer is None


def test_twisted_log_forwarder_reports_emfile_recovery_and_errors(log, caplog) -> None:
    from twisted.logger import LogLevel

    from socklab.servers.twisted_server import forward_twisted_log

    caplog.set_level(logging.INFO, logger=log.name)
    observe = forward_twisted_log(log)
    observe({"log_format": "EMFILE encountered; releasing reserved file descriptor.",
             "log_level": LogLevel.info})
    observe({"log_format": "EMFILE recovery: Closed socket from {address}",
             "address": ("10.0.0.7", 4321), "log_level": LogLevel.info})
    observe({"log_format": "Site starting on 8000", "log_level": LogLevel.info})
    observe({"log_format": "Unhandled {what}", "what": "thing", "log_level": LogLevel.critical})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "accept failed: Too many open files; shedding the clients waiting to be "
                    "accepted"),
        ("INFO", "shed peer=10.0.0.7:4321 reason=out-of-descriptors"),
        ("ERROR", "twisted: Unhandled thing"),
    ]


def test_twisted_protocol_aborts_a_client_that_does_not_take_the_farewell(transport,
                                                                         log) -> None:
    from twisted.internet.task import Clock

    class ByeOnIdle(Echo):
        def farewell(self) -> bytes:
            return b"bye: idle\n"

    clock = Clock()
    protocol = SessionProtocol(ByeOnIdle(), log, idle_timeout=5)
    protocol.callLater = clock.callLater
    protocol.makeConnection(transport)
    clock.advance(6)
    assert transport.value() == b"bye: idle\n" and transport.disconnecting
    clock.advance(6)  # the farewell still unsent: the client is not waited for
    assert transport.value() == b"bye: idle\n"  # said once
    assert transport.disconnected  # StringTransport's abortConnection
