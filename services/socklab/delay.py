"""``socklab delay``: add a fixed delay to every packet a host sends on a link.

The lab machines' kernel has no ``tc netem``. This does the same for delay
with what it has: an iptables rule hands each packet leaving by the device
to NFQUEUE, and this process gives it back (accept) after the delay. The
packets leave in order, each ``--ms`` later than it would have. The rule
uses ``--queue-bypass``, so if this process dies, traffic flows undelayed;
the rule is removed when it stops (SIGTERM or Ctrl-C).

Limits: it is for the lab's request/response traffic. The kernel holds at
most 1024 packets per queue, so past about 10,000 packets/s at 100 ms the
kernel drops the excess; a bulk transfer under delay measures this tool.
The rule is added with ``iptables-legacy`` (see it with ``iptables-legacy -t
mangle -S OUTPUT``); Debian's plain ``iptables`` is the nftables backend.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import select
import socket
import subprocess
import time
from collections.abc import Iterator

from socklab.protocol import nfqueue
from socklab.servers.base import stop_on_signals

# Packets waiting for their verdict are held by the kernel; we only keep ids.
RECEIVE_BUFFER = 8 << 20


def iptables_rule(device: str, queue: int) -> list[str]:
    return ["OUTPUT", "-o", device, "-j", "NFQUEUE", "--queue-num", str(queue),
            "--queue-bypass"]


@contextlib.contextmanager
def queued_output(device: str, queue: int) -> Iterator[None]:
    rule = iptables_rule(device, queue)
    subprocess.run(["iptables-legacy", "-t", "mangle", "-A", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables-legacy", "-t", "mangle", "-D", *rule], check=False)


def open_queue(queue: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nfqueue.NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, 0))
        sock.send(nfqueue.bind(queue))
    except BaseException:
        sock.close()
        raise
    return sock


def delay_packets(sock: socket.socket, queue: int, delay: float) -> None:
    """Hold every queued packet ``delay`` seconds, then accept it, in order."""
    waiting: collections.deque[tuple[float, int]] = collections.deque()
    while True:
        timeout = max(0.0, waiting[0][0] - time.monotonic()) if waiting else None
        if select.select([sock], [], [], timeout)[0]:
            due = time.monotonic() + delay
            try:
                datagram = sock.recv(65536)
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                continue  # we fell behind and the kernel dropped packets: go on
            waiting.extend((due, packet) for packet in nfqueue.packet_ids(datagram))
        while waiting and waiting[0][0] <= time.monotonic():
            sock.send(nfqueue.verdict(queue, waiting.popleft()[1]))


def run_delay(milliseconds: float, device: str, queue: int, log: logging.Logger) -> None:
    with open_queue(queue) as sock, queued_output(device, queue), stop_on_signals(log):
        log.info("delaying every packet out of %s by %.0f ms (NFQUEUE %d)", device,
                 milliseconds, queue)
        delay_packets(sock, queue, milliseconds / 1000)
