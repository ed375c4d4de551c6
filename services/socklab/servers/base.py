"""What every server loop shares: the listening socket, shutdown, one blocking connection.

Errors are translated here, at one boundary: the errnos a peer can cause on an
established connection are a named set and end that connection quietly; the
errnos ``accept`` may return under load are another named set and are logged
and survived. Anything else is our fault and propagates.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Generator, Iterable, Iterator
from types import FrameType

from socklab.buffers import BufferPool
from socklab.log import peer_name
from socklab.servers.conn import EOF, FINISHED, IDLE_TIMEOUT, SHORT_FILE, Connection, error_reason
from socklab.sessions import Chunk, FileSpan, Session

# One recv: 64 KiB is the loopback MTU and a typical socket buffer quantum.
RECV_SIZE = 64 << 10

# An upload's body (Session.body_expected) is read up to this much at a time,
# into a buffer the loop reuses: a 1 GiB upload took 16,384 recv calls, each a
# new 64 KiB bytes object, and ran at ~510 MiB/s on one CPU; it takes 1,024
# and runs at ~760 (docs/bench.md).
BODY_RECV = 1 << 20

# At most this many body buffers at once, so that a crowd of uploads cannot
# take the server past its memory limit (16 MiB here): a connection that finds
# none free reads RECV_SIZE at a time, as before.
BODY_BUFFERS = 16
BODY_POOL = BufferPool(BODY_BUFFERS, BODY_RECV)

# A file is sent this much at a time; from DROP_BEHIND_SIZE up, the pages sent
# are dropped from the page cache behind it (POSIX_FADV_DONTNEED). Such a file
# cannot stay cached in ftp-server's 256 MiB anyway, and each page it read
# made the kernel reclaim another from the container's full cache first: 1 GiB
# downloads went out at 1,099-1,422 MiB/s, and at 1,458-1,725 dropping behind.
SENDFILE_SLICE = 16 << 20
DROP_BEHIND_SIZE = 128 << 20


# A client that sends nothing and reads nothing for this long is disconnected,
# so silent clients cannot pin threads or descriptors for ever. Ten minutes:
# longer than a learner pauses at a prompt, shorter than a forgotten terminal.
DEFAULT_IDLE_TIMEOUT = 600.0

# Default listen backlog. The kernel caps it at net.core.somaxconn and the
# accept queue then holds min(backlog, somaxconn) + 1 connections.
DEFAULT_BACKLOG = 128

# A peer closing or resetting a connection is normal life for a server.
# ENOTCONN: a connection reset while it waited in the accept queue is handed
# out by accept() all the same; getpeername() is the first call to notice.
PEER_GONE_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED,
                              errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
                              errno.ENOTCONN})

# accept() failures caused by load, not by a bug: out of descriptors or
# memory, or a connection that died in the queue. Trio names the same set.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                                    errno.ENOBUFS, errno.ECONNABORTED, errno.EPROTO})


class ServerStopped(BaseException):
    """Raised in the main thread by SIGTERM or SIGINT: unwind and close."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise ServerStopped(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_on_signals(log: logging.Logger) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into ``ServerStopped``; log the stop, exit cleanly."""
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except ServerStopped as stop:
        log.info("stop signal=%s", stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def open_listener(host: str, port: int, backlog: int = DEFAULT_BACKLOG,
                  kind: socket.SocketKind = socket.SOCK_STREAM,
                  reuse_address: bool = True) -> socket.socket:
    """A bound (and, for TCP, listening) socket; closed again if any step fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


# After a failed accept (out of descriptors, memory or buffers) a loop waits
# this long before trying again, instead of spinning on a queue it cannot drain.
ACCEPT_RETRY_DELAY = 0.1

# Accepts that succeed this long after the last failure end an episode.
ACCEPT_RECOVERED_AFTER = 1.0


class AcceptFailures:
    """The log of accept failures: one line when an episode starts, one when it ends.

    At the descriptor limit the loops alternate between failing and accepting
    the next waiting client as descriptors free up; a line for each would
    flood the log. An episode ends at the first accept more than
    ACCEPT_RECOVERED_AFTER seconds after the last failure.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.since: float | None = None
        self.last = 0.0
        self.count = 0

    def failed(self, error: OSError) -> None:
        self.last = time.monotonic()
        self.count += 1
        if self.since is None:
            self.since = self.last
            self.log.warning("accept failed: %s; pausing accept, retrying every %.1fs",
                             error.strerror, ACCEPT_RETRY_DELAY)

    def accepted(self) -> None:
        if self.since is not None and time.monotonic() - self.last >= ACCEPT_RECOVERED_AFTER:
            self.log.info("accept resumed after %.1fs and %d failed attempts",
                          self.last - self.since, self.count)
            self.since, self.count = None, 0


# Linux's "more is coming" flag for send(); 0 (no effect) where the socket module lacks it.
MSG_MORE = getattr(socket, "MSG_MORE", 0)

# Small chunks of one reply are sent together, up to this many bytes. Sent
# one by one, the second would wait for the ACK of the first (Nagle's
# algorithm) while the client delays that ACK (up to 40 ms on Linux): a
# three-frame exec reply took 40 ms instead of 1.
COALESCE_LIMIT = 64 << 10


def send_fully(conn: socket.socket, data: bytes | bytearray, flags: int = 0) -> None:
    """``sendall``, but the socket's timeout bounds each wait for progress, not the whole.

    ``sendall``'s timeout covers the entire call, so a client reading a large
    reply slowly but steadily would count as idle; here only a client that
    takes nothing for the whole timeout does.
    """
    view = memoryview(data)
    while view:
        view = view[conn.send(view, flags):]


def send_file(conn: socket.socket, span: FileSpan) -> int:
    """Send a ``FileSpan`` with ``sendfile`` (the kernel copies the file; Python never sees it).

    A large file goes in slices, each dropped from the page cache once sent.

    The socket's timeout bounds each wait for room, as in ``send_fully``. A
    file shorter than announced raises ``EOFError``.
    """
    if span.count == 0:
        return 0  # sendfile refuses a count of 0
    start, sent = span.file.tell(), 0
    while sent < span.count:
        piece = min(SENDFILE_SLICE, span.count - sent)
        done = conn.sendfile(span.file, start + sent, piece)
        if span.count >= DROP_BEHIND_SIZE and done:
            with contextlib.suppress(OSError):  # advice; a file system may ignore it
                os.posix_fadvise(span.file.fileno(), start + sent, done,
                                 os.POSIX_FADV_DONTNEED)
        sent += done
        if done < piece:
            raise span.cut_short(sent)
    return sent


def send_all(conn: socket.socket, chunks: Iterable[Chunk]) -> int:
    """Send every chunk, small ones in one write; close a generator even when sending fails.

    An empty chunk (``sessions.FLUSH``) sends what is pending at once; a
    ``FileSpan`` goes out with ``sendfile``, right behind what is pending (a
    small one is read and sent with it).
    """
    sent = 0
    pending = bytearray()
    try:
        for chunk in chunks:
            if isinstance(chunk, FileSpan):
                if chunk.count <= COALESCE_LIMIT:  # small: with what precedes, one write
                    pending += b"".join(chunk.pieces())
                    continue
                if pending:
                    # MSG_MORE: what precedes (a download's answer) waits for the file's
                    # first bytes instead of going alone, whose ACK the client delays.
                    send_fully(conn, pending, MSG_MORE)
                    sent += len(pending)
                    pending.clear()
                sent += send_file(conn, chunk)
                continue
            pending += chunk
            if pending and (not chunk or len(pending) >= COALESCE_LIMIT):
                send_fully(conn, pending)
                sent += len(pending)
                pending.clear()
        if pending:
            send_fully(conn, pending)
            sent += len(pending)
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
    return sent


# How long a farewell may take to leave: a client that does not take it is
# not waited for.
FAREWELL_TIMEOUT = 1.0


def say_farewell(sock: socket.socket, farewell: bytes) -> int:
    """Send a farewell (best effort, FAREWELL_TIMEOUT at most); the bytes sent."""
    if not farewell:
        return 0
    try:
        sock.settimeout(FAREWELL_TIMEOUT)
        sock.sendall(farewell)
    except OSError:
        return 0
    return len(farewell)


def serve_connection(sock: socket.socket, session: Session, log: logging.Logger,
                     peer: str = "", idle_timeout: float | None = None) -> None:
    """Drive one session over a blocking socket until EOF, error, idleness or ``finished``.

    ``idle_timeout`` bounds every wait: for the client's next bytes, and for
    room to send to a client that does not read.
    """
    conn = Connection(session, log, peer or "?")
    reason = EOF
    try:
        sock.settimeout(idle_timeout)
        conn.peer = peer or peer_name(sock.getpeername())
        conn.bytes_out += send_all(sock, [session.greeting()])
        reason = _converse(sock, conn)
    except TimeoutError:  # a send waited too long: the client is not reading
        reason = IDLE_TIMEOUT
    except EOFError as error:  # a file under a download was cut short: the client must know
        log.warning("download cut short peer=%s: %s", conn.peer, error)
        reason = SHORT_FILE
    except OSError as error:
        if error.errno not in PEER_GONE_ERRNOS:
            raise
        reason = error_reason(error)
    finally:
        sock.close()
        conn.close(reason)


def _converse(sock: socket.socket, conn: Connection) -> str:
    """Feed the client's bytes to the session and send its replies; why it ended.

    While the session expects a body, the bytes are read into a pooled buffer,
    up to the body's end, and fed as a view of it.
    """
    buffer: memoryview | None = None
    try:
        while not conn.session.finished:
            expected = conn.session.body_expected()
            if expected > RECV_SIZE and buffer is None:
                buffer = BODY_POOL.take()
            elif expected <= RECV_SIZE and buffer is not None:
                BODY_POOL.give(buffer)  # between uploads, another connection may use it
                buffer = None
            try:
                if buffer is not None:
                    received = sock.recv_into(buffer, min(expected, len(buffer)))
                    data: bytes | memoryview = buffer[:received]
                else:
                    data = sock.recv(RECV_SIZE)
            except TimeoutError:  # silent too long: say why, if the client still listens
                conn.bytes_out += say_farewell(sock, conn.idle_farewell(unread_output=False))
                raise
            if not data:
                return EOF
            conn.bytes_in += len(data)
            conn.bytes_out += send_all(sock, conn.session.feed(data))
        return FINISHED
    finally:
        if buffer is not None:
            BODY_POOL.give(buffer)
