"""Scripted hostile clients for the hardening tests: they misbehave on purpose.

Each check runs on a client host (``python3 -m socklab.clients.scripted_hardening
NAME '<json kwargs>'``) and reports, as JSON, what the server did to it:

- ``fd_exhaustion``: more connections than the server has descriptors, held
  open while the held ones keep talking, then released: is the server still
  serving, and does it accept again?
- ``trickle``: one byte at a time with a pause between bytes.
- ``never_reads``: sends and sends and never reads a reply.
- ``reset_mid_message``: half a message, then RST.
"""

from __future__ import annotations

import errno
import json
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from socklab.clients.core import FramedClient, open_connection, recv_exact
from socklab.clients.scripted import main as run_check
from socklab.probes.common import try_connect
from socklab.registry import TRANSFORMS

Result = dict[str, Any]

# How long held connections wait, together, for their greeting or first
# answer before the check decides the server has not accepted them (yet).
ANSWER_WAIT = 2.0


class Dialog:
    """One request and the check of its answer, for each kind of server.

    ``kind``: an echo server's reply transform (``upper``, ``same``: a name
    of ``socklab.registry.TRANSFORMS``), ``ftp`` (a ``list`` request after the
    banner line) or ``framed`` (a ``true`` on exec-server's framed port).
    ``greeting``: what an echo server sends first.
    """

    def __init__(self, kind: str, greeting: str = "") -> None:
        self.kind = kind
        self.greeting = greeting.encode()

    def request(self, tag: int) -> bytes:
        if self.kind == "ftp":
            return b'{"action": "list"}'
        if self.kind == "framed":
            body = b'{"cmd": "true"}'
            return struct.pack(">I", len(body)) + body
        return b"message %d" % tag

    def complete(self, answer: bytes, request: bytes, first: bool) -> bool:
        """Is ``answer`` (the greeting or banner too, when ``first``) the whole right answer?"""
        if self.kind == "ftp":
            lines = answer.split(b"\n")
            if len(lines) < (3 if first else 2):
                return False
            return json.loads(lines[1 if first else 0]).get("status") == 200
        if self.kind == "framed":
            frames, rest = [], answer
            while len(rest) >= 4 and len(rest) >= 4 + struct.unpack(">I", rest[:4])[0]:
                size = struct.unpack(">I", rest[:4])[0]
                frames.append(rest[4:4 + size])
                rest = rest[4 + size:]
            return len(frames) == 3 and json.loads(frames[0]).get("exit_status") == 0
        expected = TRANSFORMS[self.kind](request)
        return answer == (self.greeting if first else b"") + expected

    def wait(self, socks: list[socket.socket], requests: list[bytes], first: bool,
             timeout: float) -> list[bool]:
        """Read from every socket at once until each answer is complete or ``timeout``."""
        answers = [b""] * len(socks)
        done = [False] * len(socks)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for index, sock in enumerate(socks):
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, index)
            while not all(done) and (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    index = key.data
                    try:
                        data = socks[index].recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(socks[index])
                        continue
                    answers[index] += data
                    if self.complete(answers[index], requests[index], first):
                        done[index] = True
                        selector.unregister(socks[index])
        for sock in socks:
            sock.setblocking(True)
        return done

    def exchange(self, socks: list[socket.socket], tag: int, first: bool = False,
                 timeout: float = 5.0) -> list[bool]:
        """Send a request on every socket, then wait for all the answers."""
        requests = [self.request(tag * 100_000 + i) for i in range(len(socks))]
        sent = []
        for sock, request in zip(socks, requests, strict=True):
            try:
                sock.sendall(request)
                sent.append(True)
            except OSError:
                sent.append(False)
        done = self.wait(socks, requests, first, timeout)
        return [s and d for s, d in zip(sent, done, strict=True)]


def fd_exhaustion(host: str, port: int, count: int, kind: str, greeting: str = "",
                  hold: float = 6.0, rounds_every: float = 0.5, quiet: float = 0.0,
                  marker: str = "") -> Result:
    """Open ``count`` connections to a server with fewer descriptors; hold; release.

    Connections the server could not accept wait in its listen queue. First
    every connection stays quiet for ``quiet`` seconds (``marker``, a file
    created when the quiet starts, lets a test measure the server's CPU
    then: a loop spinning on its listener would show). Then, for ``hold``
    seconds, every accepted one does an exchange each ``rounds_every``
    seconds (the server must keep serving them). Then all are closed and a
    new connection must be accepted and served.
    """
    dialog = Dialog(kind, greeting)
    socks = []
    connect_failures: dict[str, int] = {}
    for _ in range(count):
        sock, outcome = try_connect(host, port, 5.0)
        if sock is None:
            connect_failures[outcome] = connect_failures.get(outcome, 0) + 1
        else:
            socks.append(sock)
    first = dialog.exchange(socks, 0, first=True, timeout=ANSWER_WAIT)
    accepted = [s for s, ok in zip(socks, first, strict=True) if ok]
    if marker:
        open(marker, "w").close()
    time.sleep(quiet)
    rounds, exchanges, failed = 0, 0, 0
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        rounds += 1
        results = dialog.exchange(accepted, rounds)
        exchanges += len(results)
        failed += results.count(False)
        time.sleep(rounds_every)
    for sock in socks:
        sock.close()
    # The server may need a moment to see the closes and retry its accept.
    after = False
    after_deadline = time.monotonic() + 15.0
    while not after and time.monotonic() < after_deadline:
        sock, _outcome = try_connect(host, port, 5.0)
        if sock is not None:
            with sock:
                after = dialog.exchange([sock], -1, first=True)[0]
        if not after:
            time.sleep(0.5)
    return {"connections": len(socks), "connect_failures": connect_failures,
            "accepted_while_held": len(accepted), "rounds": rounds, "exchanges": exchanges,
            "failed_exchanges": failed, "served_after_release": after}


def trickle(host: str, port: int, message: str, greeting: str = "", reply: str = "upper",
            interval: float = 1.0, framed: bool = False) -> Result:
    """Send ``message`` one byte per ``interval`` seconds; read the whole answer.

    ``reply`` names an echo server's transform (``socklab.registry.TRANSFORMS``).
    ``framed``: the message is a command for exec-server's framed port, sent
    as a length-prefixed JSON request (trickled too); the answer is the
    reply's header frame.
    """
    if framed:
        body = json.dumps({"cmd": message}).encode()
        data = struct.pack(">I", len(body)) + body
    else:
        data = message.encode()
    started = time.monotonic()
    with open_connection(host, port, timeout=interval + 10) as sock:
        if greeting:
            recv_exact(sock, len(greeting))
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(interval)
        if framed:
            reply = FramedClient(sock).reply()
            answer: Any = {"exit_status": reply.exit_status, "stdout": reply.stdout.decode()}
            correct = reply.exit_status == 0
        else:
            got = recv_exact(sock, len(data))
            answer = got.decode("latin-1")
            correct = got == TRANSFORMS[reply](data)
    return {"bytes": len(data), "interval": interval, "answer": answer, "correct": correct,
            "seconds": time.monotonic() - started}


def never_reads(host: str, port: int, limit: int = 256 << 20, chunk: int = 64 << 10,
                stuck_after: float = 30.0) -> Result:
    """Send up to ``limit`` bytes and never read; stop when the server drops us.

    Reports how much was sent, and how the connection ended: ``reset``/
    ``closed`` (the server dropped it), ``limit`` (everything was taken in)
    or ``stuck`` (sends blocked for ``stuck_after`` seconds and the server
    never hung up).
    """
    sock = open_connection(host, port, timeout=None)
    sock.setblocking(False)
    block = b"x" * chunk
    sent, ended = 0, "limit"
    started = last_progress = time.monotonic()
    try:
        while sent < limit:
            try:
                sent += sock.send(block)
                last_progress = time.monotonic()
                continue
            except BlockingIOError:
                pass
            except OSError as error:
                ended = "reset" if error.errno in (errno.ECONNRESET, errno.EPIPE) else (
                    errno.errorcode.get(error.errno or 0, str(error)))
                break
            if time.monotonic() - last_progress > stuck_after:
                ended = "stuck"
                break
            # Our send buffer is full: is the other side still there?
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    ended = "closed"
                    break
            except BlockingIOError:
                pass
            except OSError:
                ended = "reset"
                break
            time.sleep(0.05)
    finally:
        sock.close()
    return {"sent": sent, "ended": ended, "seconds": time.monotonic() - started}


def reset_mid_message(host: str, port: int, data: str, greeting: str = "") -> Result:
    """Send the start of a message, then reset the connection (SO_LINGER 0)."""
    with open_connection(host, port) as sock:
        if greeting:
            recv_exact(sock, len(greeting))
        sock.sendall(data.encode("latin-1"))
        time.sleep(0.2)  # let the bytes reach the server before the RST
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return {"sent": len(data)}


CHECKS: dict[str, Callable[..., Result]] = {
    f.__name__: f for f in (fd_exhaustion, trickle, never_reads, reset_mid_message)
}


if __name__ == "__main__":
    raise SystemExit(run_check(sys.argv[1:], CHECKS, __name__))
