"""Echo and exec sessions, without I/O: bytes in, bytes out, over a fake command runner."""

from __future__ import annotations

from dataclasses import replace

import pytest

from socklab.protocol import exec_framed
from socklab.protocol.auth import FRAMINGS, AuthDenied, compute_proof
from socklab.protocol.exec_framed import ExecReply
from socklab.protocol.framing import HEADER, MAX_REPLY_FRAME, FrameDecoder
from socklab.registry import HELLO, NAIVE_BANNER
from socklab.runner import CommandResult, Slot
from socklab.sessions import FLUSH
from socklab.sessions.echo import Echo, UpperEcho
from socklab.sessions.exec import (
    FAILED_PROOF_DELAY,
    REPLY_SLICE,
    Authenticated,
    FramedExec,
    HandshakeExec,
    NaiveExec,
)


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
    assert list(NaiveExec(fake_runner).feed(command)) == [reply]
    assert fake_runner.commands == [command]


# --- handshake exec (the handshake port) ----------------------------------------------


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


@pytest.mark.parametrize("payload", [
    b"not json", b'{"cmd": 1}', b"\xff",
    b"[" * 100_000,  # json.loads: RecursionError
    b'{"cmd": "ls", "n": ' + b"1" * 5000 + b"}",  # json.loads: ValueError (over 4,300 digits)
])
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


# --- flags, busy and command slots ----------------------------------------------------

CUT_SHORT = {
    b"yes": CommandResult(-9, b"y\n" * 10, b"", truncated=True),
    b"sleep": CommandResult(-9, b"", b"", timed_out=True),
    b"busy": CommandResult(126, b"", b"server busy: try again later\n", busy=True),
}


@pytest.mark.parametrize(("command", "header", "output"), [
    (b"yes", b"Ready|20|-9|truncated", b"y\n" * 10),
    (b"sleep", b"Ready|0|-9|timed-out", b""),
    (b"busy", b"Ready|29|126|busy", b"server busy: try again later\n"),
])
def test_handshake_exec_reports_flags(fake_runner, command, header, output) -> None:
    fake_runner.results.update(CUT_SHORT)
    session = HandshakeExec(fake_runner)
    assert list(session.feed(command)) == [header]
    assert b"".join(session.feed(b"start")) == output


def test_naive_exec_busy_sends_the_message(fake_runner) -> None:
    fake_runner.results.update(CUT_SHORT)
    assert list(NaiveExec(fake_runner).feed(b"busy")) == [b"server busy: try again later\n"]


def test_framed_exec_busy_is_an_error_reply(fake_runner) -> None:
    fake_runner.results.update(CUT_SHORT)
    (reply,) = replies(FramedExec(fake_runner).feed(exec_framed.encode_request("busy")))
    assert reply == ExecReply(None, b"", b"", error="server busy: try again later", busy=True)


