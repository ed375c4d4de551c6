"""The netfilter queue (NFQUEUE) messages, over netlink, as bytes.

``socklab delay`` holds packets that an ``iptables … -j NFQUEUE`` rule hands
to user space and gives each its verdict (accept) later. This module builds
and parses the netlink messages of that exchange; it does no I/O.

Layout (include/uapi/linux/netfilter/nfnetlink_queue.h): a netlink header
(length, type, flags, sequence, port id), an ``nfgenmsg`` (family, version,
queue number, big-endian), then attributes (length, type, value padded to
4 bytes). The message type is ``(NFNL_SUBSYS_QUEUE << 8) | message``.
"""

from __future__ import annotations

import socket
import struct

from socklab.protocol import netlink
from socklab.protocol.errors import RemoteProtocolError

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_COPY_META = 1  # we need the packet's id, not its bytes
NF_ACCEPT = 1

NFGENMSG = struct.Struct("!BBH")
ATTRIBUTE = struct.Struct("=HH")


def _align(length: int) -> int:
    return (length + 3) & ~3


def attribute(kind: int, value: bytes) -> bytes:
    raw = ATTRIBUTE.pack(ATTRIBUTE.size + len(value), kind) + value
    return raw + bytes(_align(len(raw)) - len(raw))


def message(kind: int, queue: int, attributes: bytes, sequence: int = 0) -> bytes:
    body = NFGENMSG.pack(socket.AF_UNSPEC, 0, queue) + attributes
    return netlink.message((NFNL_SUBSYS_QUEUE << 8) | kind, netlink.NLM_F_REQUEST, body,
                           sequence)


def bind(queue: int) -> bytes:
    command = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_UNSPEC)
    params = struct.pack("!IB", 0, NFQNL_COPY_META)
    return message(NFQNL_MSG_CONFIG, queue,
                   attribute(NFQA_CFG_CMD, command) + attribute(NFQA_CFG_PARAMS, params))


def unbind(queue: int) -> bytes:
    command = struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_UNSPEC)
    return message(NFQNL_MSG_CONFIG, queue, attribute(NFQA_CFG_CMD, command))


def verdict(queue: int, packet_id: int, decision: int = NF_ACCEPT) -> bytes:
    return message(NFQNL_MSG_VERDICT, queue,
                   attribute(NFQA_VERDICT_HDR, struct.pack("!II", decision, packet_id)))


def _attributes(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 0
    while offset + ATTRIBUTE.size <= len(data):
        length, kind = ATTRIBUTE.unpack_from(data, offset)
        if length < ATTRIBUTE.size:
            raise RemoteProtocolError(f"netlink attribute of length {length}")
        found[kind & 0x7FFF] = data[offset + ATTRIBUTE.size : offset + length]
        offset += _align(length)
    return found


def packet_ids(datagram: bytes) -> list[int]:
    """The ids of the queued packets in one netlink datagram; errors raise."""
    ids = []
    for kind, payload in netlink.messages(datagram):
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            header = _attributes(payload[NFGENMSG.size :]).get(NFQA_PACKET_HDR)
            if header is None:
                raise RemoteProtocolError("queued packet without a packet header")
            ids.append(struct.unpack_from("!I", header)[0])
    return ids
