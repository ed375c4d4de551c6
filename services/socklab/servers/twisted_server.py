"""The Twisted reactor driving a session, as the tutorial's ``Echo`` protocol does.

Twisted is imported only here, so the rest of the package runs without it.
The reactor installs its own SIGTERM/SIGINT handlers and stops cleanly.
"""

from __future__ import annotations

import logging

from twisted.internet import interfaces, protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from socklab.log import peer_name
from socklab.sessions import Session, SessionFactory


@implementer(interfaces.IHalfCloseableProtocol)
class SessionProtocol(protocol.Protocol):
    """Feeds every ``dataReceived`` to the session and writes what it returns."""

    def __init__(self, session: Session, log: logging.Logger) -> None:
        self.session = session
        self.log = log
        self.peer = "?"
        self.bytes_in = self.bytes_out = 0

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        address = self.transport.getPeer()
        self.peer = peer_name((address.host, address.port))
        self.log.info("accept peer=%s", self.peer)
        self._write([self.session.greeting()])

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.bytes_in += len(data)
        self._write(self.session.feed(data))
        if self.session.finished:
            self.transport.loseConnection()

    def readConnectionLost(self) -> None:  # noqa: N802
        """Half-close: the client sent EOF; flush what we owe, then close."""
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:  # noqa: N802
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        self.session.close()
        self.log.info("close peer=%s reason=%s bytes_in=%d bytes_out=%d", self.peer,
                      reason.type.__name__, self.bytes_in, self.bytes_out)

    def _write(self, chunks: object) -> None:
        for chunk in chunks:  # type: ignore[attr-defined]
            if chunk:
                self.transport.write(chunk)
                self.bytes_out += len(chunk)


class SessionFactoryAdapter(protocol.ServerFactory):
    def __init__(self, new_session: SessionFactory, log: logging.Logger) -> None:
        self.new_session = new_session
        self.log = log

    def buildProtocol(self, addr: object) -> SessionProtocol:  # noqa: N802
        return SessionProtocol(self.new_session(), self.log)


def serve_twisted(host: str, port: int, backlog: int, new_session: SessionFactory,
                  log: logging.Logger) -> None:
    from twisted.internet import reactor

    reactor.listenTCP(port, SessionFactoryAdapter(new_session, log), backlog=backlog,
                      interface=host)
    reactor.addSystemEventTrigger("before", "shutdown", log.info, "stop")
    reactor.run()
