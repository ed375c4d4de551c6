"""Every TCP socket of a network namespace, as ``ss`` lists them: the kernel's sock_diag.

``/proc/net/tcp`` shows a listener's accept queue but not its limit (its
``tx_queue`` column is 0 for a listener). The netlink family
``NETLINK_SOCK_DIAG`` answers both, as ``ss -lnt`` prints them: for a
listening socket ``rqueue`` is the number of connections waiting to be
accepted and ``wqueue`` the queue's limit, min(backlog, somaxconn); for any
other socket, the bytes not yet read and not yet acknowledged. One dump
request per address family returns every socket of the namespace the
netlink socket was made in (TIME_WAIT and half-open SYN_RECV ones too).

Building the request and reading the answer are pure (``request``,
``parse``); ``dump`` is the one function that talks to the kernel.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from socklab.protocol import netlink

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
ALL_STATES = 0xFFFFFFFF
# struct inet_diag_req_v2: family, protocol, extensions, pad, states, then the
# inet_diag_sockid (ports, addresses, interface, cookie), left zero for a dump.
REQUEST = struct.Struct("=BBBBI48x")
# struct inet_diag_msg: family, state, timer, retransmits, sockid (source port
# and destination port big-endian, 16-byte addresses, interface, cookie),
# expires, rqueue, wqueue, uid, inode.
MESSAGE = struct.Struct("=BBBB2s2s16s16sIQIIIII")

# The kernel's TCP states (include/net/tcp_states.h), named as it names them.
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "SYN_RECV"}  # 12, NEW_SYN_RECV: a half-open connection


@dataclass(frozen=True)
class Socket:
    """One TCP socket: its state, ports and the two queues as ``ss`` shows them."""

    state: str
    local_port: int
    remote_port: int
    rqueue: int
    wqueue: int
    family: int
    local_address: str = ""


def address(family: int, raw: bytes) -> str:
    """The socket's address as text (the kernel fills 4 of the 16 bytes for IPv4)."""
    try:
        return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)
    except (OSError, ValueError):
        return ""


def request(family: int, sequence: int = 1) -> bytes:
    """A dump request for every TCP socket of ``family`` (AF_INET or AF_INET6)."""
    body = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, ALL_STATES)
    return netlink.message(SOCK_DIAG_BY_FAMILY, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP,
                           body, sequence)


def parse(data: bytes, sequence: int | None = None) -> tuple[list[Socket], bool]:
    """The sockets in one ``recv`` of the answer, and whether the dump is done; an
    error answer raises ``NetlinkError``. With ``sequence``, only the answer to that
    request counts."""
    sockets, done = [], False
    for kind, payload in netlink.messages(data, sequence):
        if kind == netlink.NLMSG_DONE:
            done = True
        elif kind == SOCK_DIAG_BY_FAMILY:
            fields = MESSAGE.unpack_from(payload)
            family, state, sport, dport, source, rqueue, wqueue = (
                fields[0], fields[1], fields[4], fields[5], fields[6], fields[11], fields[12])
            sockets.append(Socket(STATES.get(state, str(state)), int.from_bytes(sport, "big"),
                                  int.from_bytes(dport, "big"), rqueue, wqueue, family,
                                  address(family, source)))
    return sockets, done


# Each dump has a sequence number of its own: a dump cut short (an error, a reader that
# stopped) leaves its tail queued on the socket, and the next dump must not take that
# tail, or its end, for its own answer.
SEQUENCES = itertools.count(1)


def _drain(sock: socket.socket) -> None:
    """Read and drop what a dump cut short left: the kernel goes on with that dump (and
    refuses a new one, EBUSY) until its end has been read."""
    while True:
        try:
            if not sock.recv(1 << 17, socket.MSG_DONTWAIT):
                return
        except BlockingIOError:
            return


def dump(sock: socket.socket, family: int) -> Iterator[Socket]:
    """Every TCP socket of ``family`` in ``sock``'s network namespace."""
    sequence = next(SEQUENCES) & 0xFFFFFFFF
    _drain(sock)
    sock.send(request(family, sequence))
    while True:
        sockets, done = parse(sock.recv(1 << 17), sequence)
        yield from sockets
        if done:
            return


def open_socket() -> socket.socket:
    """A sock_diag socket of the caller's network namespace (it stays in it)."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)


def all_sockets(sock: socket.socket, ipv6: bool = True) -> list[Socket]:
    """Every TCP socket of the namespace (IPv4 only when ``ipv6`` is False)."""
    families = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
    return [s for family in families for s in dump(sock, family)]
