"""The checks of the echo variants (tcp, select, epoll, twisted), run from a client host.

Each check is a function of a :class:`Target` that returns a
:class:`~socklab.grading.verdict.Finding`. It tests the learner spec of
docs/exercises/11-write-your-own-echo.md and nothing the spec leaves free:
after the greeting (select and epoll: ``hello``; tcp and twisted: nothing),
the bytes that come back are the variant's transform of the bytes sent, in
order, however TCP cut or glued them. How a server reads, buffers or
schedules is its own business; only what a client sees is judged, and what
the host measures of the process (threads, descriptors, memory) for the
checks marked ``sample`` in ``socklab.grading.spec``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import select
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from socklab.grading import wire
from socklab.grading.verdict import compare, describe_sent, size
from socklab.registry import VARIANTS, Variant


@dataclass(frozen=True)
class Target:
    """The server under test: its variant's contract, at ``host:port``."""

    variant: Variant
    host: str
    port: int

    @classmethod
    def of(cls, name: str, host: str | None = None, port: int | None = None) -> Target:
        variant = VARIANTS[name]
        return cls(variant, host or variant.host, port or variant.main_port)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class Wrong(Exception):
    """A wrong answer: the message is the finding's."""

    def __init__(self, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.status = status


def payload(n: int, seed: int = 0) -> bytes:
    """``n`` random bytes, the same for the same seed (lower-case letters among them)."""
    return random.Random(seed).randbytes(n)


def open_client(target: Target, timeout: float = 5.0) -> socket.socket:
    """Connected and past the greeting; Wrong says what went wrong."""
    try:
        sock = wire.connect(target.host, target.port, timeout)
    except OSError as error:
        raise Wrong(f"connect to {target.where} failed: {error}") from None
    greeting = target.variant.greeting
    if greeting:
        got, ending = wire.read_exact(sock, len(greeting), timeout)
        if got != greeting:
            sock.close()
            raise Wrong(f"on connect, expected the greeting {greeting!r}; "
                        f"{compare(greeting, got, ending)}",
                        "timeout" if ending == "timeout" else "failed")
    return sock


def roundtrip(target: Target, sock: socket.socket, data: bytes, what: str,
              stall: float = wire.STALL) -> None:
    """Send ``data``, expect its transform back; Wrong names what differs."""
    expected = target.variant.transform(data)
    got, ending = wire.exchange(sock, data, len(expected), stall=stall)
    problem = compare(expected, got, ending)
    if problem:
        raise Wrong(f"sent {what} {describe_sent(data)}; {problem}",
                    "timeout" if ending == "timeout" and not got else "failed")


# What a fresh client sends after a check's trouble: plain ASCII, so that the question
# is only "is it still serving?" (the handling of every byte is conformance.bytes').
STILL_THERE = b"still there? The quick brown fox jumps over the lazy dog 0123456789\n"


def served(target: Target, what: str = "a fresh client") -> None:
    """A correct client, on a new connection, gets a correct answer."""
    sock = open_client(target)
    try:
        roundtrip(target, sock, STILL_THERE, what)
    except Wrong as wrong:
        raise Wrong(f"afterwards, {what}: {wrong}", wrong.status) from None
    finally:
        sock.close()


# --- conformance ---------------------------------------------------------------------


def greeting(target: Target) -> None:
    expected = target.variant.greeting
    try:
        sock = wire.connect(target.host, target.port)
    except OSError as error:
        raise Wrong(f"connect to {target.where} failed: {error}") from None
    with sock:
        if expected:
            got, ending = wire.read_exact(sock, len(expected), 5.0)
            problem = compare(expected, got, ending)
            if problem:
                raise Wrong(f"connected and sent nothing; expected the greeting {expected!r}; "
                            f"{problem}")
        extra = wire.arrives_within(sock, 0.5)
        if extra:
            said = f"after the greeting {expected!r}" if expected else "before any request"
            raise Wrong(f"connected and sent nothing; expected nothing more {said}; "
                        f"came {extra[:32]!r} ({size(len(extra))})")


def echo(target: Target) -> None:
    with open_client(target) as sock:
        roundtrip(target, sock, b"hello socklab, this is a test 123!\n", "one message")


def all_bytes(target: Target) -> None:
    with open_client(target) as sock:
        roundtrip(target, sock, bytes(range(256)) * 4, "every byte value 0-255, four times")


SIZES = (1, 1000, 64 << 10, 1 << 20, 16 << 20)


def sizes(target: Target) -> None:
    for n in SIZES:
        with open_client(target) as sock:
            roundtrip(target, sock, payload(n, n), f"one message of {size(n)}", stall=10.0)


def glued(target: Target) -> None:
    data = b"".join(b"message %03d of 100;" % i for i in range(100))
    with open_client(target) as sock:
        sock.sendall(data)  # one send: 1,900 bytes
        expect_answer(target, sock, data,
                      f"sent 100 messages glued in one send ({describe_sent(data)})")


def expect_answer(target: Target, sock: socket.socket, data: bytes, said: str) -> None:
    """Read the transform of ``data`` (already sent); Wrong, after ``said``, if it differs."""
    expected = target.variant.transform(data)
    got, ending = wire.exchange(sock, b"", len(expected))
    problem = compare(expected, got, ending)
    if problem:
        raise Wrong(f"{said}; {problem}")


def split(target: Target) -> None:
    data = b"one message, sent a byte at a time\n"
    with open_client(target) as sock:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(0.01)
        expect_answer(target, sock, data, f"sent {describe_sent(data)} in {len(data)} "
                      "sends of one byte, 10 ms apart")


def half_close(target: Target) -> None:
    data = payload(100_000, 7)
    expected = target.variant.transform(data)
    with open_client(target) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        got, ending = wire.read_to_eof(sock, 10.0)
        problem = compare(expected, got, "eof" if ending == "eof" else ending)
        if problem:
            raise Wrong(f"sent {describe_sent(data)}, then shutdown(SHUT_WR); {problem}")
        if ending != "eof":
            raise Wrong(f"sent {describe_sent(data)}, then shutdown(SHUT_WR); every byte came "
                        f"back, but the server did not close within 10 s (expected EOF)",
                        "timeout")


# What a learner types into `socklab client VARIANT`: a word, a line in the tutorial's own
# language (UTF-8 that has no upper case), a line longer than the tutorial's recv(1024),
# and a last short one. None holds a newline or the prompt.
TYPED = ("hello", "你好, socklab! Type a line, read it back: 0123456789",
         ("the quick brown fox jumps over the lazy dog " * 35)[:1500].rstrip(), "bye")
# How long the client may take for all of it (it waits 30 s or more for one answer).
CLIENT_WAIT = 15.0


def tutorial_client(target: Target) -> None:
    """``socklab client VARIANT``, lines typed: the greeting, then each line's answer."""
    from socklab.grading import tutorial

    variant = target.variant
    shown = tutorial.run_client([variant.name, "--host", target.host, "--port", str(target.port)],
                                [*TYPED, "exit"], seconds=CLIENT_WAIT)
    did = (f"ran `{shown.command}` and typed {len(TYPED)} lines "
           f"({tutorial.typed_words(TYPED)}), then exit")
    tutorial.ending(shown, did)
    greeting = f"the greeting {variant.greeting!r}, then " if variant.greeting else ""
    expected = variant.greeting.decode() + "".join(
        variant.transform(line.encode()).decode("utf-8", "replace") for line in TYPED)
    tutorial.showing(shown, did, f"{greeting}each line's answer (joined up, without the "
                     "prompts and the newlines the client adds)", expected,
                     tutorial.joined(shown.events))


# --- concurrency ---------------------------------------------------------------------


def open_many(target: Target, count: int, socks: list[socket.socket], what: str = "") -> None:
    """Connect ``count`` clients past their greeting into ``socks`` (the caller closes them)."""
    for i in range(count):
        try:
            socks.append(open_client(target))
        except Wrong as wrong:
            raise Wrong(f"with {i} {what}clients connected, client {i + 1}: {wrong}",
                        wrong.status) from None


def _many(target: Target, count: int, rounds: int, hold: float = 0.0) -> None:
    socks: list[socket.socket] = []
    try:
        open_many(target, count, socks)
        for r in range(rounds):
            for i, sock in enumerate(socks):
                sock.sendall(b"client %d round %d;" % (i, r))
            for i, sock in enumerate(socks):
                request = b"client %d round %d;" % (i, r)
                expected = target.variant.transform(request)
                got, ending = wire.exchange(sock, b"", len(expected))
                problem = compare(expected, got, ending)
                if problem:
                    raise Wrong(f"{count} clients connected at once, each sent one message "
                                f"(round {r + 1}); client {i + 1} sent {request!r}: {problem}",
                                "timeout" if ending == "timeout" else "failed")
        time.sleep(hold)
    finally:
        for sock in socks:
            sock.close()


def many_clients(target: Target) -> None:
    _many(target, 100, 3)


def one_thread(target: Target) -> None:
    # The host samples the server's threads meanwhile; the clients stay a while.
    _many(target, 50, 2, hold=2.0)


def silent_client(target: Target) -> None:
    silent = open_client(target)
    try:
        started = time.monotonic()
        served(target, "a second client (while the first was connected and silent)")
        if time.monotonic() - started > 3.0:
            raise Wrong("a second client was answered only after "
                        f"{time.monotonic() - started:.1f} s while a first one stayed silent",
                        "failed")
    finally:
        silent.close()


def slow_client(target: Target) -> None:
    flood = open_client(target)
    try:
        sent = wire.fill_without_reading(flood, payload(8 << 20, 3), 3.0)
        try:
            served(target, f"a second client (while the first had sent {size(sent)} and "
                   "read nothing)")
        except Wrong as wrong:
            raise Wrong(str(wrong), wrong.status) from None
    finally:
        leave(flood)


def leave(sock: socket.socket, seconds: float = 10.0) -> None:
    """Leave politely: half-close, read what the server still owes until its EOF, close.

    A client closing with unread bytes would send an RST; the checks that are not about
    resets must not test a server's reset handling by accident (robustness.reset does).
    Past ``seconds`` the socket is reset all the same.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(True)
        wire.read_to_eof(sock, seconds)
    except OSError:
        pass
    finally:
        sock.close()


def sequential(target: Target) -> None:
    first = open_client(target)
    with first:
        roundtrip(target, first, b"first client", "the first client's message")
        try:
            second = wire.connect(target.host, target.port)
        except OSError as error:
            raise Wrong(f"while a first client was connected, a second one's connect "
                        f"failed: {error} (it should wait in the listen backlog)") from None
        second.sendall(b"second client")
    with second:
        expected = target.variant.transform(b"second client")
        got, ending = wire.exchange(second, b"", len(expected), stall=5.0)
        problem = compare(expected, got, ending)
        if problem:
            raise Wrong("a second client sent b'second client' while the first was "
                        f"connected; after the first closed: {problem}",
                        "timeout" if ending == "timeout" else "failed")
    served(target, "a third client, after both left")


def idle_thousands(target: Target, count: int = 2000) -> None:
    socks: list[socket.socket] = []
    try:
        open_many(target, count, socks, "idle ")
        served(target, f"one more client, with {count:,} idle ones connected")
        for i in range(0, count, count // 20):
            roundtrip(target, socks[i], b"idle client %d wakes up" % i,
                      f"idle client {i + 1} of {count:,}")
    finally:
        for sock in socks:
            sock.close()


def fd_wall(target: Target, count: int = 1100) -> None:
    """Open ``count`` at once; every greeted one must then be served."""
    greeting = target.variant.greeting
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                socks.append(wire.connect(target.host, target.port, 5.0))
            except OSError:
                break  # a full backlog or a refusal: the server may say no
        greeted, refused, silent = _greetings(socks, greeting, 10.0)
        for i in greeted:
            try:
                roundtrip(target, socks[i], b"connection %d" % i, f"connection {i + 1}")
            except Wrong as wrong:
                raise Wrong(f"opened {len(socks):,} connections at once; {len(greeted):,} were "
                            f"greeted, {refused:,} closed, {silent:,} left waiting; "
                            f"a greeted one: {wrong}", wrong.status) from None
    finally:
        for sock in socks:
            sock.close()
    served(target, f"a new client after the {count:,} left")


def _greetings(socks: list[socket.socket], greeting: bytes,
               timeout: float) -> tuple[list[int], int, int]:
    """Read every socket's greeting at once (epoll: past 1024 descriptors); indices greeted."""
    got = {i: b"" for i in range(len(socks))}
    greeted, refused = [], 0
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + timeout
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                i = key.data
                try:
                    chunk = socks[i].recv(len(greeting) - len(got[i]))
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    refused += 1
                    selector.unregister(socks[i])
                    continue
                got[i] += chunk
                if len(got[i]) == len(greeting):
                    selector.unregister(socks[i])
                    if got[i] != greeting:
                        raise Wrong(f"connection {i + 1} was greeted with {got[i]!r}, "
                                    f"expected {greeting!r}")
                    greeted.append(i)
        silent = len(selector.get_map())
    for sock in socks:
        sock.setblocking(True)
    return greeted, refused, silent


# --- robustness ----------------------------------------------------------------------


def resets(target: Target) -> None:
    for _ in range(5):
        with contextlib.suppress(Wrong, OSError):
            sock = open_client(target)
            sock.sendall(payload(32 << 10, 5))  # half of a 64 KiB message, then RST
            wire.reset(sock)
        with contextlib.suppress(Wrong, OSError):
            sock = open_client(target)
            data = payload(1 << 20, 6)
            wire.exchange(sock, data, 10_000)  # a little of the answer, then RST
            wire.reset(sock)
    served(target, "a fresh client after 10 connections reset in mid-message")


def vanish(target: Target) -> None:
    for i in range(50):
        with contextlib.suppress(OSError):
            sock = wire.connect(target.host, target.port)
            if i % 2:
                sock.sendall(b"a request whose answer nobody reads")
            # Leave once something has come (a greeting, an answer), without reading it:
            # closing with unread bytes resets the connection, every time, not by chance.
            select.select([sock], [], [], 1.0)
            sock.close()
    time.sleep(0.5)
    served(target, "a fresh client after 50 clients connected and left at once")


def slow_reader(target: Target) -> None:
    data = payload(8 << 20, 8)
    expected = target.variant.transform(data)
    with open_client(target) as sock:
        sent = wire.fill_without_reading(sock, data, 3.0)
        got, ending = wire.exchange(sock, data[sent:], len(expected), stall=10.0,
                                    recv_size=4096)
        problem = compare(expected, got, ending)
        if problem:
            raise Wrong(f"sent {size(sent)} of an 8 MiB message without reading for 3 s, then "
                        f"the rest while reading 4 KiB at a time; {problem}",
                        "timeout" if ending == "timeout" else "failed")


def fuzz(target: Target) -> None:
    from socklab.probes.fuzz.cli import plan
    from socklab.probes.fuzz.tally import fuzz as run_fuzz

    args = argparse.Namespace(target=target.variant.name, inputs=300, seed=1, batch=50,
                              concurrency=None, host=target.host, port=target.port,
                              read_timeout=1.0, only=None)
    fuzz_verdict(run_fuzz(plan(args)).report(),
                 "sent 300 malformed or abruptly ended connections (fuzzer seed 1)")
    served(target, "a fresh client after 300 fuzzer cases")


def fuzz_verdict(report: dict[str, Any], sent: str) -> None:
    """Wrong when the fuzzer's correct client failed in a run; ``sent`` says what was sent."""
    if report["failures"]:
        raise Wrong(f"{sent}; a correct client then failed: {report['failures'][0]}")


# --- resources (the host measures; these only make the traffic) ----------------------


def churn(target: Target, count: int = 300) -> None:
    for i in range(count):
        sock = open_client(target)
        try:
            roundtrip(target, sock, b"connection %d" % i, f"connection {i + 1} of {count}")
        finally:
            sock.close()  # every answer read: a FIN, never an RST (robustness.reset's job)
    time.sleep(1.0)


def threads_churn(target: Target) -> None:
    at_once = 20 if target.variant.concurrent else 1  # tcp: the next waits in the backlog
    for batch in range(100 // at_once):
        socks = [open_client(target) for _ in range(at_once)]
        for i, sock in enumerate(socks):
            roundtrip(target, sock, b"batch %d client %d" % (batch, i), "a message")
            sock.close()
    time.sleep(1.0)


def flood(target: Target, clients: int = 6, each: int = 24 << 20) -> None:
    socks = [open_client(target) for _ in range(clients)]
    try:
        data = payload(each, 4)
        for sock in socks:
            sock.setblocking(False)
        sent = [0] * clients
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and min(sent) < each:
            moved = False
            for i, sock in enumerate(socks):
                with contextlib.suppress(BlockingIOError):
                    n = sock.send(data[sent[i]:sent[i] + (256 << 10)])
                    sent[i] += n
                    moved = moved or n > 0
            if not moved:
                time.sleep(0.05)
        time.sleep(2.0)
    except OSError:
        pass  # the server closed or died; the host sees which
    finally:
        for sock in socks:
            leave(sock, 5.0)
    time.sleep(0.5)


CHECKS: dict[str, Callable[[Target], None]] = {
    "conformance.greeting": greeting,
    "conformance.echo": echo,
    "conformance.bytes": all_bytes,
    "conformance.sizes": sizes,
    "conformance.glued": glued,
    "conformance.split": split,
    "conformance.half-close": half_close,
    "conformance.tutorial-client": tutorial_client,
    "concurrency.many-clients": many_clients,
    "concurrency.silent-client": silent_client,
    "concurrency.slow-client": slow_client,
    "concurrency.sequential": sequential,
    "concurrency.one-thread": one_thread,
    "concurrency.idle-thousands": idle_thousands,
    "concurrency.fd-wall": fd_wall,
    "robustness.reset": resets,
    "robustness.vanish": vanish,
    "robustness.slow-reader": slow_reader,
    "robustness.fuzz": fuzz,
    "resources.fd-leak": churn,
    "resources.memory": flood,
    "resources.threads": threads_churn,
}

