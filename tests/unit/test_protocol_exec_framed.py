"""The framed port's JSON messages: one request frame, three reply frames."""

from __future__ import annotations

import json

import pytest

from socklab.protocol import exec_framed
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.exec_framed import ExecReply
from socklab.protocol.framing import MAX_REPLY_FRAME, FrameDecoder, encode_frame

REPLIES = [
    pytest.param(ExecReply(0, b"a.txt\n", b""), {
        "exit_status": 0, "stdout_bytes": 6, "stderr_bytes": 0,
        "truncated": False, "timed_out": False}, id="ok"),
    pytest.param(ExecReply(2, b"", b"boom\n", truncated=True), {
        "exit_status": 2, "stdout_bytes": 0, "stderr_bytes": 5,
        "truncated": True, "timed_out": False}, id="failed-truncated"),
    pytest.param(ExecReply(-9, b"x" * 70_000, b"e", timed_out=True), {
        "exit_status": -9, "stdout_bytes": 70_000, "stderr_bytes": 1,
        "truncated": False, "timed_out": True}, id="killed-large"),
    pytest.param(ExecReply(None, b"", b"", error="bad request"), {
        "exit_status": None, "stdout_bytes": 0, "stderr_bytes": 0,
        "truncated": False, "timed_out": False, "error": "bad request"}, id="error"),
]


def reply_stream(reply: ExecReply) -> bytes:
    return b"".join(reply.encode())


@pytest.mark.parametrize(("reply", "header"), REPLIES)
def test_exec_framed_reply_encodes_three_frames(reply: ExecReply, header: dict) -> None:
    frames = reply.encode()
    assert len(frames) == exec_framed.REPLY_FRAMES
    assert frames[0] == encode_frame(json.dumps(header).encode())
    assert frames[1:] == [encode_frame(reply.stdout), encode_frame(reply.stderr)]


@pytest.mark.parametrize(("reply", "header"), REPLIES)
def test_exec_framed_reply_decodes_three_ways(reply: ExecReply, header: dict, way) -> None:
    trailer = reply_stream(ExecReply(0, b"next", b""))[:6]
    decoder, frames = FrameDecoder(MAX_REPLY_FRAME), []
    for chunk in way.chunks(reply_stream(reply), trailer):
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    assert json.loads(frames[0]) == header
    assert exec_framed.decode_reply(frames) == reply
    assert decoder.buffered == len(way.leftover(trailer))


@pytest.mark.parametrize("command", ["ls -l", "", "echo 'é' \"q\" \\ done", "printf '\\0'"])
def test_exec_framed_request_round_trip(command: str) -> None:
    frame = exec_framed.encode_request(command)
    decoder = FrameDecoder()
    decoder.feed(frame)
    assert exec_framed.decode_request(decoder.next_frame()) == command.encode()


@pytest.mark.parametrize("payload", [
    b"ls", b"\xff\xfe", b"[]", b'"ls"', b"{}", b'{"cmd": 5}', b'{"cmd": ["ls"]}',
    b'{"command": "ls"}',
])
def test_exec_framed_decode_request_refuses(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        exec_framed.decode_request(payload)


def test_exec_framed_decode_request_lone_surrogate_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        exec_framed.decode_request(b'{"cmd": "echo \\udcff"}')


@pytest.mark.parametrize("frames", [
    [b'{"stdout_bytes": 3, "stderr_bytes": 0}', b"ab", b""],
    [b'{"stdout_bytes": 0, "stderr_bytes": 0}', b"", b"late"],
    [b'{"exit_status": 0}', b"x", b""],
])
def test_exec_framed_decode_reply_mismatched_sizes_raise(frames: list[bytes]) -> None:
    with pytest.raises(RemoteProtocolError, match="do not match"):
        exec_framed.decode_reply(frames)


@pytest.mark.parametrize("header", [b"not json", b"\xff"])
def test_exec_framed_decode_reply_bad_header_raises(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        exec_framed.decode_reply([header, b"", b""])


@pytest.mark.parametrize("header", [b"5", b"[]", b"null"])
def test_exec_framed_decode_reply_non_object_header_is_a_protocol_error(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        exec_framed.decode_reply([header, b"", b""])
