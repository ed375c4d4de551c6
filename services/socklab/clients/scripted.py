"""Scripted clients: each runs one exchange on a client host and returns a dict.

The integration suite and the Ansible checks call these inside a client
container (``python3 -m socklab.clients.scripted NAME '<json kwargs>'`` prints
the dict as JSON), so what they measure is measured across the lab network,
host to host.

Every check takes ``variant`` (and ``framing``, for a port other than the
main one) in place of ``host`` and ``port``: ``{"variant": "exec", "framing":
"framed"}`` reaches exec-server's framed port as socklab.registry gives it, and
the echo checks get the variant's greeting and reply transform from there too.
A ``host`` or ``port`` given as well wins (a spare copy of a server under a
name of its own, a stack's address).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from socklab.clients.core import (
    TUTORIAL_RECV,
    FramedClient,
    FtpClient,
    HandshakeClient,
    open_connection,
    recv_exact,
    recv_some,
)
from socklab.registry import TRANSFORMS, VARIANTS

Result = dict[str, Any]


def _payload(size: int, seed: int) -> bytes:
    """Reproducible bytes with every value 0-255, so upper() changes some of them."""
    return random.Random(seed).randbytes(size)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def echo(host: str, port: int, size: int = 1024, greeting: str = "", reply: str = "upper",
         seed: int = 1) -> Result:
    """Send ``size`` bytes while reading the reply in parallel; compare.

    ``reply`` names the server's transform in ``socklab.registry.TRANSFORMS``.
    """
    payload = _payload(size, seed)
    expected = TRANSFORMS[reply](payload)
    started = time.monotonic()
    with open_connection(host, port) as sock:
        hello = recv_exact(sock, len(greeting)) if greeting else b""
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        reply = recv_exact(sock, len(expected))
        sender.join()
    return {"greeting": hello.decode("latin-1"), "sent": size, "received": len(reply),
            "intact": reply == expected, "sha256_expected": _digest(expected),
            "sha256_received": _digest(reply), "seconds": time.monotonic() - started}


def slow_reader(host: str, port: int, size: int = 1 << 20, greeting: str = "",
                reply: str = "upper", piece: int = 4096, pause: float = 0.001,
                seed: int = 2) -> Result:
    """Send ``size`` bytes at full speed but read the reply slowly, in small pieces."""
    payload = _payload(size, seed)
    started = time.monotonic()
    with open_connection(host, port) as sock:
        hello = recv_exact(sock, len(greeting)) if greeting else b""
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        parts = []
        for _ in range(0, size, piece):
            time.sleep(pause)
            parts.append(recv_exact(sock, min(piece, size - sum(map(len, parts)))))
        sender.join()
    received = b"".join(parts)
    return {"greeting": hello.decode("latin-1"), "received": len(received),
            "intact": received == TRANSFORMS[reply](payload),
            "seconds": time.monotonic() - started}


def _hang_up_after(sock: socket.socket, started: float) -> tuple[float | None, int]:
    """Read until the server hangs up: (seconds since ``started`` or None on timeout, bytes)."""
    received = 0
    try:
        while data := sock.recv(65536):
            received += len(data)
    except TimeoutError:
        return None, received
    except ConnectionResetError:
        pass
    return round(time.monotonic() - started, 3), received


def silent_client(host: str, port: int, wait: float = 10.0) -> Result:
    """Connect and say nothing: when (if ever) does the server hang up?"""
    started = time.monotonic()
    with open_connection(host, port, timeout=wait) as sock:
        closed_after, received = _hang_up_after(sock, started)  # a greeting, then nothing
    return {"closed_after": closed_after, "received": received}


def ftp_stalled_put(host: str, port: int, filename: str, size: int, send: int,
                    wait: float = 15.0) -> Result:
    """Announce ``size`` bytes, send only ``send`` of them, then stall until the server hangs up."""
    started = time.monotonic()
    with open_connection(host, port, timeout=wait) as sock:
        client = FtpClient(sock)
        first = client.request({"action": "put", "filename": filename, "filesize": size})
        sock.sendall(bytes(send))
        closed_after, _ = _hang_up_after(sock, started)
    return {"answer": first, "closed_after": closed_after}


def tcp_one_at_a_time(host: str, port: int, wait: float = 1.0) -> Result:
    """Two clients: does the second get an answer while the first is connected?"""
    first = open_connection(host, port)
    first.sendall(b"first")
    first_reply = recv_some(first)
    second = open_connection(host, port)  # completes: the kernel queues it
    second.sendall(b"second")
    second.settimeout(wait)
    try:
        early = recv_some(second)
    except TimeoutError:
        early = b""
    first.close()
    left_at = time.monotonic()
    second.settimeout(10)
    late = early or recv_some(second)
    second.close()
    return {"first_reply": first_reply.decode(), "second_reply_while_first_connected":
            early.decode(), "second_reply_after_first_left": late.decode(),
            "second_waited_after_first_left": time.monotonic() - left_at}


def udp(host: str, port: int, count: int = 10, size: int = 16, timeout: float = 2.0) -> Result:
    """Send ``count`` datagrams, collect the answers until ``timeout`` of silence."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for index in range(count):
            sock.sendto(_payload(size, index), (host, port))
        try:
            while len(replies) < count:
                replies.append(sock.recvfrom(65535)[0])
        except TimeoutError:
            pass
    return {"sent": count, "answered": len(replies),
            "distinct_replies": sorted({r.decode("latin-1") for r in replies})}


