"""Netlink messages as bytes: the header every netlink family shares, and a walk over them.

A datagram from the kernel holds one or more messages, each a header
(length, type, flags, sequence, port id; native byte order) and a payload,
aligned to 4 bytes (include/uapi/linux/netlink.h). ``socklab delay``
(NFQUEUE, ``socklab.protocol.nfqueue``) and ``make watch`` (sock_diag,
``socklab.watch.diag``) both speak it. No I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from socklab.protocol.errors import RemoteProtocolError

HEADER = struct.Struct("=IHHII")
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH: every object, not one
NLMSG_ERROR = 2
NLMSG_DONE = 3


class NetlinkError(OSError):
    """The kernel answered a request with an error (its errno)."""


def message(kind: int, flags: int, body: bytes, sequence: int = 0) -> bytes:
    """One message: its header, then ``body``."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, sequence, 0) + body


def messages(datagram: bytes, sequence: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each message of ``datagram``; an error message raises.

    With ``sequence``, messages answering another request (the tail of an
    earlier dump that was cut short) are skipped.
    """
    offset = 0
    while offset + HEADER.size <= len(datagram):
        length, kind, _flags, answered, _port = HEADER.unpack_from(datagram, offset)
        if length < HEADER.size:
            raise RemoteProtocolError(f"netlink message of length {length}")
        payload = datagram[offset + HEADER.size: offset + length]
        if sequence is not None and answered != sequence:
            pass
        elif kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", payload)
            if code:
                raise NetlinkError(-code, f"netlink: the kernel refused the request, "
                                          f"errno {-code}")
        else:
            yield kind, payload
        offset += (length + 3) & ~3
