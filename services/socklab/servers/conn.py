"""One client connection as every loop keeps it: its counts, its farewell, its close line.

The loops differ in how they wait (a blocking call with a timeout, a readiness
poller's idle sweep, Twisted's ``TimeoutMixin``) and in how they send. What
they do with a client that idles too long, and how they log a connection's
end, is written here once:

- a client that sent nothing for the idle timeout gets the session's farewell,
  best effort, and then the connection is closed;
- a client that has not read what we sent gets no farewell (a line in the
  middle of a reply would corrupt it), only the close;
- the close releases the session and is logged once, with its reason.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from socklab.sessions import Session

# Why a connection closed, as the close line says it. A peer's error is named
# by its errno instead (``reason=ECONNRESET``), and Twisted's loop by the
# reactor's reason (``reason=ConnectionDone``).
EOF = "eof"
FINISHED = "finished"
IDLE_TIMEOUT = "idle-timeout"
SERVER_STOP = "server-stop"
# A file under a download ended before the size its answer announced.
SHORT_FILE = "short-file"


def error_reason(error: OSError) -> str:
    """The close reason for a peer's error: its errno's name (``ECONNRESET``)."""
    return errno.errorcode.get(error.errno or 0, "error")


def _fields(extra: dict[str, object]) -> str:
    return "".join(f" {name}={value}" for name, value in extra.items())


@dataclass(eq=False)
class Connection:
    """One client: its session and peer, the bytes each way, and whether it timed out."""

    session: Session
    log: logging.Logger
    peer: str = "?"
    bytes_in: int = 0
    bytes_out: int = 0
    timed_out: bool = False
    closed: bool = False

    def idle_farewell(self, unread_output: bool) -> bytes:
        """The client sent nothing for the idle timeout: what to send it before closing.

        The session's farewell, unless the client has ``unread_output`` (it
        is not reading, and a line in the middle of a reply would corrupt
        it). From now on the close is logged as ``idle-timeout``, whatever
        the loop sees when the socket goes.
        """
        self.timed_out = True
        return b"" if unread_output else self.session.farewell()

    def close(self, reason: str, **extra: object) -> None:
        """Release the session and log the close with its reason, once; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        self.session.close()
        self.log.info("close peer=%s reason=%s bytes_in=%d bytes_out=%d%s", self.peer,
                      IDLE_TIMEOUT if self.timed_out else reason, self.bytes_in,
                      self.bytes_out, _fields(extra))
