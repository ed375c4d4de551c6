"""Echo and exec sessions, without I/O: bytes in, bytes out, over a fake command runner."""

from __future__ import annotations

import pytest

from socklab.protocol import exec_framed
from socklab.protocol.exec_framed import ExecReply
from socklab.protocol.framing import HEADER, MAX_REPLY_FRAME, FrameDecoder
from socklab.runner import CommandResult
from socklab.sessions.echo import HELLO, Echo, UpperEcho
from socklab.sessions.exec import NAIVE_BANNER, FramedExec, HandshakeExec, NaiveExec


def replies(chunks) -> list[ExecReply]:
    """Decode every complete three-frame reply in ``chunks``."""
    decoder, frames = FrameDecoder(MAX_REPLY_FRAME), []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    assert len(frames) % 3 == 0, "a reply is always three frames"
    return [exec_framed.decode_reply(frames[i : i + 3]) for i in range(0, len(frames), 3)]


# --- echo ---------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "upper"), [
    (b"hello", b"HELLO"), (b"MiXeD 123\n", b"MIXED 123\n"), ("é ß".encode(), "é ß".encode()),
    (b"\x00\xff", b"\x00\xff"),
])
def test_upper_echo_uppercases_ascii_only(data: bytes, upper: bytes) -> None:
    assert UpperEcho().feed(data) == [upper]


@pytest.mark.parametrize(("args", "greeting"), [((), b""), ((HELLO,), b"hello")])
def test_upper_echo_greeting(args: tuple[bytes, ...], greeting: bytes) -> None:
    assert UpperEcho(*args).greeting() == greeting


def test_echo_returns_chunk_unchanged() -> None:
    session = Echo()
    assert session.feed(b"Hi\n") == [b"Hi\n"]
    assert session.greeting() == b""
    assert session.finished is False


# --- naive exec (port 9000) -----------------------------------------------------------


def test_naive_exec_greets_with_banner(fake_runner) -> None:
    banner = NaiveExec(fake_runner).greeting()
    assert banner == NAIVE_BANNER and banner.endswith(b"\n")


@pytest.mark.parametrize(("command", "reply"), [
    (b"ls", b"a.txt\nb.txt\n"),
    (b"warn", b"out\n"),  # stdout wins when there is any
    (b"fail", b"boom\n"),  # stderr when stdout is empty
    (b"true", b"current directory is /srv/lab\n"),  # never an empty reply
])
def test_naive_exec_reply(fake_runner, command: bytes, reply: bytes) -> None:
    assert NaiveExec(fake_runner).feed(command) == [reply]
    assert fake_runner.commands == [command]


# --- handshake exec (port 9001) -------------------------------------------------------


@pytest.mark.parametrize(("command", "header", "output"), [
    (b"ls", b"Ready|12|0", b"a.txt\nb.txt\n"),
    (b"fail", b"Ready|5|2", b"boom\n"),
    (b"true", b"Ready|0|0", b""),
    (b"big", b"Ready|100000|0", b"x" * 100_000),
])
def test_handshake_exec_full_exchange(fake_runner, command, header, output) -> None:
    session = HandshakeExec(fake_runner)
    assert session.greeting() == b""
    assert list(session.feed(command)) == [header]
    assert b"".join(session.feed(b"start")) == output
    assert fake_runner.commands == [command]


def test_handshake_exec_other_command_instead_of_start(fake_runner) -> None:
    session = HandshakeExec(fake_runner)
    list(session.feed(b"ls"))
    assert list(session.feed(b"fail")) == [b"Ready|5|2"]
    assert list(session.feed(b"start")) == [b"boom\n"]


def test_handshake_exec_start_glued_to_next_command(fake_runner) -> None:
    session = HandshakeExec(fake_runner)
    list(session.feed(b"ls"))
    assert list(session.feed(b"startfail")) == [b"a.txt\nb.txt\n", b"Ready|5|2"]
    assert fake_runner.commands == [b"ls", b"fail"]


# --- framed exec (port 9002) ----------------------------------------------------------


def test_framed_exec_two_requests_in_one_feed(fake_runner) -> None:
    session = FramedExec(fake_runner)
    data = exec_framed.encode_request("ls") + exec_framed.encode_request("warn")
    assert replies(session.feed(data)) == [ExecReply(0, b"a.txt\nb.txt\n", b""),
                                           ExecReply(0, b"out\n", b"err\n")]


def test_framed_exec_request_split_byte_by_byte(fake_runner) -> None:
    session = FramedExec(fake_runner)
    request = exec_framed.encode_request("fail")
    early = [chunk for byte in request[:-1] for chunk in session.feed(bytes([byte]))]
    assert early == [] and fake_runner.commands == []
    assert replies(session.feed(request[-1:])) == [ExecReply(2, b"", b"boom\n")]


def test_framed_exec_reports_truncation_and_timeout(fake_runner) -> None:
    fake_runner.results[b"slow"] = CommandResult(-9, b"part", b"", truncated=True, timed_out=True)
    (reply,) = replies(FramedExec(fake_runner).feed(exec_framed.encode_request("slow")))
    assert (reply.exit_status, reply.truncated, reply.timed_out) == (-9, True, True)


@pytest.mark.parametrize("payload", [b"not json", b'{"cmd": 1}', b"\xff"])
def test_framed_exec_bad_request_gets_error_reply(fake_runner, payload) -> None:
    session = FramedExec(fake_runner)
    chunks = list(session.feed(HEADER.pack(len(payload)) + payload))
    assert len(chunks) == 3
    (reply,) = replies(chunks)
    assert reply.exit_status is None and reply.error and (reply.stdout, reply.stderr) == (b"", b"")
    assert not session.finished and fake_runner.commands == []
    assert replies(session.feed(exec_framed.encode_request("ls")))[0].exit_status == 0


def test_framed_exec_lone_surrogate_gets_error_reply(fake_runner) -> None:
    payload = b'{"cmd": "echo \\udcff"}'
    (reply,) = replies(FramedExec(fake_runner).feed(HEADER.pack(len(payload)) + payload))
    assert reply.error and reply.exit_status is None


def test_framed_exec_oversized_frame_finishes_session(fake_runner) -> None:
    session = FramedExec(fake_runner, max_frame=100)
    chunks = list(session.feed(HEADER.pack(101)))
    assert len(chunks) == 3
    (reply,) = replies(chunks)
    assert reply.error and "101" in reply.error
    assert session.finished
    assert list(session.feed(exec_framed.encode_request("ls"))) == []
    assert fake_runner.commands == []
