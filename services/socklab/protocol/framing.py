"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

Used by exec's framed port in both directions. The decoder refuses an oversized
length as soon as the 4-byte header is in, before a single body byte is
buffered, so a hostile length prefix cannot make us allocate memory.
"""

from __future__ import annotations

import struct

from socklab.protocol.errors import LocalProtocolError, RemoteProtocolError

HEADER = struct.Struct("!I")

# A request frame holds one JSON object naming a command: 1 MiB is far beyond
# any command line (ARG_MAX is 2 MiB for the whole argv+env) yet small enough
# that a thousand stalled clients cannot exhaust the server's memory.
MAX_REQUEST_FRAME = 1 << 20

# A reply frame carries a command's whole stdout or stderr; it must hold the
# exec server's output cap (socklab.registry.EXEC_OUTPUT_CAP) with room to spare.
MAX_REPLY_FRAME = 256 << 20

# The length field is 32 bits wide: nothing larger can be framed at all.
MAX_ENCODABLE = (1 << 32) - 1


class FrameTooLarge(RemoteProtocolError):
    """A length prefix announced more bytes than the decoder's cap allows."""


def encode_frame(payload: bytes) -> bytes:
    """Return ``payload`` with its 4-byte big-endian length in front."""
    if len(payload) > MAX_ENCODABLE:
        raise LocalProtocolError(f"payload of {len(payload)} bytes does not fit a 32-bit length")
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream into frames.

    ``feed()`` bytes as they arrive; ``next_frame()`` returns one complete
    payload, or ``None`` when more bytes are needed.
    """

    def __init__(self, max_frame: int = MAX_REQUEST_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        if len(self._buffer) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buffer)
        if length > self.max_frame:
            raise FrameTooLarge(f"frame of {length} bytes exceeds the cap of {self.max_frame}")
        end = HEADER.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        return payload

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer)
