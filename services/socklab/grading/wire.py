"""The client side of every TCP check: connect, read exactly, exchange while sending.

A check never trusts the server to read before it writes: ``exchange`` sends
and reads at once on a non-blocking socket, so a correct server that answers
a 16 MiB message as it arrives is never deadlocked by a client that would
only read once it has sent everything. Every wait has a limit; how a read
ended (``complete``, ``eof``, ``reset``, ``timeout``) goes into the message.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import time

RECV_SIZE = 256 << 10
# No byte moved either way for this long: the server is stuck (or waiting for us).
STALL = 5.0


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A connected TCP socket; OSError (refused, unreachable, timeout) as it comes."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER on, zero seconds)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def exchange(sock: socket.socket, data: bytes, expect: int, *, stall: float = STALL,
             recv_size: int = RECV_SIZE) -> tuple[bytes, str]:
    """Send ``data`` while reading until ``expect`` bytes came; (bytes read, how it ended).

    Ends ``complete``, ``eof`` (the server closed), ``reset`` or ``timeout``
    (nothing moved either way for ``stall`` seconds).
    """
    sock.setblocking(False)
    view, sent, parts, got = memoryview(data), 0, [], 0
    ending = "complete"
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if data else 0))
        last_progress = time.monotonic()
        while got < expect or sent < len(data):
            if got >= expect and sent < len(data):
                selector.modify(sock, selectors.EVENT_WRITE)
            events = selector.select(timeout=0.2)
            if not events and time.monotonic() - last_progress > stall:
                ending = "timeout"
                break
            for _, mask in events:
                if mask & selectors.EVENT_READ and got < expect:
                    try:
                        chunk = sock.recv(min(recv_size, expect - got))
                    except BlockingIOError:
                        chunk = None
                    except ConnectionResetError:
                        ending = "reset"
                        break
                    if chunk == b"":
                        ending = "eof"
                        break
                    if chunk:
                        parts.append(chunk)
                        got += len(chunk)
                        last_progress = time.monotonic()
                if mask & selectors.EVENT_WRITE and sent < len(data):
                    try:
                        sent += sock.send(view[sent:sent + RECV_SIZE])
                        last_progress = time.monotonic()
                    except BlockingIOError:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        ending = "reset"
                        break
                    if sent == len(data):
                        selector.modify(sock, selectors.EVENT_READ)
            else:
                continue
            break
    sock.setblocking(True)
    return b"".join(parts), ending


def read_exact(sock: socket.socket, size: int, timeout: float) -> tuple[bytes, str]:
    """Read ``size`` bytes (a greeting); (what came, how it ended)."""
    return exchange(sock, b"", size, stall=timeout)


def read_to_eof(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Everything until the server closes; ``eof`` is the good ending here."""
    return exchange(sock, b"", 1 << 40, stall=timeout)


def arrives_within(sock: socket.socket, wait: float) -> bytes:
    """What the server sends, unasked, within ``wait`` seconds (b"": nothing)."""
    sock.settimeout(wait)
    try:
        return sock.recv(RECV_SIZE)
    except (TimeoutError, BlockingIOError):
        return b""
    except ConnectionResetError:
        return b""
    finally:
        sock.settimeout(None)


def fill_without_reading(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send as much of ``data`` as the kernel takes in ``seconds``, reading nothing; bytes sent."""
    sock.setblocking(False)
    view, sent, deadline = memoryview(data), 0, time.monotonic() + seconds
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(view[sent:sent + RECV_SIZE])
            except BlockingIOError:
                time.sleep(0.02)
    except OSError:
        pass
    sock.setblocking(True)
    return sent
