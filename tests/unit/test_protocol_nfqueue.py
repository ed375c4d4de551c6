"""NFQUEUE netlink messages: built and parsed as bytes, no netlink socket."""

from __future__ import annotations

import struct

import pytest

from socklab.protocol import netlink, nfqueue
from socklab.protocol.errors import RemoteProtocolError


def packet_message(packet_id: int, queue: int = 0) -> bytes:
    header = struct.pack("!IHB", packet_id, 0x0800, 3) + b"\x00"
    return nfqueue.message(nfqueue.NFQNL_MSG_PACKET, queue,
                           nfqueue.attribute(nfqueue.NFQA_PACKET_HDR, header))


def test_nfqueue_message_length_and_type() -> None:
    raw = nfqueue.verdict(5, 42)
    length, kind, flags, _seq, _pid = netlink.HEADER.unpack_from(raw)
    assert length == len(raw) and len(raw) % 4 == 0
    assert kind == (3 << 8) | 1 and flags == netlink.NLM_F_REQUEST
    assert raw[-8:] == struct.pack("!II", nfqueue.NF_ACCEPT, 42)
    assert struct.unpack_from("!H", raw, netlink.HEADER.size + 2)[0] == 5  # queue, BE


def test_nfqueue_attribute_is_padded_to_four_bytes() -> None:
    assert len(nfqueue.attribute(1, b"abcde")) == 12
    assert nfqueue.attribute(1, b"abcde")[:2] == struct.pack("=H", 9)


def test_nfqueue_bind_carries_command_and_copy_mode() -> None:
    raw = nfqueue.bind(7)
    assert struct.pack("!BxH", nfqueue.NFQNL_CFG_CMD_BIND, 0) in raw
    assert struct.pack("!IB", 0, nfqueue.NFQNL_COPY_META) in raw


@pytest.mark.parametrize("ids", [[1], [1, 2, 3], [2**32 - 1]])
def test_nfqueue_packet_ids_from_one_datagram(ids: list[int]) -> None:
    datagram = b"".join(packet_message(i) for i in ids)
    assert nfqueue.packet_ids(datagram) == ids


def test_nfqueue_netlink_error_raises_oserror() -> None:
    error = netlink.HEADER.pack(36, netlink.NLMSG_ERROR, 0, 0, 0) + struct.pack(
        "=i", -1) + bytes(16)
    with pytest.raises(OSError):
        nfqueue.packet_ids(error)


def test_nfqueue_truncated_length_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        nfqueue.packet_ids(netlink.HEADER.pack(4, 0x300, 0, 0, 0))
