"""What `make grade` checks for each variant: ids, categories, points, hints.

The learner spec of each family (docs/exercises/11-write-your-own-echo.md
and its siblings) in data: one :class:`Check` per thing a learner's server
must do, with the points it is worth and the concept to read up on when it
fails. The checks themselves (``socklab.grading.echo``, ``…udp``) run on a
client host; the host's grader (``socklab.host.grade``) runs them in this
order and scores them with these points. Points are fixed per check and
listed per variant in docs/grading.md (``tests/unit/test_grading_docs.py``
holds the two equal).

Pure data and the standard library: both sides import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from socklab.grading.check import CATEGORIES, PAGES, STATUSES, TUTORIAL_CLIENT_POINTS, Check
from socklab.grading.spec_exec import EXEC_CHECKS
from socklab.grading.spec_ftp import FTP_CHECKS
from socklab.registry import ACK, VARIANTS

__all__ = ["CATEGORIES", "GRADED", "PAGES", "SPECS", "STATUSES", "Check", "check", "checks",
           "performance_share"]

# How a check's title says the answer, by the registry's transform.
ANSWERS = MappingProxyType({"upper": "upper-cased", "same": "unchanged"})


def _echo_checks(variant: str) -> tuple[Check, ...]:
    v = VARIANTS[variant]
    single_thread = variant in ("select", "epoll", "twisted")
    greeting = (f"sends exactly {v.greeting!r} on connect, before anything else"
                if v.greeting else "sends nothing before the first request")
    checks = [
        Check("conformance.greeting", 4, greeting,
              "The greeting is part of the protocol: a client reads exactly that many "
              "bytes before its first request, so a missing, longer or late greeting "
              "shifts every answer after it.", "echo"),
        Check("conformance.echo", 6, f"answers a short message {ANSWERS[v.reply or '']}",
              "Each chunk read is answered by its transform, every byte of it, in order.",
              "echo"),
        Check("conformance.bytes", 4, "answers every byte value 0-255 correctly",
              "The answer works on bytes, not text: only ASCII a-z change in upper(); "
              "NUL, newlines and invalid UTF-8 go back as they came.", "echo"),
        Check("conformance.sizes", 8, "answers messages of 1 B, 1000 B, 64 KiB, 1 MiB and 16 MiB",
              "recv returns at most what you ask and send may write less than you "
              "give it: loop (sendall), and never assume one recv is one message.",
              "sticky", budget=60.0),
        Check("conformance.glued", 5, "answers 100 messages glued into one send",
              "TCP is a byte stream: many sends can arrive as one recv. Answer every "
              "byte you read, not just the first message.", "sticky"),
        Check("conformance.split", 5, "answers one message sent a byte at a time",
              "One message can arrive in many recvs; answer what arrives as it arrives.",
              "sticky"),
        Check("conformance.half-close", 5,
              "after the client's shutdown(SHUT_WR): every byte owed, then EOF",
              "recv returning b'' means the peer will send nothing more, not that it "
              "reads nothing more: send what you owe, then close.", "halfclose"),
        Check("conformance.tutorial-client", TUTORIAL_CLIENT_POINTS,
              f"`socklab client {variant}`, lines typed on one connection: "
              f"{'the greeting, then ' if v.greeting else ''}each line's answer",
              f"The lab's client (`socklab client {variant}`, the tutorial's client that "
              "never hangs) prints what comes on connect, then sends each line typed and "
              "prints what comes back, on one connection until exit: serve a connection "
              "until its client leaves, and answer each line as it arrives.", "echo"),
    ]
    if v.concurrent:
        checks += [
            Check("concurrency.many-clients", 10, "serves 100 clients connected at once",
                  "A server that waits in recv for one client cannot accept or answer "
                  "another: watch every socket with select/epoll (or a reactor).",
                  "blocking"),
            Check("concurrency.silent-client", 5,
                  "a connected client that sends nothing does not stall another",
                  "Never block on one client: read only the sockets that are ready.",
                  "blocking"),
            Check("concurrency.slow-client", 5,
                  "a client that sends a lot and never reads does not stall another",
                  "A blocking sendall to a client that does not read blocks the whole "
                  "loop: queue the answer and send when the socket is writable.",
                  "blocking"),
        ]
    else:
        checks.append(
            Check("concurrency.sequential", 10,
                  "serves a second client after the first leaves, and a third after it",
                  "The blocking server's loop is accept, serve until EOF, close, accept "
                  "again: a second client waits in the listen backlog meanwhile.",
                  "blocking"))
    if single_thread:
        checks.append(
            Check("concurrency.one-thread", 5, "runs in one thread while 50 clients are served",
                  "An event loop serves every client from one thread; threads per client "
                  "are the other design, not this exercise.", "blocking", sample=True))
    if variant == "epoll":
        checks.append(
            Check("concurrency.idle-thousands", 10,
                  "holds 2,000 idle connections and still serves one more client",
                  "epoll has no descriptor limit of its own: the process's nofile "
                  "(here 20000) is the only wall.", "fdwall", budget=90.0))
    if variant == "select":
        checks.append(
            Check("concurrency.fd-wall", 10,
                  "meets 1,100 connections: keeps serving the ones it holds, never dies",
                  "select() cannot watch a descriptor >= 1024 (FD_SETSIZE): close such a "
                  "connection at once, or stop accepting, but keep serving the others.",
                  "fdwall", budget=90.0))
    checks += [
        Check("robustness.reset", 5,
              "a client reset in the middle of a message: the same process serves the next",
              "A reset makes recv or send raise ConnectionResetError (or recv return "
              "b''): catch it, close that socket, keep the loop going.", "fuzz"),
        Check("robustness.vanish", 5,
              "50 clients that connect and leave at once: the same process serves the next",
              "A client can close before you greet it or answer it: a send to it raises "
              "BrokenPipeError or ConnectionResetError; drop that client only.", "fuzz"),
        Check("robustness.slow-reader", 5,
              "a client that sends 8 MiB, reading nothing for 3 s, gets all of it back",
              "The kernel's buffers fill when a peer does not read: send what you can "
              "and keep the rest, without losing or reordering a byte.", "blocking",
              budget=60.0),
        Check("robustness.fuzz", 5,
              "300 malformed or abrupt connections from the fuzzer: a correct client is "
              "still served by the same process",
              "Any bytes, any size, any way of leaving: nothing a client sends may end "
              "the server.", "fuzz", budget=90.0),
        Check("resources.fd-leak", 5, "no descriptor left open after 300 connections close",
              "Every accepted socket must be closed when its client leaves (EOF, reset, "
              "error): a leak ends in EMFILE.", "echo", sample=True, budget=60.0),
        Check("resources.memory", 5,
              "memory stays under 128 MiB while 6 clients send 24 MiB each and never read",
              "Bound what you hold per client: stop reading a client whose answers it "
              "does not read (back-pressure).", "blocking", sample=True, budget=60.0),
        Check("resources.threads", 3, "no thread left behind after 100 connections close",
              "A thread per client must end with its client.", "blocking", sample=True),
        Check("performance.throughput", 5,
              "1 KiB requests/s against the lab's own server, in bands",
              "Fewer system calls per request and no per-client blocking make a fast "
              "server; measure before you optimise.", "echo", budget=120.0),
    ]
    return tuple(checks)


def _udp_checks() -> tuple[Check, ...]:
    return (
        Check("conformance.ack", 8, "answers a datagram with the datagram ok, to its sender",
              "recvfrom gives the sender's address: answer with sendto to exactly that "
              "address.", "udp"),
        Check("conformance.sizes", 8, "answers datagrams of 0, 1, 1,400 and 65,507 bytes",
              "Every datagram gets its answer, whatever its size: an empty one is still a "
              "datagram, and one of 65,507 bytes is the largest IPv4 carries.",
              "udp"),
        Check("conformance.boundaries", 6, "one answer per datagram, 20 in a burst",
              "UDP keeps message boundaries: 20 datagrams are 20 recvfroms and 20 answers.",
              "udp"),
        Check("conformance.tutorial-client", TUTORIAL_CLIENT_POINTS,
              f"`socklab client udp`, lines typed: each gets ({ACK!r}, (the server's "
              f"address, {VARIANTS['udp'].main_port})) printed",
              "The lab's client sends each line typed as one datagram and prints what "
              "recvfrom returns, the data and where it came from: answer each datagram "
              "with sendto to the address it came from, from the socket it came in on.",
              "udp", budget=45.0),
        Check("concurrency.many-clients", 8, "answers 50 clients on 50 source ports",
              "A UDP server has one socket for every client: the address tells them apart.",
              "udp"),
        Check("robustness.fuzz", 5, "random datagrams: still answers a correct one",
              "Any bytes may arrive in a datagram; none may end the server.", "fuzz",
              budget=60.0),
        Check("resources.fd-leak", 5, "no descriptor opened per datagram or per client",
              "One socket serves every client: opening one per datagram leaks.", "udp",
              sample=True),
        Check("resources.threads", 3, "no thread left behind after 1,000 datagrams",
              "A thread per datagram must end with its answer.", "udp", sample=True),
        Check("performance.throughput", 4, "datagrams/s against the lab's own server, in bands",
              "One recvfrom and one sendto per datagram is the whole job.", "udp",
              budget=120.0),
    )


SPECS: Mapping[str, tuple[Check, ...]] = MappingProxyType({
    **{name: _echo_checks(name) for name in ("tcp", "select", "epoll", "twisted")},
    "udp": _udp_checks(),
    "exec": EXEC_CHECKS,
    "ftp": FTP_CHECKS,
})

# Variants `make grade` accepts.
GRADED: tuple[str, ...] = tuple(SPECS)

# Performance points by ratio to the lab's own server: (lowest ratio, share of the points).
PERFORMANCE_BANDS: tuple[tuple[float, float], ...] = (
    (0.8, 1.0), (0.5, 0.6), (0.25, 0.3), (0.0, 0.0))


def checks(variant: str) -> tuple[Check, ...]:
    """The checks of ``variant`` in the order they run; KeyError names the graded ones."""
    try:
        return SPECS[variant]
    except KeyError:
        raise KeyError(f"no checks for {variant!r}; gradable: {', '.join(GRADED)}") from None


def check(variant: str, check_id: str) -> Check:
    for candidate in checks(variant):
        if candidate.id == check_id:
            return candidate
    raise KeyError(f"{variant} has no check {check_id!r}")


def performance_share(ratio: float) -> float:
    """The share of the performance points a ratio to the reference earns."""
    return next(share for low, share in PERFORMANCE_BANDS if ratio >= low)
