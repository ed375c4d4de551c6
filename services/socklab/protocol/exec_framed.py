"""The JSON messages of exec's framed port, carried in length-prefixed frames.

Request: one frame holding ``{"cmd": "<shell command>"}``.
Reply: three frames: a JSON header, then stdout, then stderr::

    {"exit_status": 0, "stdout_bytes": 12, "stderr_bytes": 0,
     "truncated": false, "timed_out": false}

A request the server cannot use gets the same three frames, with
``"error": "<why>"`` and ``"exit_status": null`` in the header and both data
frames empty, so a client always reads exactly three frames per request. A
request refused because the server had no free command slot also carries
``"busy": true``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import HEADER, encode_frame
from socklab.protocol.jsonobj import parse_object

REPLY_FRAMES = 3


@dataclass(frozen=True)
class ExecReply:
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    timed_out: bool = False
    error: str | None = None
    busy: bool = False

    def header(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "exit_status": self.exit_status,
            "stdout_bytes": len(self.stdout),
            "stderr_bytes": len(self.stderr),
            "truncated": self.truncated,
            "timed_out": self.timed_out,
        }
        if self.error is not None:
            fields["error"] = self.error
        if self.busy:
            fields["busy"] = True
        return fields

    def encode(self) -> list[bytes]:
        header = json.dumps(self.header()).encode()
        return [encode_frame(header), encode_frame(self.stdout), encode_frame(self.stderr)]

    def chunks(self) -> Iterator[bytes]:
        """The same three frames, the outputs after their length and never copied.

        ``encode()`` copies each output to put its length in front; a server
        sending a 32 MiB output needs the bytes once, not twice. No chunk is
        empty (a session's empty chunk means "flush").
        """
        yield encode_frame(json.dumps(self.header()).encode())
        for data in (self.stdout, self.stderr):
            yield HEADER.pack(len(data))
            if data:
                yield data


def encode_request(command: str) -> bytes:
    return encode_frame(json.dumps({"cmd": command}).encode())


def decode_request(payload: bytes) -> bytes:
    """The command a request frame names, as bytes for the shell."""
    fields = parse_object(payload, "request")
    if not isinstance(fields.get("cmd"), str):
        raise RemoteProtocolError('request must be a JSON object with a string "cmd"')
    try:
        return fields["cmd"].encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
        raise RemoteProtocolError("cmd is not valid Unicode") from None


def decode_reply(frames: list[bytes]) -> ExecReply:
    """Rebuild a reply from its three frames, checking the header against them."""
    header_frame, stdout, stderr = frames
    header = parse_object(header_frame, "reply header")
    if header.get("stdout_bytes") != len(stdout) or header.get("stderr_bytes") != len(stderr):
        raise RemoteProtocolError("reply header sizes do not match its frames")
    return ExecReply(header.get("exit_status"), stdout, stderr, bool(header.get("truncated")),
                     bool(header.get("timed_out")), header.get("error"), bool(header.get("busy")))
