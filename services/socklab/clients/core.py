"""Blocking protocol clients shared by the learner's REPLs and the scripted checks."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable
from typing import Any, BinaryIO

from socklab.protocol import exec_framed, ftp, handshake
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


class HandshakeClient:
    """Port 9001 as the tutorial's client does it: header, ``start``, n bytes."""

    def __init__(self, sock: socket.socket, recv_size: int = BULK_RECV) -> None:
        self.sock = sock
        self.recv_size = recv_size

    def run(self, command: str) -> tuple[handshake.ReadyHeader, bytes]:
        self.sock.sendall(command.encode())
        header = handshake.parse_ready(recv_some(self.sock, TUTORIAL_RECV))
        self.sock.sendall(handshake.START)
        return header, recv_exact(self.sock, header.size, self.recv_size)


class FramedClient:
    """Port 9002: one request frame, three reply frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(MAX_REPLY_FRAME)

    def run(self, command: str) -> exec_framed.ExecReply:
        self.sock.sendall(exec_framed.encode_request(command))
        return self.reply()

    def reply(self) -> exec_framed.ExecReply:
        """Read one reply (three frames), e.g. after sending several requests at once."""
        return exec_framed.decode_reply([self._next_frame() for _ in range(3)])

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
