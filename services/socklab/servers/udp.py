"""The datagram server: one ``ok`` back for every datagram, boundaries kept."""

from __future__ import annotations

import errno
import logging
import socket
from collections import OrderedDict

from socklab.log import peer_name
from socklab.registry import MAX_DATAGRAM, VARIANTS

UDP = VARIANTS["udp"]

# We log the first datagram of each peer, not every datagram; this many
# recent peers are remembered so a flood of sources cannot grow memory.
PEERS_REMEMBERED = 4096

# A datagram socket can report an earlier send's ICMP error on any later call:
# that is the peer's problem, never a reason to stop serving the others.
# ENOBUFS and EPERM (a firewall rule) make one answer fail, not the server.
DATAGRAM_PEER_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                                  errno.ENOBUFS, errno.EPERM})


def answer(datagram: bytes) -> bytes:
    """What udp-server sends back for one datagram (the registry's reply)."""
    return UDP.transform(datagram)


def serve_udp(sock: socket.socket, log: logging.Logger) -> None:
    recent: OrderedDict[object, None] = OrderedDict()
    while True:
        try:
            datagram, address = sock.recvfrom(MAX_DATAGRAM + 1)
            if address not in recent:
                log.info("peer=%s first datagram bytes=%d", peer_name(address), len(datagram))
            _remember(recent, address)
            sock.sendto(answer(datagram), address)
        except OSError as error:
            if error.errno not in DATAGRAM_PEER_ERRNOS:
                raise


def _remember(recent: OrderedDict[object, None], address: object) -> None:
    recent[address] = None
    recent.move_to_end(address)
    if len(recent) > PEERS_REMEMBERED:
        recent.popitem(last=False)