class SlotRunner:
    """Wraps the fake runner: its results hold a slot that says when it is released."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.cwd = runner.cwd
        self.released: list[bytes] = []

    def run(self, command: bytes) -> CommandResult:
        result = self.runner.run(command)
        return replace(result, slot=Slot(lambda: self.released.append(command)))


@pytest.fixture
def slot_runner(fake_runner) -> SlotRunner:
    return SlotRunner(fake_runner)


def test_exec_sessions_slice_big_outputs(fake_runner) -> None:
    chunks = list(NaiveExec(fake_runner).feed(b"big"))
    assert b"".join(chunks) == b"x" * 100_000
    assert max(map(len, chunks)) == REPLY_SLICE and len(chunks) == 2
    framed = list(FramedExec(fake_runner).feed(exec_framed.encode_request("big")))
    assert max(map(len, framed)) <= REPLY_SLICE and FLUSH not in framed
    assert replies(framed)[0].stdout == b"x" * 100_000


def test_naive_exec_holds_slot_until_reply_taken(slot_runner) -> None:
    reply = NaiveExec(slot_runner).feed(b"big")
    next(reply)
    assert slot_runner.released == []  # half of the output is still to be sent
    assert len(b"".join(reply)) == 100_000 - REPLY_SLICE
    assert slot_runner.released == [b"big"]


def test_framed_exec_releases_slot_when_connection_drops(slot_runner) -> None:
    reply = FramedExec(slot_runner).feed(exec_framed.encode_request("big"))
    next(reply)
    assert slot_runner.released == []
    reply.close()  # what the loop does when sending fails
    assert slot_runner.released == [b"big"]


def test_framed_exec_releases_each_slot_in_turn(slot_runner) -> None:
    session = FramedExec(slot_runner)
    data = exec_framed.encode_request("ls") + exec_framed.encode_request("fail")
    seen = []
    for _ in session.feed(data):
        seen.append(list(slot_runner.released))
    assert seen[0] == [] and slot_runner.released == [b"ls", b"fail"]


def test_handshake_exec_holds_slot_until_start(slot_runner) -> None:
    session = HandshakeExec(slot_runner)
    list(session.feed(b"ls"))
    assert slot_runner.released == []  # the output waits for "start"
    list(session.feed(b"start"))
    assert slot_runner.released == [b"ls"]


def test_handshake_exec_releases_dropped_output(slot_runner) -> None:
    session = HandshakeExec(slot_runner)
    list(session.feed(b"ls"))
    list(session.feed(b"fail"))  # not "start": the output of ls is dropped
    assert slot_runner.released == [b"ls"]
    session.close()  # the client leaves without "start"
    assert slot_runner.released == [b"ls", b"fail"]


# --- token ----------------------------------------------------------------------------

TOKEN = b"lab-token-0123456789"


def proof_for(session: Authenticated, token: bytes = TOKEN) -> bytes:
    framing = session.auth.framing
    return framing.proof(compute_proof(token, framing.context, session.auth.nonce_hex))


def authenticated(inner, framing: str, sleeps: list[float]) -> Authenticated:
    return Authenticated(inner, TOKEN, FRAMINGS[framing], sleep=sleeps.append)


def test_authenticated_handshake_right_proof_then_commands(fake_runner) -> None:
    sleeps: list[float] = []
    session = authenticated(HandshakeExec(fake_runner), "handshake", sleeps)
    assert session.greeting() == f"Challenge|{session.auth.nonce_hex}\n".encode()
    assert list(session.feed(proof_for(session))) == [b"Auth|ok\n", FLUSH]
    assert list(session.feed(b"ls")) == [b"Ready|12|0"]
    assert b"".join(session.feed(b"start")) == b"a.txt\nb.txt\n"
    assert fake_runner.commands == [b"ls"] and sleeps == [] and not session.finished


def test_authenticated_framed_proof_with_pipelined_request(fake_runner) -> None:
    session = authenticated(FramedExec(fake_runner), "framed", [])
    chunks = list(session.feed(proof_for(session) + exec_framed.encode_request("ls")))
    assert chunks[:2] == [FRAMINGS["framed"].accepted(), FLUSH]
    assert replies(chunks[2:]) == [ExecReply(0, b"a.txt\nb.txt\n", b"")]


def test_authenticated_proof_byte_by_byte(fake_runner) -> None:
    session = authenticated(HandshakeExec(fake_runner), "handshake", [])
    proof = proof_for(session)
    early = [chunk for byte in proof[:-1] for chunk in session.feed(bytes([byte]))]
    assert early == []
    assert list(session.feed(proof[-1:])) == [b"Auth|ok\n", FLUSH]


@pytest.mark.parametrize("framing", ["handshake", "framed"])
@pytest.mark.parametrize("attempt", ["wrong-token", "command-instead", "other-port-proof"])
def test_authenticated_refusal_runs_nothing_and_closes(fake_runner, framing: str,
                                                       attempt: str) -> None:
    sleeps: list[float] = []
    inner = HandshakeExec(fake_runner) if framing == "handshake" else FramedExec(fake_runner)
    session = authenticated(inner, framing, sleeps)
    command = b"ls" if framing == "handshake" else exec_framed.encode_request("ls")
    if attempt == "wrong-token":
        data = proof_for(session, b"not-the-token-0123456789") + command
    elif attempt == "command-instead":
        data = command + b"\n" if framing == "handshake" else command
    else:
        other = FRAMINGS["framed" if framing == "handshake" else "handshake"]
        proof = compute_proof(TOKEN, other.context, session.auth.nonce_hex)
        data = FRAMINGS[framing].proof(proof) + command
    (answer,) = list(session.feed(data))
    with pytest.raises(AuthDenied):
        FRAMINGS[framing].parse_verdict(_one_message(framing, answer))
    assert session.finished and fake_runner.commands == []
    assert sleeps == [FAILED_PROOF_DELAY]


def _one_message(framing: str, data: bytes) -> bytes:
    reader = FRAMINGS[framing].reader()
    reader.feed(data)
    message = reader.next_message()
    assert message is not None and reader.rest() == b""
    return message


def test_authenticated_close_releases_inner(slot_runner) -> None:
    session = authenticated(HandshakeExec(slot_runner), "handshake", [])
    list(session.feed(proof_for(session) + b"ls"))
    assert slot_runner.released == []
    session.close()
    assert slot_runner.released == [b"ls"]


def test_authenticated_inner_finished_passes_through(fake_runner) -> None:
    session = authenticated(FramedExec(fake_runner, max_frame=100), "framed", [])
    list(session.feed(proof_for(session)))
    assert not session.finished
    list(session.feed(HEADER.pack(101)))
    assert session.finished
