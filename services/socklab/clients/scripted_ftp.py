"""Scripted ftp clients for the fault tests: gated, trickled, over-long, unread.

Each runs one exchange on a client host and returns a dict, like those of
``socklab.clients.scripted``:

    python3 -m socklab.clients.scripted_ftp NAME '<json kwargs>'

with ``{"variant": "ftp"}`` in place of a host and port, as the registry
gives them.

A *gate* is a path on the client host: a check that takes one sends part of
its data, then waits until the test creates that file. That is how a test
holds two uploads in flight at once, or a reader silent, for as long as it
needs to look at the server, without guessing a sleep.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from socklab.clients import scripted
from socklab.clients.core import FtpClient, open_connection
from socklab.clients.scripted import Result, _digest, _payload

# How often a gated check looks for its gate file.
GATE_POLL = 0.02

# Upload bodies are sent in pieces of this size.
SEND_PIECE = 64 << 10


def _wait_for_gate(gate: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} not opened within {wait:.0f}s")
        time.sleep(GATE_POLL)


def _send(sock: socket.socket, data: bytes) -> None:
    for start in range(0, len(data), SEND_PIECE):
        sock.sendall(data[start : start + SEND_PIECE])


def _put_fields(filename: str, size: int, sha256: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"action": "put", "filename": filename, "filesize": size}
    if sha256 is not None:
        fields["sha256"] = sha256
    return fields


def ftp_put_then(host: str, port: int, filename: str, size: int, seed: int = 1,
                 sha256: str | None = None, then: list[dict[str, Any]] | None = None) -> Result:
    """Put ``size`` bytes (claiming ``sha256`` if given), then send ``then`` on the same connection.

    The body is sent only after a 200. ``final`` is None when the put was refused.
    """
    data = _payload(size, seed)
    with open_connection(host, port) as sock:
        client = FtpClient(sock)
        first, final = client.request(_put_fields(filename, size, sha256)), None
        if first["status"] == 200:
            _send(sock, data)
            final = client.answer()
        later = [client.request(request) for request in then or []]
    return {"first": first, "final": final, "then": later, "sha256": _digest(data)}


def ftp_put_extra(host: str, port: int, filename: str, size: int, extra: str,
                  seed: int = 1) -> Result:
    """Send the body and ``extra`` bytes after it in one write: they must be a next request."""
    data = _payload(size, seed)
    with open_connection(host, port) as sock:
        client = FtpClient(sock)
        first = client.request(_put_fields(filename, size, None))
        sock.sendall(data + extra.encode())
        final = client.answer()
        following = client.answer()
    return {"first": first, "final": final, "next": following, "sha256": _digest(data)}


def ftp_put_gated(host: str, port: int, filename: str, size: int, gate: str, seed: int = 1,
                  before_gate: int | None = None, wait: float = 90.0,
                  then: list[dict[str, Any]] | None = None) -> Result:
    """Put: send ``before_gate`` bytes (half by default), wait for ``gate``, send the rest."""
    data = _payload(size, seed)
    split = size // 2 if before_gate is None else before_gate
    with open_connection(host, port, timeout=wait + 30) as sock:
        client = FtpClient(sock)
        first, final = client.request(_put_fields(filename, size, None)), None
        if first["status"] == 200:
            _send(sock, data[:split])
            _wait_for_gate(gate, wait)
            _send(sock, data[split:])
            final = client.answer()
        later = [client.request(request) for request in then or []]
    return {"first": first, "final": final, "then": later, "sha256": _digest(data),
            "sent_before_gate": split}


def ftp_put_trickle(host: str, port: int, filename: str, size: int, interval: float = 1.0,
                    seed: int = 1) -> Result:
    """Put ``size`` bytes one byte every ``interval`` seconds."""
    data = _payload(size, seed)
    started = time.monotonic()
    with open_connection(host, port) as sock:
        client = FtpClient(sock)
        first = client.request(_put_fields(filename, size, None))
        for index in range(size):
            time.sleep(interval)
            sock.sendall(data[index : index + 1])
        final = client.answer()
    return {"first": first, "final": final, "sha256": _digest(data),
            "seconds": round(time.monotonic() - started, 3)}


def _drain(sock: socket.socket, timeout: float) -> tuple[int, str]:
    """Read until the server's FIN or RST: (bytes read, how it ended)."""
    sock.settimeout(timeout)
    received = 0
    try:
        while data := sock.recv(1 << 20):
            received += len(data)
    except TimeoutError:
        return received, "timeout"
    except ConnectionResetError:
        return received, "reset"
    return received, "eof"


def ftp_get_unread(host: str, port: int, filename: str, gate: str, count: int = 1,
                   wait: float = 90.0, drain_timeout: float = 30.0) -> Result:
    """Ask ``count`` connections for ``filename``, read nothing until ``gate``, then drain them.

    Each result counts the bytes that reached this host (answer line and
    body): fewer than the file means the server gave up on the reader.
    """
    socks = []
    try:
        for _ in range(count):
            sock = open_connection(host, port)
            socks.append(sock)
            FtpClient(sock)  # the banner only
            sock.sendall(json.dumps({"action": "get", "filename": filename}).encode())
        _wait_for_gate(gate, wait)
        drained = [_drain(sock, drain_timeout) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    return {"connections": [{"received": n, "ended": how} for n, how in drained]}


def ftp_stalled_put_answers(host: str, port: int, filename: str, size: int, send: int,
                            wait: float = 30.0) -> Result:
    """Announce ``size`` bytes, send ``send``, stall: the answers read until the hang-up."""
    started = time.monotonic()
    with open_connection(host, port, timeout=wait) as sock:
        client = FtpClient(sock)
        first = client.request(_put_fields(filename, size, None))
        sock.sendall(bytes(send))
        tail = bytearray(client.reader.buffer)
        try:
            while data := sock.recv(65536):
                tail += data
            ended = "eof"
        except TimeoutError:
            ended = "timeout"
        except ConnectionResetError:
            ended = "reset"
    answers = [json.loads(line) for line in tail.splitlines() if line.strip()]
    return {"first": first, "answers": answers, "ended": ended,
            "closed_after": round(time.monotonic() - started, 3)}


CHECKS: dict[str, Callable[..., Result]] = {
    f.__name__: f for f in (ftp_put_then, ftp_put_extra, ftp_put_gated, ftp_put_trickle,
                            ftp_get_unread, ftp_stalled_put_answers)
}


if __name__ == "__main__":
    raise SystemExit(scripted.main(sys.argv[1:], CHECKS, __name__))
