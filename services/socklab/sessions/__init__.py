"""What a server says to one client, written once and driven by every loop.

A session is the behaviour of one connection without the I/O: the loop hands
it the bytes that arrived, the session returns the bytes to send. The blocking,
threaded, select, epoll and Twisted loops all drive the same sessions.

Two hints let a loop move bulk data without copying it through Python, and a
loop is free to ignore both: a session may return a ``FileSpan`` (bytes of an
open file, which a blocking loop hands to ``sendfile``) among its chunks, and
``body_expected`` says how many raw bytes the session will take next (an
upload's rest), which a loop may read in larger pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

# Read size when a loop turns a FileSpan into bytes: big enough to keep a
# 10 Gbit/s bridge busy, small enough to stay well inside a server's memory.
FILE_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpan:
    """The next ``count`` bytes of ``file``, from its current position, as a reply chunk.

    The file stays open while the loop sends it (the session closes it when
    its reply generator goes on or is closed). A file that turns out shorter
    than ``count`` raises ``EOFError``: the client was promised ``count``
    bytes, and only closing the connection tells it they will not come.
    """

    file: BinaryIO
    count: int

    def pieces(self, size: int = FILE_READ_CHUNK) -> Iterator[bytes]:
        """The span as bytes, ``size`` at a time (for loops that do not use sendfile)."""
        left = self.count
        while left > 0:
            piece = self.file.read(min(size, left))
            if not piece:
                raise self.cut_short(self.count - left)
            left -= len(piece)
            yield piece

    def cut_short(self, sent: int) -> EOFError:
        """The error of a span whose file ended after ``sent`` of its bytes."""
        return EOFError(f"file ended {self.count - sent} bytes short of the {self.count} "
                        "announced")


Chunk = bytes | FileSpan


def byte_chunks(chunks: Iterable[Chunk]) -> Iterator[bytes]:
    """A session's reply with every ``FileSpan`` read into bytes, for loops that send bytes."""
    for chunk in chunks:
        if isinstance(chunk, FileSpan):
            yield from chunk.pieces()
        else:
            yield chunk


class Session:
    """One client's conversation. Subclasses override ``feed``."""

    #: Set when the server should close the connection once its output is sent.
    finished: bool = False

    def greeting(self) -> bytes:
        """Bytes to send as soon as the client connects."""
        return b""

    def feed(self, data: bytes | memoryview) -> Iterable[Chunk]:
        """Take one chunk from the client; return the chunks to send back.

        The loops send a reply's chunks together in one write where they can;
        an empty chunk (``FLUSH``) asks for everything before it to go out first.
        While ``body_expected`` is above 0, ``data`` may be a view of the loop's
        own buffer, valid until the returned chunks are consumed: a session
        keeps a copy of what it keeps, never the view.
        """
        raise NotImplementedError

    def body_expected(self) -> int:
        """How many bytes the session takes next as raw data (an upload's rest), else 0.

        A loop may read that many in pieces larger than usual; what it reads
        is fed as always.
        """
        return 0

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
