"""The blocking clients against real sessions, served by serve_connection over a socketpair."""

from __future__ import annotations

import hashlib
import io
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from socklab.clients.core import (
    FramedClient,
    FtpClient,
    HandshakeClient,
    ServerClosed,
    file_chunks,
    recv_exact,
    sha256_of,
)
from socklab.protocol.exec_framed import ExecReply
from socklab.protocol.handshake import ReadyHeader
from socklab.servers.base import serve_connection
from socklab.sessions import Session
from socklab.sessions.exec import FramedExec, HandshakeExec
from socklab.sessions.ftp import FTP_BANNER, FtpSession
from socklab.storage import UploadDir

IO_TIMEOUT = 5.0


@pytest.fixture
def serve(background, log) -> Iterator[Callable[[Session], socket.socket]]:
    """Start ``serve_connection`` for a session in a thread; return the client's socket."""
    clients: list[socket.socket] = []

    def start(session: Session) -> socket.socket:
        server, client = socket.socketpair()
        client.settimeout(IO_TIMEOUT)
        clients.append(client)
        background.start(serve_connection, server, session, log)
        return client

    yield start
    for client in clients:
        client.close()  # EOF ends serve_connection; the background fixture joins it


# --- recv_exact -----------------------------------------------------------------------


@pytest.mark.parametrize("recv_size", [1, 3, 1 << 20])
def test_clients_recv_exact_reads_exactly(socket_pair, recv_size: int) -> None:
    server, client = socket_pair
    server.sendall(b"0123456789" + b"rest")
    assert recv_exact(client, 10, recv_size) == b"0123456789"
    assert client.recv(10) == b"rest"


def test_clients_recv_exact_into_sink(socket_pair) -> None:
    server, client = socket_pair
    server.sendall(b"abcdef")
    sink = io.BytesIO()
    assert recv_exact(client, 6, 2, sink=sink) == b""
    assert sink.getvalue() == b"abcdef"


def test_clients_recv_exact_zero_reads_nothing(socket_pair) -> None:
    server, client = socket_pair
    server.sendall(b"x")
    assert recv_exact(client, 0) == b""
    assert client.recv(1) == b"x"


def test_clients_recv_exact_early_eof_raises(socket_pair) -> None:
    server, client = socket_pair
    server.sendall(b"abc")
    server.shutdown(socket.SHUT_WR)
    with pytest.raises(ServerClosed):
        recv_exact(client, 4)


def test_clients_sha256_of_and_file_chunks() -> None:
    data = os.urandom(300_000)
    assert sha256_of(io.BytesIO(data)) == hashlib.sha256(data).hexdigest()
    assert b"".join(file_chunks(io.BytesIO(data), 1000)) == data


# --- ftp ------------------------------------------------------------------------------


@pytest.fixture
def ftp_client(serve, tmp_path: Path) -> FtpClient:
    return FtpClient(serve(FtpSession(UploadDir(tmp_path))))


@pytest.mark.parametrize("size", [0, 10, 300_000])
def test_clients_ftp_put_list_get_round_trip(ftp_client: FtpClient, tmp_path, size) -> None:
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    assert ftp_client.banner == FTP_BANNER.decode().rstrip("\n")
    stored = ftp_client.put("f.bin", size, file_chunks(io.BytesIO(data), 4096), sha256=digest)
    assert stored == {"status": 201, "filename": "f.bin", "filesize": size, "sha256": digest}
    assert ftp_client.list() == {"status": 200, "files": [{"name": "f.bin", "size": size}]}
    sink = io.BytesIO()
    assert ftp_client.get("f.bin", sink)["filesize"] == size
    assert sink.getvalue() == data == (tmp_path / "f.bin").read_bytes()
    assert ftp_client.list()["status"] == 200  # the stream is still in step


def test_clients_ftp_refusals_keep_connection(ftp_client: FtpClient, tmp_path) -> None:
    assert ftp_client.get("missing", io.BytesIO())["status"] == 404
    assert ftp_client.put("../escape", 3, [b"abc"])["status"] == 400
    assert ftp_client.put("bad.sum", 3, [b"abc"], sha256="0" * 64)["status"] == 422
    assert ftp_client.list() == {"status": 200, "files": []}
    assert os.listdir(tmp_path) == []


# --- exec -----------------------------------------------------------------------------


@pytest.mark.parametrize("recv_size", [7, 1 << 18])
def test_clients_handshake_runs_commands(serve, fake_runner, recv_size: int) -> None:
    client = HandshakeClient(serve(HandshakeExec(fake_runner)), recv_size)
    assert client.run("ls") == (ReadyHeader(12, 0), b"a.txt\nb.txt\n")
    assert client.run("true") == (ReadyHeader(0, 0), b"")
    assert client.run("fail") == (ReadyHeader(5, 2), b"boom\n")
    assert client.run("big") == (ReadyHeader(100_000, 0), b"x" * 100_000)
    assert fake_runner.commands == [b"ls", b"true", b"fail", b"big"]


def test_clients_framed_runs_commands(serve, fake_runner) -> None:
    client = FramedClient(serve(FramedExec(fake_runner)))
    assert client.run("ls") == ExecReply(0, b"a.txt\nb.txt\n", b"")
    assert client.run("warn") == ExecReply(0, b"out\n", b"err\n")
    assert client.run("big").stdout == b"x" * 100_000
    assert client.run("nope") == ExecReply(127, b"", b"sh: 1: not found\n")
