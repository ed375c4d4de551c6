"""The checks of the udp variant, run from a client host.

The learner spec (docs/exercises/12-write-your-own-udp.md): every datagram,
empty or up to 65,507 bytes, is answered by one datagram ``ok`` sent to the
address and port it came from. UDP may lose a datagram even on one machine's
bridge, so a check that gets no answer sends again (up to three times)
before it calls the answer missing: a grader must not fail a correct server
for the network's loss.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable

from socklab.grading.echo import Target, Wrong, fuzz_verdict, payload
from socklab.grading.verdict import size
from socklab.registry import ACK, MAX_DATAGRAM

WAIT = 1.0
TRIES = 3


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    return sock


def ask(target: Target, sock: socket.socket, data: bytes, what: str) -> None:
    """Send ``data`` until an answer comes (three tries); Wrong unless ``ok`` from the server."""
    server = socket.gethostbyname(target.host)
    for _ in range(TRIES):
        sock.sendto(data, (target.host, target.port))
        sock.settimeout(WAIT)
        try:
            answer, source = sock.recvfrom(65535)
        except TimeoutError:
            continue
        except ConnectionRefusedError:
            raise Wrong(f"sent {what} to {target.where}; expected the datagram {ACK!r}; "
                        "came an ICMP port unreachable (nothing listens on that port)") from None
        if answer != ACK:
            raise Wrong(f"sent {what}; expected the datagram {ACK!r}; came {answer[:32]!r} "
                        f"({size(len(answer))})")
        if source != (server, target.port):
            raise Wrong(f"sent {what}; the answer {ACK!r} came from {source[0]}:{source[1]}, "
                        f"expected {server}:{target.port}")
        return
    raise Wrong(f"sent {what} {TRIES} times, {WAIT:.0f} s apart, from "
                f"{sock.getsockname()[1]}; expected the datagram {ACK!r} back; nothing came",
                "timeout")


def ack(target: Target) -> None:
    with _socket() as sock:
        ask(target, sock, b"ping", "the datagram b'ping'")


def sizes(target: Target) -> None:
    with _socket() as sock:
        for n in (0, 1, 1400, MAX_DATAGRAM):
            ask(target, sock, payload(n, n), f"a datagram of {size(n)}")


def boundaries(target: Target, count: int = 20) -> None:
    with _socket() as sock:
        for attempt in range(TRIES):
            for i in range(count):
                sock.sendto(b"datagram %d" % i, (target.host, target.port))
            answers = []
            sock.settimeout(WAIT)
            try:
                while len(answers) < count + 1:
                    answers.append(sock.recvfrom(65535)[0])
            except TimeoutError:
                pass
            wrong = [a for a in answers if a != ACK]
            if wrong:
                raise Wrong(f"sent {count} datagrams in a burst; expected {count} datagrams "
                            f"{ACK!r}; among the answers came {wrong[0][:32]!r}")
            if len(answers) == count:
                return
            if len(answers) > count:
                raise Wrong(f"sent {count} datagrams in a burst; expected {count} answers; "
                            f"came more than {count}")
            if attempt == TRIES - 1:
                raise Wrong(f"sent {count} datagrams in a burst ({TRIES} times); expected "
                            f"{count} answers {ACK!r}; came {len(answers)} the last time")


# What a learner types into `socklab client udp`; the client waits 5 s for each answer.
TYPED = ("hello", "你好, socklab")
CLIENT_WAIT = 5.0 * len(TYPED) + 3.0
# Whole sessions typed before an answer is called missing (UDP may lose one).
CLIENT_TRIES = 2


def tutorial_client(target: Target) -> None:
    """``socklab client udp``, lines typed: each answered ``(b'ok', (server, port))``."""
    from socklab.grading import tutorial

    answer = str((ACK, (socket.gethostbyname(target.host), target.port)))
    expected = "".join(f"{answer}\n" for _ in TYPED)
    for attempt in range(1, CLIENT_TRIES + 1):
        shown = tutorial.run_client(["udp", "--host", target.host, "--port", str(target.port)],
                                    [*TYPED, "exit"], seconds=CLIENT_WAIT)
        got = "".join(tutorial.screens(shown.events, tutorial.UDP_PROMPT))
        if got != expected and "(no answer" in got and attempt < CLIENT_TRIES:
            continue  # a datagram or its answer lost on the way: type them all again
        tries = f" ({attempt} times)" if attempt > 1 else ""
        did = (f"ran `{shown.command}` and typed {len(TYPED)} lines "
               f"({tutorial.typed_words(TYPED)}), then exit{tries}")
        tutorial.ending(shown, did)
        tutorial.showing(shown, did, "each datagram's answer and where it came from, one "
                         "line per line typed", expected, got)
        return


def many_clients(target: Target, count: int = 50) -> None:
    socks = [_socket() for _ in range(count)]
    try:
        for i, sock in enumerate(socks):
            sock.sendto(b"client %d" % i, (target.host, target.port))
        for i, sock in enumerate(socks):
            ask_again = i  # a client whose answer went elsewhere (or got lost) asks again
            sock.settimeout(WAIT)
            try:
                answer, _ = sock.recvfrom(65535)
                if answer == ACK:
                    continue
            except TimeoutError:
                pass
            ask(target, sock, b"client %d again" % ask_again,
                f"a datagram from client {i + 1} of {count} (its own source port "
                f"{sock.getsockname()[1]})")
    finally:
        for sock in socks:
            sock.close()


def fuzz(target: Target) -> None:
    from socklab.probes.fuzz.cli import plan
    from socklab.probes.fuzz.tally import fuzz as run_fuzz

    args = argparse.Namespace(target="udp", inputs=300, seed=1, batch=50, concurrency=None,
                              host=target.host, port=target.port, read_timeout=0.5, only=None)
    fuzz_verdict(run_fuzz(plan(args)).report(), "sent 300 random datagrams (fuzzer seed 1)")
    with _socket() as sock:
        ask(target, sock, b"still there?", "a datagram after 300 fuzzer cases")


def churn(target: Target) -> None:
    for i in range(100):
        with _socket() as sock:
            for _ in range(10):
                sock.sendto(b"client %d" % i, (target.host, target.port))
            time.sleep(0.002)
    time.sleep(0.5)
    with _socket() as sock:
        ask(target, sock, b"still there?", "a datagram after 1,000 from 100 clients")


CHECKS: dict[str, Callable[[Target], None]] = {
    "conformance.ack": ack,
    "conformance.sizes": sizes,
    "conformance.boundaries": boundaries,
    "conformance.tutorial-client": tutorial_client,
    "concurrency.many-clients": many_clients,
    "robustness.fuzz": fuzz,
    "resources.fd-leak": churn,
    "resources.threads": churn,
}

