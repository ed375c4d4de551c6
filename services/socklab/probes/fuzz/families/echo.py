"""The echo family: tcp, select, epoll and twisted answer every chunk by a transform."""

from __future__ import annotations

import random

from socklab.clients.core import open_connection, recv_exact
from socklab.probes.fuzz.cases import SERVER_RECV, Cap, Case, Kind, Message, past
from socklab.probes.fuzz.families.base import HEALTH_TIMEOUT, Family
from socklab.probes.fuzz.judging import expect, first_difference
from socklab.probes.fuzz.play import Done, Outcome
from socklab.registry import ECHO_OUTPUT_CAP


class Echo(Family):
    """Bytes in, the variant's transform of them back, after its greeting."""

    framing = "echo"
    valid = (b"hello\n", b"The quick brown fox jumps over the lazy dog\n", bytes(range(256)))

    def make_kinds(self) -> tuple[Kind, ...]:
        return (Kind("random-bytes", self.random_bytes),
                Kind("invalid-utf8", self.invalid_utf8),
                Kind("oversized", self.oversized, rare=True),
                Kind("mutation", self.mutation),
                Kind("empty", self.empty, rare=True))

    def oversized(self, rng: random.Random) -> Message:
        """Past one recv of the server, or (one in four: it costs) past what select and
        epoll hold for a slow reader; tcp and twisted hold no such cap, and get the same
        large message."""
        cap = rng.choices((Cap("RECV_SIZE", SERVER_RECV), Cap("OUTPUT_CAP", ECHO_OUTPUT_CAP)),
                          (3, 1))[0]
        return Message(rng.randbytes(past(rng, cap)), cap, keep=cap.value + 1)

    def expected(self, sent: bytes) -> bytes:
        return self.greeting + self.variant.transform(sent)

    def reply_done(self, case: Case) -> Done:
        size = len(self.greeting) + len(case.sent)
        return lambda reply: len(reply) >= size

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        wrong = first_difference(outcome.reply, self.expected(case.sent))
        return f"echo {wrong}" if wrong else None

    def check(self, host: str, port: int, token: int) -> None:
        payload = b"Health check %d: Mixed Case, bytes \x00\xff\n" % token
        with open_connection(host, port, HEALTH_TIMEOUT) as sock:
            greeting = recv_exact(sock, len(self.greeting))
            sock.sendall(payload)
            reply = recv_exact(sock, len(payload))
        expect(greeting == self.greeting, f"greeting {self.greeting!r}", greeting)
        expect(reply == self.variant.transform(payload), "the echo", reply)
