"""The Twisted reactor driving a session, as the tutorial's ``Echo`` protocol does.

Twisted is imported only here, so the rest of the package runs without it.
The reactor installs its own SIGTERM/SIGINT handlers and stops cleanly.

Back-pressure: ``transport.write`` buffers without limit, so a client that
sends without reading would grow the server's memory. The protocol registers
itself as the transport's streaming producer: when the write buffer passes
Twisted's ``bufferSize`` (64 KiB) the transport pauses it, and it stops
reading from that client until the buffer drains.

Out of descriptors, Twisted does not pause accepting as our other loops do:
it keeps one spare descriptor, and on EMFILE frees it to accept each waiting
client and close it at once (shedding load), then takes it again. Its own log
lines about that are forwarded to ours (``forward_twisted_log``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import interfaces, protocol
from twisted.protocols import policies
from twisted.python.failure import Failure
from zope.interface import implementer

from socklab.log import peer_name
from socklab.servers.conn import Connection
from socklab.sessions import Session, SessionFactory, byte_chunks


@implementer(interfaces.IHalfCloseableProtocol, interfaces.IPushProducer)
class SessionProtocol(policies.TimeoutMixin, protocol.Protocol):
    """Feeds every ``dataReceived`` to the session and writes what it returns."""

    def __init__(self, session: Session, log: logging.Logger,
                 idle_timeout: float | None = None) -> None:
        self.connection = Connection(session, log)
        self.idle_timeout = idle_timeout
        self.output_blocked = False  # the transport paused us: the client is not reading

    @property
    def session(self) -> Session:
        return self.connection.session

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        address = self.transport.getPeer()
        self.connection.peer = peer_name((address.host, address.port))
        self.connection.log.info("accept peer=%s", self.connection.peer)
        self.transport.registerProducer(self, True)
        self.setTimeout(self.idle_timeout)
        self._write([self.session.greeting()])

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.resetTimeout()
        self.connection.bytes_in += len(data)
        try:
            self._write(byte_chunks(self.session.feed(data)))
        except EOFError as error:  # a file under a reply was cut short: only a close tells
            self.connection.log.warning("reply cut short peer=%s: %s", self.connection.peer,
                                        error)
            self._close()
            return
        if self.session.finished:
            self._close()

    def readConnectionLost(self) -> None:  # noqa: N802
        """Half-close: the client sent EOF; flush what we owe, then close."""
        self._close()

    def writeConnectionLost(self) -> None:  # noqa: N802
        self._close()

    def pauseProducing(self) -> None:  # noqa: N802 - the write buffer is full
        self.output_blocked = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802 - the write buffer drained
        self.output_blocked = False
        self.transport.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802
        pass

    def timeoutConnection(self) -> None:  # noqa: N802 - TimeoutMixin's name
        if self.connection.timed_out:  # the farewell was not taken within the timeout
            self.transport.abortConnection()
            return
        self.transport.unregisterProducer()
        if farewell := self.connection.idle_farewell(unread_output=self.output_blocked):
            self._write([farewell])
            self.transport.loseConnection()
            self.setTimeout(self.idle_timeout)  # a client that takes nothing is then aborted
            return
        self.transport.abortConnection()

    def _close(self) -> None:
        # A registered producer would keep loseConnection waiting forever.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        self.setTimeout(None)
        self.connection.close(reason.type.__name__)

    def _write(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self.transport.write(chunk)
                self.connection.bytes_out += len(chunk)


class SessionFactoryAdapter(protocol.ServerFactory):
    """Builds one ``SessionProtocol``, with a new session, per connection.

    ``clock`` times the idle timeout: the global reactor unless a test runs
    the protocol on a reactor of its own.
    """

    def __init__(self, new_session: SessionFactory, log: logging.Logger,
                 idle_timeout: float | None = None,
                 clock: interfaces.IReactorTime | None = None) -> None:
        self.new_session = new_session
        self.log = log
        self.idle_timeout = idle_timeout
        self.clock = clock

    def buildProtocol(self, addr: object) -> SessionProtocol:  # noqa: N802
        built = SessionProtocol(self.new_session(), self.log, self.idle_timeout)
        if self.clock is not None:
            built.callLater = self.clock.callLater
        return built


def forward_twisted_log(log: logging.Logger) -> Callable[[dict[str, Any]], None]:
    """A Twisted log observer that passes on what a lab user needs, in our format.

    Twisted's EMFILE recovery becomes ``accept failed`` and one ``shed
    peer=…`` line per client closed unserved; errors are passed on whole;
    the rest (start-up chatter) is dropped.
    """
    from twisted.logger import LogLevel, formatEvent

    def observe(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        if text.startswith("EMFILE encountered"):
            log.warning("accept failed: %s; shedding the clients waiting to be accepted",
                        os.strerror(errno.EMFILE))
        elif text.startswith("EMFILE recovery: Closed socket from"):
            address = event.get("address")
            log.info("shed peer=%s reason=out-of-descriptors",
                     f"{address[0]}:{address[1]}" if isinstance(address, tuple) else address)
        elif event.get("log_failure") is not None or event.get("log_level") in (
                LogLevel.error, LogLevel.critical):
            failure = event.get("log_failure")
            detail = f"\n{failure.getTraceback()}" if failure is not None else ""
            log.error("twisted: %s%s", text, detail)

    return observe


def serve_twisted(host: str, port: int, backlog: int, new_session: SessionFactory,
                  log: logging.Logger, idle_timeout: float | None = None) -> None:
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([forward_twisted_log(log)], redirectStandardIO=False)

    reactor.listenTCP(port, SessionFactoryAdapter(new_session, log, idle_timeout),
                      backlog=backlog, interface=host)
    reactor.addSystemEventTrigger("before", "shutdown", log.info, "stop")
    reactor.run()
