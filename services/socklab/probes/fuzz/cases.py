"""Fuzz cases: a pure function of (target, seed, index), no I/O.

``make_case`` draws a kind from the target's family (each family makes its own
messages, see ``families/``), then cuts the message into sends and picks how the
connection ends. Everything is drawn from one ``random.Random`` seeded by the
target's name, the seed and the index, so a case found by a run is replayed
alone with ``--only INDEX``, on any host. The byte-making helpers the families
share (sizes, invalid UTF-8, mutations, wrong JSON) are here too.
"""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from socklab.probes.fuzz.targets import Target


class Ending(enum.StrEnum):
    """How a case's connection ends (UDP cases have none: they are datagrams)."""

    FIN = "fin"  # close() once the reply is in
    RST = "rst"  # SO_LINGER 0 in the middle of the message
    HALF_CLOSE = "half-close"  # shutdown(SHUT_WR), then a read to the server's EOF
    DATAGRAMS = "datagrams"


TCP_ENDINGS = (Ending.FIN, Ending.HALF_CLOSE, Ending.RST)
ENDING_WEIGHTS = (4, 4, 2)

# How far past a cap an oversized message goes: "just past", by 1 to this many.
PAST_CAP = 64

# What one recv() of the lab's servers returns at most: a message longer than
# this reaches the server as two chunks or more, which is what an oversized
# echo or naive command is for. The contract (docs/protocols.md) does not name
# it, so the fuzzer states it; a unit test holds it to the servers' read size.
SERVER_RECV = 64 << 10


@dataclass(frozen=True)
class Cap:
    """A named size cap of the server, its value read from the registry."""

    name: str
    value: int


@dataclass(frozen=True)
class Message:
    """What a kind makes, before it is split into sends and ended."""

    data: bytes
    cap: Cap | None = None
    keep: int = 0  # leading bytes an RST may not cut: the part that passes the cap
    parts: tuple[bytes, ...] | None = None  # fixed sends (a handshake's steps, datagrams)
    gap: float = 0.0


@dataclass(frozen=True)
class Kind:
    """One kind of malformed input: its name in the reports and what makes it.

    ``rare`` kinds are drawn half as often: they are costly (megabytes, a
    closed connection) or say the same thing every time.
    """

    name: str
    make: Callable[[random.Random], Message]
    rare: bool = False


@dataclass(frozen=True)
class Case:
    target: str
    seed: int
    index: int
    kind: str
    message: bytes
    parts: tuple[bytes, ...]  # one send (TCP) or one datagram (UDP) each
    ending: Ending
    gap: float = 0.0  # seconds between sends
    cap: Cap | None = None

    @property
    def sent(self) -> bytes:
        return b"".join(self.parts)

    def describe(self) -> dict[str, Any]:
        """The case in a few fields, for a report or a bug."""
        return {"target": self.target, "seed": self.seed, "index": self.index,
                "kind": self.kind, "ending": self.ending.value,
                "cap": {"name": self.cap.name, "value": self.cap.value} if self.cap else None,
                "bytes": len(self.sent), "sends": [len(p) for p in self.parts[:20]],
                "gap": self.gap, "head": repr(self.sent[:80])}


def make_case(target: Target, seed: int, index: int) -> Case:
    """Case ``index`` of ``seed`` for ``target``: the same bytes on every run and host."""
    family = target.family
    rng = random.Random(f"socklab-fuzz/{target.name}/{seed}/{index}")
    kind = rng.choices(family.kinds, [1 if k.rare else 2 for k in family.kinds])[0]
    message = kind.make(rng)
    if target.transport == "udp":
        return Case(target.name, seed, index, kind.name, message.data,
                    message.parts or (message.data,), Ending.DATAGRAMS, cap=message.cap)
    ending = rng.choices(TCP_ENDINGS, ENDING_WEIGHTS)[0]
    fine = not family.chunk_is_command
    parts = message.parts or split(rng, message.data, fine)
    if ending == Ending.RST:
        parts = cut(rng, parts, message.keep)
    gap = message.gap or (rng.choice((0.0, 0.0, 0.0, 0.002)) if fine else 0.0)
    return Case(target.name, seed, index, kind.name, message.data, parts, ending, gap,
                message.cap)


