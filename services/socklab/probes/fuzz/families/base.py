"""What every protocol family of the fuzzer has: its kinds, its judge, its health check.

A family is one way of speaking to a server (an echo, datagrams, exec's three
framings, ftp), aimed at one variant's port. Its facts (greeting, banner,
reply transform, caps) are the registry's; the family adds what to send, how
to tell a wrong reply, and one correct exchange to check the server by.
"""

from __future__ import annotations

import random
from typing import ClassVar

from socklab.probes.fuzz.cases import (
    SERVER_RECV,
    Case,
    Kind,
    Message,
    invalid_utf8_text,
    mutate,
    size,
)
from socklab.probes.fuzz.play import Done, Outcome, play_tcp
from socklab.registry import Variant

# A correct client's whole exchange, connect to last byte.
HEALTH_TIMEOUT = 10.0


class Family:
    """A protocol family aimed at ``variant``'s ``framing`` port.

    Subclasses name the ``framing`` they speak (a key of ``Variant.ports``),
    list their ``kinds`` in ``make_kinds``, and supply ``judge`` and ``check``.
    """

    framing: ClassVar[str]
    concurrency: ClassVar[int] = 4  # connections at once, unless the variant serves one
    chunk_is_command: ClassVar[bool] = False  # every recv() is one command: no fine splits
    random_largest: int = SERVER_RECV  # the most random bytes one case sends
    valid: ClassVar[tuple[bytes, ...]] = ()  # correct messages, for mutations

    def __init__(self, variant: Variant, framing: str) -> None:
        self.variant = variant
        # What the server sends first on this port: a greeting or a banner line.
        self.greeting = variant.greeting + variant.banner(framing)
        self.kinds: tuple[Kind, ...] = self.make_kinds()

    def make_kinds(self) -> tuple[Kind, ...]:
        raise NotImplementedError

    def play(self, case: Case, host: str, port: int, read_timeout: float) -> Outcome:
        """Send one case and end it its way (UDP families send datagrams instead)."""
        return play_tcp(case, self, host, port, read_timeout)

    def reply_done(self, case: Case) -> Done | None:
        """When a FIN case has its whole reply; None: when the server falls silent."""
        return None

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        """What is wrong with a whole reply, or None."""
        raise NotImplementedError

    def check(self, host: str, port: int, token: int) -> None:
        """One correct exchange; HealthError (or the client's error) if it went wrong."""
        raise NotImplementedError

    # --- Kinds most families share -----------------------------------------------------

    def random_bytes(self, rng: random.Random) -> Message:
        return Message(rng.randbytes(size(rng, self.random_largest)))

    def invalid_utf8(self, rng: random.Random) -> Message:
        text = invalid_utf8_text(rng)
        # Every family draws a wrapping, used or not, so a seed's later draws (the
        # ending, the sends) and so its recorded cases stay the same.
        return Message(self.around_text(text, rng.randrange(3)))

    def around_text(self, text: bytes, wrapping: int) -> bytes:
        """Invalid UTF-8 ``text`` where the protocol expects text."""
        return text

    def mutation(self, rng: random.Random) -> Message:
        data = bytearray(rng.choice(self.valid))
        for _ in range(rng.randint(1, 4)):
            mutate(rng, data)
        return Message(bytes(data))

    def empty(self, rng: random.Random) -> Message:
        """Connect and end without a byte (UDP: one empty datagram)."""
        return Message(b"")
