"""UDP keeps message boundaries and loses datagrams; TCP loses nothing.

Every datagram, from 1 byte to 65,507 (the most an IPv4 datagram can carry),
arrives whole or not at all, and gets exactly one ``ok``. Under loss some
datagrams simply get no answer: UDP neither notices nor retransmits. Over
the same lossy link TCP delivers a 20 MB file complete and in order both
ways, because the sender retransmits what was lost: the RetransSegs counter
of the sending host (``nstat -az TcpRetransSegs``) shows how much.

Loss is applied where packets arrive at the client host from the lab
network, for example 10 %:

    nft add table netdev socklab_loss
    nft add chain netdev socklab_loss in '{ type filter hook ingress device eth0 priority 0; }'
    nft add rule netdev socklab_loss in numgen random mod 100 '< 10' drop

and removed with ``nft delete table netdev socklab_loss``. The lab machines'
kernel has no ``tc netem``; a drop at the client's ingress is, for the
server, a packet lost on the link: answers to datagrams are lost, and the
server retransmits the segments of a download. (A drop on the client's own
way out would be seen by its TCP stack, which simply sends again, so it is
not a loss on the link; for an upload the link only loses ACKs here.)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import socket
from pathlib import Path
from typing import Any

from socklab.clients.core import FtpClient, open_connection
from socklab.probes.common import Stopwatch
from socklab.registry import VARIANTS

NAME = "udploss"
HELP = "datagram boundaries, lost datagrams, and a TCP upload over the same link"

UDP, FTP = VARIANTS["udp"], VARIANTS["ftp"]
MAX_DATAGRAM = UDP.caps["datagram"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=UDP.host, help="(default: %(default)s)")
    parser.add_argument("--port", type=int, default=UDP.main_port, help="(default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 512, 1472, 1473, 9000,
                                                                  MAX_DATAGRAM])
    parser.add_argument("--count", type=int, default=300, help="datagrams for the loss count")
    parser.add_argument("--upload", type=int, default=20_000_000,
                        help="bytes uploaded to ftp-server, then downloaded, over TCP (0: none)")
    parser.add_argument("--ftp-host", default=FTP.host, help="(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1.0)


def tcp_retransmissions() -> int:
    """Tcp RetransSegs of this host's network namespace (/proc/net/snmp)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("RetransSegs")])


def answers(sock: socket.socket, expected: int, timeout: float) -> list[bytes]:
    sock.settimeout(timeout)
    got = []
    try:
        while len(got) < expected:
            got.append(sock.recvfrom(65535)[0])
    except TimeoutError:
        pass
    return got


def boundaries(host: str, port: int, sizes: list[int], timeout: float) -> list[dict[str, Any]]:
    results = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for size in sizes:
            sock.sendto(bytes(size), (host, port))
            replies = answers(sock, 2, timeout)  # wait for a possible second answer too
            results.append({"size": size, "answers": [r.decode() for r in replies]})
    return results


def loss(host: str, port: int, count: int, timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index in range(count):
            sock.sendto(b"d%d" % index, (host, port))
        answered = len(answers(sock, count, timeout))
    return {"sent": count, "answered": answered, "lost": count - answered}


UPLOAD_NAME = "udploss-transfer.bin"


def upload(host: str, size: int) -> dict[str, Any]:
    data = random.Random(size).randbytes(size)
    digest = hashlib.sha256(data).hexdigest()
    before, clock = tcp_retransmissions(), Stopwatch()
    with open_connection(host, FTP.main_port) as sock:
        chunks = (data[i : i + 65536] for i in range(0, size, 65536))
        answer = FtpClient(sock).put(UPLOAD_NAME, size, chunks, digest)
    return {"bytes": size, "status": answer["status"], "sha256_sent": digest,
            "sha256_stored": answer.get("sha256"), "intact": answer.get("sha256") == digest,
            "client_retransmitted_segments": tcp_retransmissions() - before,
            "seconds": clock()}


def download(host: str, expected_sha256: str) -> dict[str, Any]:
    sink, clock = io.BytesIO(), Stopwatch()
    with open_connection(host, FTP.main_port) as sock:
        answer = FtpClient(sock).get(UPLOAD_NAME, sink)
    digest = hashlib.sha256(sink.getvalue()).hexdigest()
    return {"bytes": sink.tell(), "status": answer["status"], "sha256": digest,
            "intact": digest == expected_sha256, "seconds": clock()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "boundaries": boundaries(args.host, args.port, args.sizes, args.timeout),
        "loss": loss(args.host, args.port, args.count, args.timeout)}
    if args.upload:
        result["tcp_upload"] = upload(args.ftp_host, args.upload)
        result["tcp_download"] = download(args.ftp_host, result["tcp_upload"]["sha256_sent"])
    return result
