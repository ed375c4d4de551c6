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
    authenticate,
    file_chunks,
    read_token,
    recv_exact,
    sha256_of,
)
from socklab.clients.interactive import exec_repl, run_safely
from socklab.protocol import auth
from socklab.protocol.auth import FRAMINGS, AuthDenied, TokenError
from socklab.protocol.exec_framed import ExecReply
from socklab.protocol.handshake import ReadyHeader
from socklab.registry import FTP_BANNER
from socklab.runner import CommandResult
from socklab.servers.base import serve_connection
from socklab.sessions import Session
from socklab.sessions.exec import Authenticated, FramedExec, HandshakeExec
from socklab.sessions.ftp import FtpSession
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


def test_clients_handshake_reports_flags(serve, fake_runner) -> None:
    fake_runner.results[b"yes"] = CommandResult(-9, b"y\n" * 4, b"", truncated=True)
    fake_runner.results[b"slow"] = CommandResult(-9, b"", b"", timed_out=True)
    client = HandshakeClient(serve(HandshakeExec(fake_runner)))
    assert client.run("yes") == (ReadyHeader(8, -9, frozenset({"truncated"})), b"y\n" * 4)
    assert client.run("slow")[0].flags == {"timed-out"}


# --- exec with a token ----------------------------------------------------------------

TOKEN = b"lab-token-0123456789"


class Recording(Session):
    """Passes everything to ``inner`` and keeps every byte the client sent."""

    def __init__(self, inner: Session) -> None:
        self.inner = inner
        self.received = bytearray()

    def greeting(self) -> bytes:
        return self.inner.greeting()

    def feed(self, data: bytes):
        self.received += data
        yield from self.inner.feed(data)
        self.finished = self.inner.finished

    def close(self) -> None:
        self.inner.close()


def guarded(session: Session, framing: str, token: bytes = TOKEN) -> Recording:
    return Recording(Authenticated(session, token, FRAMINGS[framing], sleep=lambda _: None))


def test_clients_handshake_with_token(serve, fake_runner) -> None:
    session = guarded(HandshakeExec(fake_runner), "handshake")
    client = HandshakeClient(serve(session), token=TOKEN)
    assert client.run("ls") == (ReadyHeader(12, 0), b"a.txt\nb.txt\n")
    assert client.run("big")[1] == b"x" * 100_000
    assert fake_runner.commands == [b"ls", b"big"]
    assert session.received.startswith(b"Proof|")
    assert TOKEN not in session.received and TOKEN.hex().encode() not in session.received


def test_clients_framed_with_token(serve, fake_runner) -> None:
    session = guarded(FramedExec(fake_runner), "framed")
    client = FramedClient(serve(session), token=TOKEN)
    assert client.run("warn") == ExecReply(0, b"out\n", b"err\n")
    assert TOKEN not in session.received


@pytest.mark.parametrize("framing", ["handshake", "framed"])
def test_clients_wrong_token_is_refused_with_reason(serve, fake_runner, framing) -> None:
    session = guarded(HandshakeExec(fake_runner) if framing == "handshake"
                      else FramedExec(fake_runner), framing)
    client_class = HandshakeClient if framing == "handshake" else FramedClient
    with pytest.raises(AuthDenied, match="refused the token: the proof does not match"):
        client_class(serve(session), token=b"not-the-token-0123456789")
    assert fake_runner.commands == []


def test_clients_without_token_are_told_one_is_needed(serve, fake_runner) -> None:
    handshake_client = HandshakeClient(serve(guarded(HandshakeExec(fake_runner), "handshake")))
    with pytest.raises(AuthDenied, match=f"requires a token: set {auth.TOKEN_VARIABLE}"):
        handshake_client.run("ls")
    framed_client = FramedClient(serve(guarded(FramedExec(fake_runner), "framed")))
    with pytest.raises(AuthDenied, match="requires a token"):
        framed_client.run("ls")
    assert fake_runner.commands == []


def test_clients_token_against_server_without_one(serve, fake_runner) -> None:
    sock = serve(FramedExec(fake_runner))
    with pytest.raises(AuthDenied, match="no challenge from the server"):
        authenticate(sock, TOKEN, FRAMINGS["framed"], wait=0.2)
    assert sock.gettimeout() == IO_TIMEOUT  # the client's own timeout is back


def test_clients_read_token_from_file_or_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(auth.TOKEN_VARIABLE, raising=False)
    assert read_token() is None
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "from-the-environment-1")
    assert read_token() == b"from-the-environment-1"
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-0123456\n")
    assert read_token(str(token_file)) == b"from-the-file-0123456"  # the file wins
    token_file.write_text("short\n")
    with pytest.raises(TokenError, match=str(token_file)):
        read_token(str(token_file))


# --- the learner's exec client ----------------------------------------------------------


@pytest.fixture
def exec_server(background, log, fake_runner):
    """A one-connection exec server with a token on 127.0.0.1; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one(session: Session) -> None:
        conn, _ = listener.accept()
        serve_connection(conn, session, log)

    def start(framing: str) -> int:
        inner = HandshakeExec(fake_runner) if framing == "handshake" else FramedExec(fake_runner)
        background.start(serve_one, guarded(inner, framing))
        return listener.getsockname()[1]

    with listener:
        yield start


@pytest.mark.parametrize(("mode", "expected"), [
    ("handshake", "message size 12 recv size 12\na.txt\nb.txt\n"),
    ("framed", "a.txt\nb.txt\n"),
])
def test_clients_exec_repl_with_token_file(exec_server, tmp_path, capsys, mode, expected) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN.decode() + "\n")
    assert exec_repl("127.0.0.1", exec_server(mode), mode, ["ls"], str(token_file)) == 0
    assert capsys.readouterr().out == expected


def test_clients_exec_repl_wrong_token_exits_non_zero(exec_server, monkeypatch, capsys) -> None:
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "not-the-token-0123456789")
    port = exec_server("framed")
    assert run_safely(lambda: exec_repl("127.0.0.1", port, "framed", ["ls"])) == 1
    assert "refused the token" in capsys.readouterr().err


def test_clients_exec_repl_bad_token_file_exits_2(tmp_path, capsys) -> None:
    assert exec_repl("127.0.0.1", 9, "framed", ["ls"], str(tmp_path / "missing")) == 2
    assert "cannot read the token" in capsys.readouterr().err


def test_clients_ftp_ls_of_an_empty_directory_says_so(ftp_client: FtpClient,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    from socklab.clients import interactive

    assert interactive._ftp_action(ftp_client, "ls", [], None) == 0
    assert "no file on the server yet" in capsys.readouterr().out
