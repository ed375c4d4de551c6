"""One blocking connection: serve_connection over a socketpair, and accept_one's errors.

The idle timeout and the farewell are tested over every loop in test_servers_common.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import socket

import pytest

from socklab.protocol.ftp import AnswerReader
from socklab.registry import FTP_BANNER, HELLO
from socklab.servers import base, blocking
from socklab.servers.base import serve_connection
from socklab.sessions import FileSpan
from socklab.sessions.echo import UpperEcho
from socklab.sessions.ftp import FtpSession
from socklab.storage import UploadDir


class RecordingEcho(UpperEcho):
    """The upper-case echo, remembering whether it was closed; finishes on ``bye``."""

    def __init__(self) -> None:
        super().__init__(HELLO)
        self.closed = 0

    def feed(self, data: bytes) -> list[bytes]:
        if data == b"bye":
            self.finished = True
        return super().feed(data)

    def close(self) -> None:
        self.closed += 1


class FailingSession(RecordingEcho):
    def feed(self, data: bytes) -> list[bytes]:
        raise OSError(errno.EACCES, "our own bug")


@pytest.fixture
def session() -> RecordingEcho:
    return RecordingEcho()


def test_blocking_greeting_echo_then_eof_closes(socket_pair, session, background, log) -> None:
    server, client = socket_pair
    thread = background.start(serve_connection, server, session, log)
    assert client.recv(5) == HELLO
    client.sendall(b"abc")
    assert client.recv(10) == b"ABC"
    client.shutdown(socket.SHUT_WR)
    assert client.recv(10) == b""  # the server closed its end after our EOF
    thread.join(5)
    assert session.closed == 1 and server.fileno() == -1


def test_blocking_finished_session_closes_without_eof(socket_pair, session, log) -> None:
    server, client = socket_pair
    client.sendall(b"bye")  # already queued: serve_connection needs no second thread
    serve_connection(server, session, log)
    assert client.recv(10) == HELLO + b"BYE"
    assert client.recv(10) == b""
    assert session.closed == 1


def test_blocking_peer_reset_ends_quietly(socket_pair, session, background, log, caplog) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    server, client = socket_pair
    thread = background.start(serve_connection, server, session, log)
    assert client.recv(5, socket.MSG_PEEK) == HELLO
    client.close()  # unread bytes in its buffer: the server's recv gets ECONNRESET
    thread.join(5)
    assert session.closed == 1 and server.fileno() == -1
    assert "reason=ECONNRESET" in caplog.text


def test_blocking_other_errors_propagate_after_cleanup(socket_pair, log) -> None:
    server, client = socket_pair
    session = FailingSession()
    client.sendall(b"x")
    with pytest.raises(OSError) as caught:
        serve_connection(server, session, log)
    assert caught.value.errno == errno.EACCES
    assert session.closed == 1 and server.fileno() == -1


class FakeListener:
    def __init__(self, error: OSError) -> None:
        self.error = error

    def accept(self) -> tuple[socket.socket, object]:
        raise self.error


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ECONNABORTED])
def test_blocking_accept_one_survives_capacity_errors(code: int, log, monkeypatch) -> None:
    monkeypatch.setattr(base, "ACCEPT_RETRY_DELAY", 0)
    assert blocking.accept_one(FakeListener(OSError(code, "load")), log) is None


def test_blocking_accept_one_raises_other_errors(log) -> None:
    with pytest.raises(OSError):
        blocking.accept_one(FakeListener(OSError(errno.EBADF, "bug")), log)


def test_blocking_accept_one_returns_connection(log) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=5) as client:
        conn = blocking.accept_one(listener, log)
        assert conn is not None
        with conn:
            assert conn.getpeername() == client.getsockname()


def test_serve_connection_survives_a_connection_reset_in_the_queue(log) -> None:
    # accept() hands out a connection reset while queued; its getpeername()
    # fails with ENOTCONN, like this never-connected socket's.
    session = UpperEcho()
    serve_connection(socket.socket(), session, log)


class RecordingSocket:
    """Records each send call (all of it taken at once): what the kernel would get per write;
    a sendfile call is recorded as ``("sendfile", offset, count)``."""

    def __init__(self) -> None:
        self.writes: list[object] = []
        self.flags: list[int] = []

    def send(self, data: bytes, flags: int = 0) -> int:
        self.writes.append(bytes(data))
        self.flags.append(flags)
        return len(data)

    def sendfile(self, file, offset: int, count: int) -> int:
        self.writes.append(("sendfile", offset, count))
        return count


def test_send_all_gathers_small_chunks_into_one_write() -> None:
    from socklab.servers.base import send_all

    sock = RecordingSocket()
    assert send_all(sock, [b"header", b"stdout", b"stderr"]) == 18  # type: ignore[arg-type]
    assert sock.writes == [b"headerstdoutstderr"]


def test_send_all_flushes_at_an_empty_chunk() -> None:
    from socklab.servers.base import send_all
    from socklab.sessions import FLUSH

    sock = RecordingSocket()
    send_all(sock, [b"200", FLUSH, b"201"])  # type: ignore[arg-type]
    assert sock.writes == [b"200", b"201"]


def test_send_all_sends_a_small_file_with_its_answer_in_one_write(tmp_path) -> None:
    """Sent apart, the file's few bytes would wait (Nagle) for the ACK of the answer,
    which the client delays up to 40 ms."""
    (tmp_path / "f").write_bytes(b"12345")
    sock = RecordingSocket()
    with (tmp_path / "f").open("rb") as file:
        base.send_all(sock, [b"200\n", FileSpan(file, 5), b"next"])  # type: ignore[arg-type]
    assert sock.writes == [b"200\n12345next"]


def test_send_all_sends_a_large_file_with_sendfile_right_behind_its_answer(tmp_path) -> None:
    size = base.COALESCE_LIMIT + 1
    (tmp_path / "f").write_bytes(bytes(size))
    sock = RecordingSocket()
    with (tmp_path / "f").open("rb") as file:
        base.send_all(sock, [b"200\n", FileSpan(file, size), b"next"])  # type: ignore[arg-type]
    assert sock.writes == [b"200\n", ("sendfile", 0, size), b"next"]
    assert sock.flags == [base.MSG_MORE, 0] and base.MSG_MORE  # the answer waits for the file


@pytest.mark.parametrize("size", [base.DROP_BEHIND_SIZE - 1, base.DROP_BEHIND_SIZE + 5],
                         ids=["kept-cached", "dropped-behind"])
def test_send_file_goes_in_slices_dropping_a_large_file_behind(tmp_path, monkeypatch,
                                                                 size: int) -> None:
    """Slices from the file's position to the span's end; a file of DROP_BEHIND_SIZE or
    more is dropped from the page cache slice by slice, a smaller one is left cached."""
    path = tmp_path / "f"
    with path.open("wb") as file:
        file.truncate(size + 100)  # sparse; longer than the span, which stops at its count
    advice: list[tuple[int, int, int]] = []
    monkeypatch.setattr(os, "posix_fadvise",
                        lambda fd, offset, length, how: advice.append((offset, length, how)))
    sock = RecordingSocket()
    with path.open("rb") as file:
        file.seek(100)
        assert base.send_file(sock, FileSpan(file, size)) == size  # type: ignore[arg-type]
    slices = [(100 + start, min(base.SENDFILE_SLICE, size - start))
              for start in range(0, size, base.SENDFILE_SLICE)]
    assert sock.writes == [("sendfile", offset, count) for offset, count in slices]
    dropped = [(offset, count, os.POSIX_FADV_DONTNEED) for offset, count in slices]
    assert advice == (dropped if size >= base.DROP_BEHIND_SIZE else [])


def test_send_file_of_a_file_cut_short_raises_after_what_was_sent(tmp_path) -> None:
    class Short(RecordingSocket):
        def sendfile(self, file, offset: int, count: int) -> int:
            super().sendfile(file, offset, count)
            return count if offset == 0 else 7

    (tmp_path / "f").write_bytes(b"")
    with (tmp_path / "f").open("rb") as file, pytest.raises(EOFError, match="short"):
        base.send_file(Short(), FileSpan(file, base.SENDFILE_SLICE + 100))  # type: ignore[arg-type]


def test_buffer_pool_lends_at_most_count_and_survives_a_failed_allocation() -> None:
    pool = base.BufferPool(2, 16)
    first, second = pool.take(), pool.take()
    assert first is not None and second is not None and pool.take() is None
    pool.give(first)
    assert pool.take() is first
    huge = base.BufferPool(1, 1 << 62)
    with pytest.raises(MemoryError):
        huge.take()
    assert huge.made == 0  # the failed allocation did not use up the pool


def test_buffer_pool_take_many_lends_all_or_none() -> None:
    pool = base.BufferPool(3, 4096)
    first = pool.take_many(2)
    assert len(first) == 2 and all(len(b) == 4096 for b in first)
    assert pool.take_many(2) == []  # one is free, two were asked: none lent
    assert len(pool.take_many(1)) == 1
    for buffer in first:
        pool.give(buffer)
    assert len(pool.take_many(2)) == 2


def test_send_fully_times_out_only_without_progress(socket_pair) -> None:
    """A reader slower than the whole reply per timeout, but steady, is not dropped."""
    import threading
    import time

    from socklab.servers.base import send_fully

    server, client = socket_pair
    server.settimeout(0.5)
    reply = b"r" * (8 << 20)
    received = bytearray()

    def slow_reader() -> None:  # ~8 MiB in ~1.6 s: longer than the timeout in all
        while len(received) < len(reply):
            received.extend(client.recv(256 << 10))
            time.sleep(0.05)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    send_fully(server, reply)
    reader.join()
    assert bytes(received) == reply


def test_accept_failures_log_one_line_per_episode(log, caplog, monkeypatch) -> None:
    from socklab.servers.base import AcceptFailures

    clock = [100.0]
    monkeypatch.setattr(base.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger=log.name)
    failures = AcceptFailures(log)
    emfile = OSError(errno.EMFILE, "Too many open files")
    for _ in range(5):  # at the limit: fail, accept a freed slot, fail again...
        failures.failed(emfile)
        clock[0] += 0.1
        failures.accepted()
    clock[0] += base.ACCEPT_RECOVERED_AFTER
    failures.accepted()  # a second without failures: the episode is over
    assert [r.getMessage() for r in caplog.records] == [
        "accept failed: Too many open files; pausing accept, retrying every 0.1s",
        "accept resumed after 0.4s and 5 failed attempts",
    ]


# --- bulk data: an upload's body into a pooled buffer, a download with sendfile -------------


def _ftp_put(name: str, body: bytes) -> bytes:
    return json.dumps({"action": "put", "filename": name, "filesize": len(body)}).encode() + body


def _answers(client: socket.socket, count: int) -> list[dict]:
    reader, answers = AnswerReader(), []
    while len(answers) < count:
        answer = reader.next_answer()
        if answer is None:
            reader.feed(client.recv(1 << 16))
        else:
            answers.append(answer)
    return answers


@pytest.mark.parametrize("buffers", [1, 0], ids=["pooled", "pool-empty"])
def test_blocking_upload_body_read_into_pooled_buffer(tmp_path, socket_pair, background, log,
                                                      monkeypatch, buffers: int) -> None:
    """A 3 MiB body with the next request glued to its end: stored whole, the request
    answered, the pooled buffer given back; with no buffer free, the same at RECV_SIZE."""
    pool = base.BufferPool(buffers, base.BODY_RECV)
    monkeypatch.setattr(base, "BODY_POOL", pool)
    recv_into_sizes: list[int] = []
    server, client = socket_pair
    original = server.recv_into

    class Recording(socket.socket):
        __slots__ = ()

        def recv_into(self, buffer, nbytes=0, flags=0):  # type: ignore[override]
            received = original(buffer, nbytes, flags)
            recv_into_sizes.append(received)
            return received

    server.__class__ = Recording
    (tmp_path / "up").mkdir()
    thread = background.start(serve_connection, server, FtpSession(UploadDir(tmp_path / "up")),
                              log)
    client.recv(len(FTP_BANNER))
    body = os.urandom(3 << 20)
    client.sendall(_ftp_put("big.bin", body) + b'{"action": "list"}')
    ok, created, listed = _answers(client, 3)
    assert (ok["status"], created["status"]) == (200, 201)
    assert created["sha256"] == hashlib.sha256(body).hexdigest()
    assert listed["files"] == [{"name": "big.bin", "size": len(body)}]
    assert (tmp_path / "up" / "big.bin").read_bytes() == body
    client.close()
    thread.join(5)
    assert pool.made == buffers and len(pool._free) == buffers  # given back at the end
    if buffers:
        assert sum(recv_into_sizes) <= len(body) and max(recv_into_sizes) > base.RECV_SIZE
    else:
        assert recv_into_sizes == []


def test_blocking_download_sent_with_sendfile(tmp_path, socket_pair, background, log,
                                              monkeypatch) -> None:
    body = os.urandom((2 << 20) + 3)
    (tmp_path / "d.bin").write_bytes(body)
    sendfile_calls: list[int] = []
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: sendfile_calls.append(a[3]) or real(*a))
    server, client = socket_pair
    thread = background.start(serve_connection, server, FtpSession(UploadDir(tmp_path)), log)
    client.recv(len(FTP_BANNER))
    client.sendall(b'{"action": "get", "filename": "d.bin"}{"action": "list"}')
    reader = AnswerReader()
    while (answer := reader.next_answer()) is None:
        reader.feed(client.recv(1 << 16))
    assert answer["filesize"] == len(body)
    received = bytearray(reader.buffer)
    while len(received) < len(body) + 1:
        received += client.recv(1 << 20)
    assert bytes(received[:len(body)]) == body and received[len(body):].startswith(b'{"status"')
    assert sendfile_calls  # the kernel moved the file, not Python
    client.close()
    thread.join(5)


@pytest.mark.parametrize("size", [5, base.COALESCE_LIMIT + 1], ids=["small", "sendfile"])
def test_blocking_download_of_a_file_cut_short_closes(tmp_path, socket_pair, log, caplog,
                                                      size: int) -> None:
    """A file shorter than announced: at most what there is, then the close, never a
    client's wait for bytes that will not come."""
    body = os.urandom(size)
    (tmp_path / "f").write_bytes(body)

    class Short(RecordingEcho):
        def feed(self, data: bytes):
            with (tmp_path / "f").open("rb") as file:
                yield b"header\n"
                yield FileSpan(file, size + 3)

    server, client = socket_pair
    client.sendall(b"go")
    client.settimeout(5)
    with caplog.at_level(logging.INFO, logger=log.name):
        serve_connection(server, Short(), log)
    received = b""
    while chunk := client.recv(1 << 20):
        received += chunk
    # sendfile sends what there is; a small file is read first, and found short before
    # anything of the reply went out
    sent = b"header\n" + body if size > base.COALESCE_LIMIT else b""
    assert received == HELLO + sent
    assert "3 bytes short of the" in caplog.text and "reason=short-file" in caplog.text
