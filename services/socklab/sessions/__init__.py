"""What a server says to one client, written once and driven by every loop.

A session is the behaviour of one connection without the I/O: the loop hands
it the bytes that arrived, the session returns the bytes to send. The blocking,
threaded, select, epoll and Twisted loops all drive the same sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Session:
    """One client's conversation. Subclasses override ``feed``."""

    #: Set when the server should close the connection once its output is sent.
    finished: bool = False

    def greeting(self) -> bytes:
        """Bytes to send as soon as the client connects."""
        return b""

    def feed(self, data: bytes) -> Iterable[bytes]:
        """Take one chunk from the client; return the chunks to send back.

        The loops send a reply's chunks together in one write where they can;
        an empty chunk (``FLUSH``) asks for everything before it to go out first.
        """
        raise NotImplementedError

    def farewell(self) -> bytes:
        """Bytes to send, best effort, to a client dropped for sending nothing too long.

        The loops send them only when the client was silent with nothing of
        ours waiting to be read (never to a client that is not reading: a
        line in the middle of a reply would corrupt it), then close.
        """
        return b""

    def close(self) -> None:
        """The connection is gone: release what the session holds."""


SessionFactory = Callable[[], Session]

#: A session yields this (an empty chunk) to have what it yielded so far sent
#: now, not gathered with what follows into one write.
FLUSH = b""
