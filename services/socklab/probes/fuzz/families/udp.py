"""The datagram family: udp-server answers every datagram, whatever it holds."""

from __future__ import annotations

import random
import socket

from socklab.probes.fuzz.cases import Cap, Case, Kind, Message, size
from socklab.probes.fuzz.families.base import HEALTH_TIMEOUT, Family
from socklab.probes.fuzz.judging import HealthError, expect
from socklab.probes.fuzz.play import READ_SIZE, Outcome, play_udp
from socklab.registry import Variant

# A datagram may be lost; three in a row are not.
HEALTH_TRIES = 3

# The size of a burst's datagrams at most: about one Ethernet frame each.
BURST_DATAGRAM = 1400


class Udp(Family):
    """Datagrams in, one answer each; answers may be lost, never wrong."""

    framing = "datagram"
    valid = (b"hello", b"ping", bytes(range(256)))

    def __init__(self, variant: Variant, framing: str) -> None:
        self.datagram_cap = Cap("MAX_DATAGRAM", int(variant.caps["datagram"]))
        self.random_largest = self.datagram_cap.value
        # The transform answers every datagram with the same bytes (an ack), so
        # answers joined in any order are judged without knowing which is which.
        self.answer = variant.transform(b"")
        super().__init__(variant, framing)

    def make_kinds(self) -> tuple[Kind, ...]:
        return (Kind("random-bytes", self.random_bytes),
                Kind("invalid-utf8", self.invalid_utf8),
                Kind("empty", self.empty, rare=True),
                Kind("max-datagram", self.max_datagram, rare=True),
                Kind("burst", self.burst),
                Kind("mutation", self.mutation))

    def max_datagram(self, rng: random.Random) -> Message:
        """The largest datagram IPv4 carries: a bigger one cannot be sent at all (EMSGSIZE)."""
        return Message(rng.randbytes(self.datagram_cap.value), self.datagram_cap)

    def burst(self, rng: random.Random) -> Message:
        datagrams = tuple(rng.randbytes(size(rng, BURST_DATAGRAM))
                          for _ in range(rng.randint(2, 30)))
        return Message(b"".join(datagrams), parts=datagrams)

    def play(self, case: Case, host: str, port: int, read_timeout: float) -> Outcome:
        return play_udp(case, host, port, read_timeout)

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        """One answer per datagram answered (the answers are joined in ``outcome.reply``)."""
        if outcome.reply == self.answer * outcome.answered:
            return None
        return (f"{outcome.answered} answers are not all {self.answer!r}: "
                f"{outcome.reply[:80]!r}")

    def check(self, host: str, port: int, token: int) -> None:
        datagram = b"health check %d" % token
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(HEALTH_TIMEOUT / HEALTH_TRIES)
            for _ in range(HEALTH_TRIES):
                sock.sendto(datagram, (host, port))
                try:
                    reply = sock.recv(READ_SIZE)
                except TimeoutError:
                    continue
                expected = self.variant.transform(datagram)
                expect(reply == expected, f"the answer {expected!r}", reply)
                return
        raise HealthError(f"no answer to {HEALTH_TRIES} datagrams")
