"""Length-prefixed frames: one table drives encode and decode, fed three ways."""

from __future__ import annotations

import pytest

from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import (
    HEADER,
    MAX_REPLY_FRAME,
    MAX_REQUEST_FRAME,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
)

BIG = (bytes(range(256)) * 274)[:70_000]  # more than 64 KiB, not a multiple of 256

FRAMES = [
    pytest.param(b"", b"\x00\x00\x00\x00", id="empty"),
    pytest.param(b"x", b"\x00\x00\x00\x01x", id="one-byte"),
    pytest.param(BIG, b"\x00\x01\x11\x70" + BIG, id="70000-bytes"),
]

NEXT = encode_frame(b"next")


def frames_of(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    frames = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    return frames


@pytest.mark.parametrize(("payload", "encoded"), FRAMES)
def test_framing_encode_prefixes_big_endian_length(payload: bytes, encoded: bytes) -> None:
    assert encode_frame(payload) == encoded


@pytest.mark.parametrize(("payload", "encoded"), FRAMES)
def test_framing_decode_three_ways(payload: bytes, encoded: bytes, way) -> None:
    trailer = NEXT[:3]
    decoder = FrameDecoder()
    assert frames_of(decoder, way.chunks(encoded, trailer)) == [payload]
    assert decoder.buffered == len(way.leftover(trailer))


def test_framing_decode_trailing_frame_completes_on_later_feed() -> None:
    decoder = FrameDecoder()
    assert frames_of(decoder, [encode_frame(b"first") + NEXT[:5]]) == [b"first"]
    assert frames_of(decoder, [NEXT[5:]]) == [b"next"]
    assert decoder.buffered == 0


def test_framing_decode_two_glued_frames() -> None:
    assert frames_of(FrameDecoder(), [encode_frame(b"a") + encode_frame(b"bc")]) == [b"a", b"bc"]


@pytest.mark.parametrize("partial", [b"", b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x02a"])
def test_framing_decode_incomplete_needs_more(partial: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(partial)
    assert decoder.next_frame() is None
    assert decoder.buffered == len(partial)


@pytest.mark.parametrize("cap", [0, 10, MAX_REQUEST_FRAME])
def test_framing_oversized_header_refused_before_body(cap: int) -> None:
    decoder = FrameDecoder(cap)
    decoder.feed(HEADER.pack(cap + 1))  # only the header: no body byte has arrived
    with pytest.raises(FrameTooLarge) as caught:
        decoder.next_frame()
    assert isinstance(caught.value, RemoteProtocolError)


@pytest.mark.parametrize("cap", [0, 10])
def test_framing_frame_at_cap_is_accepted(cap: int) -> None:
    decoder = FrameDecoder(cap)
    decoder.feed(encode_frame(b"z" * cap))
    assert decoder.next_frame() == b"z" * cap


def test_framing_default_decoder_refuses_past_request_cap() -> None:
    decoder = FrameDecoder()
    decoder.feed(HEADER.pack(MAX_REQUEST_FRAME + 1))
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


def test_framing_reply_decoder_waits_for_body_past_request_cap() -> None:
    decoder = FrameDecoder(MAX_REPLY_FRAME)
    decoder.feed(HEADER.pack(MAX_REQUEST_FRAME + 1))
    assert decoder.next_frame() is None
