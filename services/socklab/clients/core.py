"""Blocking protocol clients shared by the learner's REPLs and the scripted checks."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from socklab.protocol import auth, exec_framed, ftp, handshake
from socklab.protocol.body import SizedBody
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import MAX_REPLY_FRAME, FrameDecoder

# The tutorial's clients read with recv(1024); ours do too where the lesson
# depends on it, and read bigger chunks where only the bytes matter.
TUTORIAL_RECV = 1024
BULK_RECV = 256 << 10

# How long a client waits for a server before it says so: longer than the exec
# server's 30 s command limit, so a timed-out command's reply is still heard.
DEFAULT_TIMEOUT = 60.0


class ServerClosed(RemoteProtocolError):
    """The server closed the connection before the message was complete."""


def open_connection(host: str, port: int, timeout: float | None = DEFAULT_TIMEOUT) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def recv_some(sock: socket.socket, size: int = BULK_RECV) -> bytes:
    data = sock.recv(size)
    if not data:
        raise ServerClosed("the server closed the connection")
    return data


def recv_exact(sock: socket.socket, size: int, recv_size: int = BULK_RECV,
               sink: BinaryIO | None = None) -> bytes:
    """Read exactly ``size`` bytes (into ``sink`` if given, else returned)."""
    body, parts = SizedBody(size), []
    while not body.done:
        part, _ = body.feed(recv_some(sock, min(recv_size, body.remaining)))
        (sink.write if sink else parts.append)(part)
    return b"".join(parts)


# How long a client with a token waits for the server's challenge, which a
# server with a token sends as soon as it accepts the connection.
CHALLENGE_WAIT = 10.0

NEEDS_TOKEN = f"the server requires a token: set {auth.TOKEN_VARIABLE} or use --token-file"


def read_token(token_file: str | None = None) -> bytes | None:
    """The exec token from ``token_file``, else from $SOCKLAB_EXEC_TOKEN; None when unset.

    Never from the command line, where ``ps`` would show it to every user.
    """
    if token_file:
        return auth.load_token(Path(token_file).read_text(), token_file)
    return auth.load_token(os.environ.get(auth.TOKEN_VARIABLE))


def authenticate(sock: socket.socket, token: bytes, framing: auth.AuthFraming,
                 wait: float = CHALLENGE_WAIT) -> bytes:
    """Prove ``token`` to the server (challenge, proof, verdict); what followed the verdict.

    Raises ``auth.AuthDenied`` when the server refuses, or sends no challenge
    within ``wait`` seconds.
    """
    client = auth.ClientAuth(token, framing)
    timeout = sock.gettimeout()
    sock.settimeout(wait)
    try:
        challenge = _auth_message(sock, client.reader)
    except TimeoutError:
        raise auth.AuthDenied(f"no challenge from the server within {wait:g} s: "
                              "it does not ask for a token") from None
    finally:
        sock.settimeout(timeout)
    sock.sendall(client.answer(challenge))
    client.verdict(_auth_message(sock, client.reader))
    return client.reader.rest()


def _auth_message(sock: socket.socket, reader: auth.MessageReader) -> bytes:
    while (message := reader.next_message()) is None:
        reader.feed(recv_some(sock, TUTORIAL_RECV))
    return message


class HandshakeClient:
    """The handshake port as the tutorial's client does it: header, ``start``, n bytes.

    With a ``token``, the proof comes first (the handshake port of a server with a token).
    """

    def __init__(self, sock: socket.socket, recv_size: int = BULK_RECV,
                 token: bytes | None = None) -> None:
        self.sock = sock
        self.recv_size = recv_size
        if token is not None:
            authenticate(sock, token, auth.FRAMINGS["handshake"])

    def run(self, command: str) -> tuple[handshake.ReadyHeader, bytes]:
        self.sock.sendall(command.encode())
        header = recv_some(self.sock, TUTORIAL_RECV)
        if auth.FRAMINGS["handshake"].is_challenge(header.split(b"\n", 1)[0]):
            raise auth.AuthDenied(NEEDS_TOKEN)
        ready = handshake.parse_ready(header)
        self.sock.sendall(handshake.START)
        return ready, recv_exact(self.sock, ready.size, self.recv_size)


class FramedClient:
    """The framed port: one request frame, three reply frames.

    With a ``token``, the proof comes first (the framed port of a server with a token).
    """

    def __init__(self, sock: socket.socket, token: bytes | None = None) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(MAX_REPLY_FRAME)
        if token is not None:
            self.decoder.feed(authenticate(sock, token, auth.FRAMINGS["framed"]))

    def run(self, command: str) -> exec_framed.ExecReply:
        self.sock.sendall(exec_framed.encode_request(command))
        return self.reply()

    def reply(self) -> exec_framed.ExecReply:
        """Read one reply (three frames), e.g. after sending several requests at once."""
        header = self._next_frame()
        if auth.FRAMINGS["framed"].is_challenge(header):
            raise auth.AuthDenied(NEEDS_TOKEN)
        return exec_framed.decode_reply([header, self._next_frame(), self._next_frame()])

    def _next_frame(self) -> bytes:
        while (frame := self.decoder.next_frame()) is None:
            self.decoder.feed(recv_some(self.sock))
        return frame


class FtpClient:
    """The ftp-server's client: banner, then JSON requests and sized bodies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = ftp.AnswerReader()
        self.banner = self._line().decode("utf-8", "replace")

    def _line(self) -> bytes:
        while (line := self.reader.next_line()) is None:
            self.reader.feed(recv_some(self.sock))
        return line

    def answer(self) -> dict[str, Any]:
        while (fields := self.reader.next_answer()) is None:
            self.reader.feed(recv_some(self.sock))
        return fields

    def request(self, fields: dict[str, Any]) -> dict[str, Any]:
        self.sock.sendall(json.dumps(fields).encode())
        return self.answer()

    def put(self, name: str, size: int, chunks: Iterable[bytes],
            sha256: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"action": "put", "filename": name, "filesize": size}
        if sha256:
            fields["sha256"] = sha256
        first = self.request(fields)
        if first["status"] != ftp.OK:
            return first
        for chunk in chunks:
            self.sock.sendall(chunk)
        return self.answer()

    def get(self, name: str, sink: BinaryIO) -> dict[str, Any]:
        first = self.request({"action": "get", "filename": name})
        if first["status"] == ftp.OK:
            leftover = bytes(self.reader.buffer)
            self.reader.buffer.clear()
            size = first["filesize"]
            sink.write(leftover[:size])
            recv_exact(self.sock, size - len(leftover), sink=sink)
        return first

    def list(self) -> dict[str, Any]:
        return self.request({"action": "list"})


def file_chunks(file: BinaryIO, size: int = BULK_RECV) -> Iterable[bytes]:
    while chunk := file.read(size):
        yield chunk


def sha256_of(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in file_chunks(file):
        digest.update(chunk)
    return digest.hexdigest()
