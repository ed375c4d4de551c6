"""SizedBody: the bytes of a body of announced size, and the bytes after it."""

from __future__ import annotations

import pytest

from socklab.protocol.body import SizedBody


@pytest.mark.parametrize(("size", "data", "part", "rest"), [
    (5, b"hello", b"hello", b""),
    (5, b"helloworld", b"hello", b"world"),
    (5, b"hel", b"hel", b""),
    (0, b"next", b"", b"next"),
    (0, b"", b"", b""),
])
def test_body_feed_splits_body_from_following_bytes(size, data, part, rest) -> None:
    body = SizedBody(size)
    assert body.feed(data) == (part, rest)
    assert body.remaining == size - len(part)


def test_body_feed_byte_by_byte_counts_down() -> None:
    body, parts = SizedBody(3), []
    for byte in b"abcd":
        parts.append(body.feed(bytes([byte])))
    assert parts == [(b"a", b""), (b"b", b""), (b"c", b""), (b"", b"d")]
    assert body.done


@pytest.mark.parametrize(("size", "done"), [(0, True), (1, False)])
def test_body_done_before_any_feed(size: int, done: bool) -> None:
    assert SizedBody(size).done is done


@pytest.mark.parametrize("size", [-1, -100])
def test_body_negative_size_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="cannot have"):
        SizedBody(size)
