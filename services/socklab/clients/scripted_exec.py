"""Scripted exec clients for the hardening tests: any port, a token, load, no reading.

Each runs one exchange on a client host and returns a dict, like those of
``socklab.clients.scripted``:

    python3 -m socklab.clients.scripted_exec NAME '<json kwargs>'

with ``{"variant": "exec", "framing": "handshake"}`` (say) in place of a host
and port, as the registry gives them.

A token is never passed in the arguments (``ps`` would show it): checks take
``token_file``, a path on the client host, as the learner's client does.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import sys
import termios
import threading
import time
from collections.abc import Callable

from socklab.clients import scripted
from socklab.clients.core import (
    TUTORIAL_RECV,
    FramedClient,
    HandshakeClient,
    authenticate,
    open_connection,
    read_token,
    recv_exact,
    recv_some,
)
from socklab.clients.scripted import Result, _digest
from socklab.protocol import auth, exec_framed, handshake
from socklab.protocol.errors import ProtocolError

# After a naive reply starts, the rest of it is what arrives before this much silence.
QUIET = 0.5

# How often never_read looks whether the server has started sending.
POLL = 0.02


def _text(data: bytes) -> str:
    return data[:4096].decode("utf-8", "replace")


def _framed_result(reply: exec_framed.ExecReply) -> Result:
    return {**reply.header(), "stdout": _text(reply.stdout), "stderr": _text(reply.stderr),
            "stdout_sha256": _digest(reply.stdout)}


def _read_until_quiet(sock: socket.socket, quiet: float = QUIET) -> bytes:
    data = recv_some(sock)
    sock.settimeout(quiet)
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except TimeoutError:
        pass
    return data


def naive(host: str, port: int, command: str) -> Result:
    """One command on the naive port: its banner and the reply."""
    with open_connection(host, port) as sock:
        banner = recv_some(sock, TUTORIAL_RECV)
        sock.sendall(command.encode())
        reply = _read_until_quiet(sock)
    return {"banner": _text(banner), "reply": _text(reply)}


def handshake_raw(host: str, port: int, command: str,
                       token_file: str | None = None) -> Result:
    """One command on the handshake port, keeping the Ready header as it was sent."""
    with open_connection(host, port) as sock:
        token = read_token(token_file)
        if token is not None:
            authenticate(sock, token, auth.FRAMINGS["handshake"])
        sock.sendall(command.encode())
        raw = recv_some(sock, TUTORIAL_RECV)
        header = handshake.parse_ready(raw)
        sock.sendall(handshake.START)
        output = recv_exact(sock, header.size)
    return {"header": raw.decode("ascii", "replace"), "size": header.size,
            "status": header.status, "flags": sorted(header.flags), "received": len(output),
            "output": _text(output), "sha256": _digest(output)}


def framed(host: str, port: int, command: str, token_file: str | None = None) -> Result:
    """One command on the framed port (with the token's proof first, if given)."""
    with open_connection(host, port) as sock:
        reply = FramedClient(sock, read_token(token_file)).run(command)
    return _framed_result(reply)


def session(host: str, port: int, mode: str, commands: list[str],
                 token_file: str | None = None) -> Result:
    """Several commands on one connection of the handshake or framed port."""
    token = read_token(token_file)
    with open_connection(host, port) as sock:
        if mode == "handshake":
            client = HandshakeClient(sock, token=token)
            outputs = [_text(client.run(command)[1]) for command in commands]
        else:
            framed = FramedClient(sock, token)
            outputs = [_text(framed.run(command).stdout) for command in commands]
    return {"outputs": outputs}


def token_attempt(host: str, port: int, mode: str, command: str,
                       token_file: str | None = None) -> Result:
    """Try to run ``command`` the way a client without the right token would.

    With ``token_file`` (a wrong token), the proof made from it and the
    command go out in one write; without, the command goes out at once, as
    from a client that knows nothing of tokens. Returns what the server
    answered until it closed the connection.
    """
    framing = auth.FRAMINGS[mode]
    request = command.encode() if mode == "handshake" else exec_framed.encode_request(command)
    with open_connection(host, port, timeout=30) as sock:
        reader = framing.reader()
        if token_file is None:
            sock.sendall(request)
        else:
            client = auth.ClientAuth(read_token(token_file) or b"", framing)
            while (challenge := reader.next_message()) is None:
                reader.feed(recv_some(sock, TUTORIAL_RECV))
            sock.sendall(client.answer(challenge) + request)
        received = bytearray()
        closed = _read_to_eof(sock, received)
    reader.feed(bytes(received))
    messages = []
    while (message := reader.next_message()) is not None:
        messages.append(message.decode("utf-8", "replace"))
    return {"messages": messages, "closed_by_server": closed}


def _read_to_eof(sock: socket.socket, sink: bytearray) -> bool:
    """Read until the server closes; False if it is still open after the socket's timeout."""
    try:
        while chunk := sock.recv(1 << 16):
            sink += chunk
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def connect(host: str, port: int) -> Result:
    """Does anything listen on ``port``? The errno name when not."""
    try:
        with socket.create_connection((host, port), timeout=10):
            return {"connected": True, "error": None}
    except OSError as error:
        return {"connected": False, "error": errno.errorcode.get(error.errno or 0, str(error))}


def concurrent_framed(host: str, port: int, command: str, clients: int) -> Result:
    """``clients`` connections to the framed port, each running ``command`` at once."""
    results: list[Result] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            with open_connection(host, port, timeout=120) as sock:
                reply = FramedClient(sock).run(command)
            result = reply.header()
        except (OSError, ProtocolError) as error:
            result = {"client_error": str(error)}
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"replies": results}


def _unread_bytes(sock: socket.socket) -> int:
    waiting = fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(waiting, sys.byteorder)


def never_read(host: str, port: int, command: str, then: str,
                    wait: float = 60.0) -> Result:
    """Send ``command`` on the framed port and never read its reply; meanwhile run ``then``.

    Once the server has started sending the unread reply (so its command holds
    a slot), a second connection runs ``then`` and reads its reply normally.
    Finally the first connection reads what is left, to see whether the
    server dropped it before the whole reply was sent.
    """
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    silent.settimeout(wait)
    with silent:
        silent.connect((host, port))
        silent.sendall(exec_framed.encode_request(command))
        deadline = time.monotonic() + wait
        while _unread_bytes(silent) == 0 and time.monotonic() < deadline:
            time.sleep(POLL)
        sending = _unread_bytes(silent) > 0
        started = time.monotonic()
        with open_connection(host, port, timeout=wait) as sock:
            other = FramedClient(sock).run(then)
        other_seconds = time.monotonic() - started
        received = bytearray()
        closed = _read_to_eof(silent, received)
    return {"server_was_sending": sending, "other": _framed_result(other),
            "other_seconds": round(other_seconds, 3), "unread_reply_received": len(received),
            "closed_by_server": closed}


CHECKS: dict[str, Callable[..., Result]] = {
    f.__name__: f for f in (naive, handshake_raw, framed, session, token_attempt, connect,
                            concurrent_framed, never_read)
}


if __name__ == "__main__":
    raise SystemExit(scripted.main(sys.argv[1:], CHECKS, __name__))