def split(rng: random.Random, data: bytes, fine: bool = True) -> tuple[bytes, ...]:
    """Cut ``data`` into sends: mostly one, sometimes a few, sometimes a byte at a time.

    Not ``fine``: where every chunk is a command (a shell to start), rarely cut,
    never byte by byte.
    """
    if len(data) < 2:
        return (data,) if data else ()
    style = rng.random()
    if style < (0.6 if fine else 0.85):
        return (data,)
    if fine and style < 0.7 and len(data) <= 64:
        return tuple(data[i : i + 1] for i in range(len(data)))
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 3))))
    return tuple(data[a:b] for a, b in zip((0, *points), (*points, len(data)), strict=True))


def cut(rng: random.Random, parts: tuple[bytes, ...], keep: int) -> tuple[bytes, ...]:
    """The sends up to a point inside the message (after ``keep`` bytes): an RST follows."""
    total = sum(map(len, parts))
    low = max(keep, 1)
    if total - 1 < low:
        return parts
    point = rng.randint(low, total - 1)
    kept, used = [], 0
    for part in parts:
        if used >= point:
            break
        kept.append(part[: point - used])
        used += len(kept[-1])
    return tuple(kept)


# --- Bytes the families share --------------------------------------------------------------


def size(rng: random.Random, largest: int) -> int:
    """Mostly small, sometimes up to ``largest``: parsers break at both ends."""
    return rng.randint(0, min(rng.choice((16, 256, 4096, largest)), largest))


def past(rng: random.Random, cap: Cap) -> int:
    """A size just past ``cap``: by 1 to ``PAST_CAP`` bytes."""
    return cap.value + 1 + rng.randrange(PAST_CAP)


# Byte sequences no UTF-8 decoder accepts: lone continuation bytes, overlong
# forms, truncated sequences, surrogates, code points past U+10FFFF, 0xFE/0xFF.
# None holds a quote, a backslash or a NUL, so a JSON string stays a string.
INVALID_UTF8 = (b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xc3\x28", b"\xe2\x28\xa1",
                b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x28\x8c\xbc",
                b"\xf4\x90\x80\x80", b"\xf8\xa1\xa1\xa1\xa1", b"\xfe", b"\xff", b"\xff\xfe")


def invalid_utf8_text(rng: random.Random) -> bytes:
    """Plain letters and spaces with invalid sequences among them."""
    return b"".join(rng.choice((b"abc", b"x", b" ", *INVALID_UTF8))
                    for _ in range(rng.randint(1, 40)))


# Bytes that mean something to one parser or another.
INTERESTING = (b"\x00", b"\xff", b"{", b"}", b'"', b"\\", b"|", b"\n", b"\r\n", b"\xc0", b"%s",
               b"..", b"/", b"start", b"Ready|")


def mutate(rng: random.Random, data: bytearray) -> None:
    """One change in place: flip a bit, drop, insert, duplicate or replace bytes."""
    operation, at = rng.randrange(5), rng.randrange(len(data) + 1)
    if not data or operation == 0:
        data[at:at] = rng.choice(INTERESTING)
    elif operation == 1:
        data[at % len(data)] ^= 1 << rng.randrange(8)
    elif operation == 2:
        del data[at % len(data)]
    elif operation == 3:
        end = min(len(data), at + rng.randint(1, 16))
        data[at:at] = data[at:end]
    else:
        data[at % len(data)] = rng.randrange(256)


def to_json(value: object) -> bytes:
    return json.dumps(value).encode()


def extreme_json(rng: random.Random, head: bytes, room: int) -> bytes | None:
    """One time in ten, an object whose value breaks a parser, within ``room`` bytes:
    arrays nested deeper than a recursive parser's stack, or an integer longer than
    Python's int() accepts from a string (4,300 digits). Else None."""
    extreme = rng.random()
    if extreme >= 0.1:
        return None
    if extreme < 0.05:
        depth = rng.randint(1, room // 2)
        return head + b"[" * depth + b"]" * depth + b"}"
    return head + b"9" * rng.randint(4301, room) + b"}"
