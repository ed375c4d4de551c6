"""Hostile JSON is the peer's protocol error, never another exception."""

from __future__ import annotations

import pytest

from socklab.protocol import ftp
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.jsonobj import parse_object

HOSTILE = {
    "deep nesting": b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "4301-digit integer": b'{"x": ' + b"9" * 4301 + b"}",
    "not UTF-8": b'{"x": "\xff\xfe"}',
    "not JSON": b"{nope",
    "an array": b"[1, 2]",
    "empty": b"",
}


@pytest.mark.parametrize("data", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_json_is_a_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="a request"):
        parse_object(data, "a request")


def test_an_object_is_returned() -> None:
    assert parse_object(b'{"action": "list"}', "a request") == {"action": "list"}


@pytest.mark.parametrize("data", list(HOSTILE.values())[:2], ids=list(HOSTILE)[:2])
def test_ftp_answers_400_to_deep_or_huge_json_and_stays_usable(data: bytes) -> None:
    connection = ftp.FtpServerConnection()
    (event,) = connection.receive(data)
    assert isinstance(event, ftp.BadRequest) and event.error.status == ftp.BAD_REQUEST
    (event,) = connection.receive(b'{"action": "list"}')
    assert event == ftp.Request({"action": "list"})