def exec_handshake(host: str, port: int, command: str, recv_size: int = 100) -> Result:
    """The tutorial's handshake client: header via recv(1024), body via recv(100)."""
    with open_connection(host, port) as sock:
        header, output = HandshakeClient(sock, recv_size).run(command)
    return {"size": header.size, "status": header.status, "received": len(output),
            "sha256": _digest(output), "text": output[:4096].decode("utf-8", "replace")}


def _wait_until_settled(sock: socket.socket, quiet: float, limit: float = 15.0) -> None:
    """Wait, without reading, until the replies stop arriving for ``quiet`` seconds.

    On a busy machine the last command may finish after the pause between
    sends; the glue the tutorial shows is there only once every reply is in.
    """
    deadline = time.monotonic() + limit
    waiting = -1
    previous = sock.gettimeout()
    sock.settimeout(quiet)
    while time.monotonic() < deadline:
        try:
            now = len(sock.recv(1 << 20, socket.MSG_PEEK))
        except TimeoutError:
            now = waiting
        if now == waiting and now > 0:
            break
        waiting = now
        time.sleep(quiet)
    sock.settimeout(previous)


def exec_naive(host: str, port: int, commands: list[str], pause: float = 0.3,
               recv_size: int = TUTORIAL_RECV) -> Result:
    """Send each command ``pause`` apart without reading, then read as the tutorial does."""
    with open_connection(host, port) as sock:
        banner = recv_some(sock, TUTORIAL_RECV)
        for command in commands:
            sock.sendall(command.encode())
            time.sleep(pause)
        _wait_until_settled(sock, pause)
        chunks = [recv_some(sock, recv_size)]
        sock.settimeout(pause)
        try:
            while True:
                chunks.append(recv_some(sock, recv_size))
        except TimeoutError:
            pass
    return {"banner": banner.decode("utf-8", "replace"),
            "chunks": [c.decode("utf-8", "replace") for c in chunks]}


def exec_framed(host: str, port: int, command: str) -> Result:
    with open_connection(host, port) as sock:
        reply = FramedClient(sock).run(command)
    return {**reply.header(), "stdout_sha256": _digest(reply.stdout),
            "stdout": reply.stdout[:4096].decode("utf-8", "replace"),
            "stderr": reply.stderr[:4096].decode("utf-8", "replace")}


