"""Playing one fuzz case over a socket: send while reading, end the case's way.

A TCP case is sent over a non-blocking socket that reads the server's replies
all the while (a server that answers as it reads would otherwise fill both
buffers and stall), then ended by a FIN, an RST or a half-close. A UDP case
is its datagrams and the answers that come within the read timeout. What
comes back is an ``Outcome``; the family judges it.
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from socklab.probes.common import errno_name
from socklab.probes.fuzz.cases import Case, Ending
from socklab.registry import ECHO_OUTPUT_CAP

if TYPE_CHECKING:
    from socklab.probes.fuzz.families.base import Family

# Fuzzer-side limits. None of them is a server failure when reached.
CONNECT_TIMEOUT = 2.0
SEND_TIMEOUT = 10.0  # for all of one case's bytes, megabytes included
QUIET_GAP = 0.1  # a FIN case with no known reply (ftp) closes after this much silence

# The fuzzer's own recv() size: the largest IPv4 datagram (65,507 bytes) fits
# whole, and a megabyte reply takes a few dozen calls.
READ_SIZE = 64 << 10

# Replies are kept up to this size for the judges: the largest echo (a greeting
# and just past select/epoll's output cap) fits. An exec command may print
# 32 MiB, which is counted, not kept.
REPLY_KEPT = ECHO_OUTPUT_CAP + READ_SIZE

SO_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends an RST, not a FIN


@dataclass
class Outcome:
    dropped: bool = False  # the server closed or reset before the fuzzer ended the connection
    timed_out: bool = False  # the fuzzer stopped waiting: its own limit, not a failure
    complete: bool = False  # the whole reply is in: judge it
    connect_error: str | None = None
    reply: bytes = b""
    datagrams: int = 0
    answered: int = 0


# Whether the reply so far (kept in a bytearray, not copied) is all a case waits for.
Done = Callable[[bytearray], bool]


class Wire:
    """One fuzz connection: sends while reading replies, and notes how the server ended it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.reply = bytearray()
        self.received = 0
        self.closed_by: str | None = None  # "eof" or "reset", as the server ended it
        self.last_activity = time.monotonic()

    def send(self, data: bytes, deadline: float) -> bool:
        """Send ``data``, reading all the while; False if the deadline passed first."""
        view = memoryview(data)
        self.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while view and self.closed_by is None:
                if time.monotonic() >= deadline:
                    return False
                for _key, events in self.selector.select(deadline - time.monotonic()):
                    if events & selectors.EVENT_READ:
                        self.read_available()
                    if events & selectors.EVENT_WRITE and self.closed_by is None:
                        view = view[self._send_some(view):]
        finally:
            self.selector.modify(self.sock, selectors.EVENT_READ)
            self.last_activity = time.monotonic()
        return True

    def _send_some(self, view: memoryview) -> int:
        try:
            return self.sock.send(view)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError):
            self.closed_by = "reset"
            return 0

    def read_available(self) -> None:
        while self.closed_by is None:
            try:
                data = self.sock.recv(READ_SIZE)
            except BlockingIOError:
                return
            except ConnectionResetError:
                self.closed_by = "reset"
                return
            if not data:
                self.closed_by = "eof"
                return
            self.received += len(data)
            self.reply += data[: max(0, REPLY_KEPT - len(self.reply))]
            self.last_activity = time.monotonic()

    def wait(self, seconds: float, done: Done | None = None, quiet: float | None = None) -> bool:
        """Read until ``done``, the server's close, or ``quiet`` seconds of silence: True;
        False when ``seconds`` pass first."""
        deadline = time.monotonic() + seconds
        while True:
            if self.closed_by is not None or (done is not None and done(self.reply)):
                return True
            now = time.monotonic()
            if quiet is not None and now - self.last_activity >= quiet:
                return True
            if now >= deadline:
                return False
            until = deadline if quiet is None else min(deadline, self.last_activity + quiet)
            if self.selector.select(max(0.0, until - now)):
                self.read_available()

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.closed_by = self.closed_by or "reset"

    def reset(self) -> None:
        """Close with an RST: SO_LINGER on, with a zero timeout."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, SO_LINGER_RESET)
        self.close()

    def close(self) -> None:
        if self.sock.fileno() != -1:
            self.selector.close()
            self.sock.close()

    @property
    def whole(self) -> bool:
        return self.received == len(self.reply)


def play(sock: socket.socket, case: Case, family: Family, read_timeout: float) -> Outcome:
    """Send the case's parts over a connected ``sock``, then end it the case's way."""
    wire = Wire(sock)
    try:
        deadline = time.monotonic() + SEND_TIMEOUT
        for number, part in enumerate(case.parts):
            if not wire.send(part, deadline):
                return Outcome(timed_out=True, dropped=wire.closed_by is not None)
            if case.gap and number < len(case.parts) - 1:
                wire.wait(case.gap)
        match case.ending:
            case Ending.FIN:
                return end_fin(wire, family.reply_done(case), read_timeout)
            case Ending.HALF_CLOSE:
                return end_half_close(wire, read_timeout)
            case Ending.RST:
                return end_rst(wire)
        raise ValueError(f"a TCP case cannot end by {case.ending!r}")
    finally:
        wire.close()


def end_fin(wire: Wire, done: Done | None, read_timeout: float) -> Outcome:
    """Wait for the reply (or for silence), then close(): a FIN."""
    settled = wire.wait(read_timeout, done, None if done else QUIET_GAP)
    complete = done is not None and wire.whole and done(wire.reply)
    dropped = wire.closed_by is not None
    wire.close()
    return Outcome(dropped, not settled, complete, reply=bytes(wire.reply))


def end_half_close(wire: Wire, read_timeout: float) -> Outcome:
    """shutdown(SHUT_WR), then read to the server's EOF: the reply is then whole."""
    wire.read_available()
    early = wire.closed_by
    if early is None:
        wire.shutdown()
    settled = wire.wait(read_timeout)
    dropped = early is not None or wire.closed_by == "reset"
    return Outcome(dropped, not settled, wire.closed_by == "eof" and wire.whole,
                   reply=bytes(wire.reply))


def end_rst(wire: Wire) -> Outcome:
    """Mid-message: close with an RST, at once."""
    wire.read_available()
    dropped = wire.closed_by is not None
    wire.reset()
    return Outcome(dropped)


def play_tcp(case: Case, family: Family, host: str, port: int, read_timeout: float) -> Outcome:
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        return Outcome(connect_error="timeout")
    except OSError as error:
        return Outcome(connect_error=errno_name(error))
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # sends stay apart
        return play(sock, case, family, read_timeout)


def play_udp(case: Case, host: str, port: int, read_timeout: float) -> Outcome:
    """Send the datagrams, then collect answers until all came or ``read_timeout`` passed."""
    replies: list[bytes] = []
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in case.parts:
            try:
                sock.sendto(datagram, (host, port))
                sent += 1
            except OSError:  # e.g. ENOBUFS in a burst, or an earlier ICMP error
                pass
        deadline = time.monotonic() + read_timeout
        while len(replies) < sent and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                replies.append(sock.recv(READ_SIZE))
            except TimeoutError:
                break
            except ConnectionRefusedError:
                return Outcome(connect_error="ECONNREFUSED", datagrams=sent)
    return Outcome(timed_out=len(replies) < sent, complete=True, reply=b"".join(replies),
                   datagrams=sent, answered=len(replies))