def ftp_put(host: str, port: int, filename: str, size: int, seed: int = 1,
            send_sha256: bool = False) -> Result:
    """Upload ``size`` reproducible bytes under ``filename``."""
    data = _payload(size, seed)
    digest = _digest(data)
    with open_connection(host, port) as sock:
        client = FtpClient(sock)
        chunks = (data[i : i + 65536] for i in range(0, size, 65536))
        answer = client.put(filename, size, chunks, digest if send_sha256 else None)
    return {"banner": client.banner, "answer": answer, "sha256": digest}


def ftp_get(host: str, port: int, filename: str) -> Result:
    sink = io.BytesIO()
    with open_connection(host, port) as sock:
        answer = FtpClient(sock).get(filename, sink)
    return {"answer": answer, "received": sink.tell(), "sha256": _digest(sink.getvalue())}


def ftp_requests(host: str, port: int, requests: list[Any]) -> Result:
    """Send raw requests on one connection; return every answer (4xx keeps it usable)."""
    with open_connection(host, port) as sock:
        client = FtpClient(sock)
        answers = []
        for request in requests:
            raw = request if isinstance(request, str) else json.dumps(request)
            sock.sendall(raw.encode())
            answers.append(client.answer())
    return {"answers": answers}


def many_clients(host: str, port: int, count: int = 100, greeting: str = "",
                 reply: str = "upper", size: int = 64) -> Result:
    """Open ``count`` connections at once, then have each do one exchange."""
    started = time.monotonic()
    socks = [open_connection(host, port) for _ in range(count)]
    connected = time.monotonic() - started
    greeted = sum(recv_exact(s, len(greeting)) == greeting.encode() for s in socks)
    payloads = [_payload(size, index) for index in range(count)]
    for sock, payload in zip(socks, payloads, strict=True):
        sock.sendall(payload)
    transform = TRANSFORMS[reply]
    correct = sum(recv_exact(s, size) == transform(p)
                  for s, p in zip(socks, payloads, strict=True))
    for sock in socks:
        sock.close()
    return {"count": count, "greeted": greeted, "correct": correct,
            "connect_seconds": connected, "seconds": time.monotonic() - started}


CHECKS: dict[str, Callable[..., Result]] = {
    f.__name__: f for f in (echo, slow_reader, silent_client, tcp_one_at_a_time, udp,
                            exec_handshake, exec_naive, exec_framed, ftp_put, ftp_get,
                            ftp_stalled_put, ftp_requests, many_clients)
}


def registry_arguments(check: Callable[..., Result], args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with ``variant`` and ``framing`` replaced by what the registry says of them.

    The variant's host and port (of ``framing``, the main one without), and
    its greeting and reply transform when ``check`` takes them; what ``args``
    names itself is kept.
    """
    args = dict(args)
    name, framing = args.pop("variant", None), args.pop("framing", None)
    if name is None:
        if framing is not None:
            raise ValueError(f"framing {framing!r} given without a variant")
        return args
    variant = VARIANTS[name]
    known = {"host": variant.host, "greeting": variant.greeting.decode("latin-1"),
             "port": variant.port(framing) if framing else variant.main_port,
             "reply": variant.reply}
    accepted = inspect.signature(check).parameters
    return {**{k: v for k, v in known.items() if k in accepted and v is not None}, **args}


def main(argv: list[str], checks: dict[str, Callable[..., Result]] = CHECKS,
         module: str = __name__) -> int:
    """Run the check named ``argv[0]`` with the JSON keyword arguments ``argv[1]``.

    Other modules of scripted checks (one per server family) call this with
    their own ``checks``: ``python3 -m MODULE NAME JSON`` works the same for all.
    """
    if len(argv) != 2 or argv[0] not in checks:
        print(f"usage: python3 -m {module} {{{','.join(checks)}}} JSON", file=sys.stderr)
        return 2
    check = checks[argv[0]]
    print(json.dumps(check(**registry_arguments(check, json.loads(argv[1])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
