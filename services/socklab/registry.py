"""The lab contract in code: every server variant, where it runs and what it says.

One table, read by everyone, the way ``selectors`` picks its backends from one
list: the servers' defaults, the learner's and the scripted clients, the
probes, the fuzzer, the benchmark, the tests and the Ansible checks all look a
variant up here instead of writing its host, port, greeting or cap again.
``docs/protocols.md`` is the same contract in prose; ``compose/lab.yml``,
``compose/publish.yml`` and ``compose/swarm.yml`` are checked against this
table by ``tests/unit/test_registry.py``.

No I/O and no imports beyond the standard library and the pure protocol code,
so both sides (the lab image and the host) may import it.

    >>> from socklab.registry import VARIANTS
    >>> VARIANTS["exec"].port("framed")
    9002
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from socklab.protocol import framing, ftp, handshake

# --- What the servers say ------------------------------------------------------------

# select-server and epoll-server greet every client with it on connect.
HELLO = b"hello"

# udp-server's answer to every datagram.
ACK = b"ok"

# The one-line banners sent on connect, each ending in a newline.
NAIVE_BANNER = (b"Welcome to socklab exec-server (naive port): "
                b"every chunk you send is a command.\n")
FTP_BANNER = b"Welcome to socklab ftp-server: send a JSON request (put, get, list).\n"

# --- Caps a client can run into ---------------------------------------------------------

# Largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header).
MAX_DATAGRAM = 65507

# Reply bytes select-server and epoll-server hold for one slow reader before
# they stop reading its requests (and so stop answering) until it reads.
ECHO_OUTPUT_CAP = 4 << 20

# Per exec command, stdout and stderr together. Large enough for the 10 MB
# outputs of the sticky-packet scenario, small enough that a `yes` cannot eat
# the host; a longer output is cut and marked truncated.
EXEC_OUTPUT_CAP = 32 << 20

# Commands that may run or hold their output at once (--max-commands). The
# server's container has 256 MiB: 3 outputs at the cap (plus the 1/8 a growing
# buffer over-allocates, 108 MiB) + the server itself (about 25 MiB) + the
# commands' tmpfs scratch space when full (/srv/exec 64 MiB, /tmp 16 MiB, also
# charged to the container) leaves some 35 MiB to spare. A fourth would not fit.
EXEC_MAX_COMMANDS = 3

# How long a command waits for a free slot before it is refused as busy
# (--slot-wait). A slot frees within the 30 s time limit plus the time its
# client takes to read; clients wait 60 s for an answer, so 15 s + 30 s fits.
EXEC_SLOT_WAIT = 15.0

# Wall-clock limit of one command. The lab's commands are `ls`, `cat`, `seq`:
# 30 s is forever for them and short enough that a `sleep 1e9` frees its slot.
EXEC_TIMEOUT = 30.0


# --- The variants -------------------------------------------------------------------


def _same(data: bytes) -> bytes:
    return data


def _ack(data: bytes) -> bytes:
    return ACK


# How a chunk (or datagram) is answered, by the name the contract gives it.
TRANSFORMS: Mapping[str, Callable[[bytes], bytes]] = MappingProxyType({
    "upper": bytes.upper,  # ASCII letters only, as bytes.upper
    "same": _same,
    "ack": _ack,
})


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Variant:
    """One server variant of the lab: its host, its ports and what it answers.

    ``ports`` maps each framing the variant speaks to its port, the main one
    first (``exec``: naive 9000, handshake 9001, framed 9002). ``reply`` names
    a transform of ``TRANSFORMS`` for the echo variants and udp; the others
    answer by their protocol (docs/protocols.md). ``banners`` maps a framing
    to the line it sends on connect; ``caps`` names every limit a client can
    run into, in bytes (or seconds, for names ending in ``_s``).
    """

    name: str
    host: str
    transport: str  # "tcp" or "udp"
    ports: Mapping[str, int]
    summary: str
    concurrent: bool  # serves many clients at once (tcp-server does not, on purpose)
    greeting: bytes = b""
    reply: str | None = None
    banners: Mapping[str, bytes] = field(default_factory=dict)
    caps: Mapping[str, int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"{self.name}: transport {self.transport!r} is neither tcp nor udp")
        if self.reply is not None and self.reply not in TRANSFORMS:
            raise ValueError(f"{self.name}: unknown reply transform {self.reply!r}")
        if not self.ports:
            raise ValueError(f"{self.name}: no port")
        for name in ("ports", "banners", "caps"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def main_port(self) -> int:
        """The first port: the one a client reaches without naming a framing."""
        return next(iter(self.ports.values()))

    @property
    def framing(self) -> str:
        """The main port's framing."""
        return next(iter(self.ports))

    def port(self, framing: str) -> int:
        """The port of one framing; KeyError names the framings there are."""
        try:
            return self.ports[framing]
        except KeyError:
            raise KeyError(f"{self.name} has no framing {framing!r}; it has "
                           f"{', '.join(self.ports)}") from None

    def transform(self, chunk: bytes) -> bytes:
        """What the server sends back for ``chunk`` (echo variants and udp only)."""
        if self.reply is None:
            raise ValueError(f"{self.name} answers by its protocol, not by a transform")
        return TRANSFORMS[self.reply](chunk)

    def banner(self, framing: str | None = None) -> bytes:
        """The line sent on connect on a framing's port (b"" when there is none)."""
        return self.banners.get(framing or self.framing, b"")

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """(framing, port) of every port, main first."""
        return list(self.ports.items())


VARIANTS: Mapping[str, Variant] = MappingProxyType({v.name: v for v in (
    Variant("tcp", "tcp-server", "tcp", {"echo": 9000},
            "blocking socket server, one client at a time", concurrent=False, reply="upper"),
    Variant("udp", "udp-server", "udp", {"datagram": 9999}, "datagram server, answers ok",
            concurrent=True, reply="ack", caps={"datagram": MAX_DATAGRAM}),
    Variant("exec", "exec-server", "tcp", {"naive": 9000, "handshake": 9001, "framed": 9002},
            "remote commands: naive, handshake and length-framed", concurrent=True,
            banners={"naive": NAIVE_BANNER},
            caps={"output": EXEC_OUTPUT_CAP, "commands": EXEC_MAX_COMMANDS,
                  "slot_wait_s": EXEC_SLOT_WAIT, "timeout_s": EXEC_TIMEOUT,
                  "ready_header": handshake.MAX_HEADER,
                  "request_frame": framing.MAX_REQUEST_FRAME,
                  "reply_frame": framing.MAX_REPLY_FRAME}),
    Variant("ftp", "ftp-server", "tcp", {"ftp": 9000},
            "socketserver.ThreadingTCPServer file transfer", concurrent=True,
            banners={"ftp": FTP_BANNER},
            caps={"request": ftp.MAX_REQUEST, "name": ftp.MAX_NAME_BYTES,
                  "file": ftp.DEFAULT_MAX_FILE_SIZE, "answer": ftp.MAX_ANSWER}),
    Variant("select", "select-server", "tcp", {"echo": 9000},
            "select.select event loop, upper-case echo", concurrent=True, greeting=HELLO,
            reply="upper", caps={"output": ECHO_OUTPUT_CAP}),
    Variant("epoll", "epoll-server", "tcp", {"echo": 9000},
            "select.epoll event loop, upper-case echo", concurrent=True, greeting=HELLO,
            reply="upper", caps={"output": ECHO_OUTPUT_CAP}),
    Variant("twisted", "twisted-server", "tcp", {"echo": 8000}, "Twisted reactor, echo",
            concurrent=True, reply="same"),
)})

# The variants that answer each chunk by a transform (the echo servers).
ECHO_VARIANTS: tuple[str, ...] = tuple(
    v.name for v in VARIANTS.values() if v.transport == "tcp" and v.reply is not None)

# The client hosts, beside the servers on the lab network.
CLIENTS: tuple[str, ...] = ("client-1", "client-2")

# The lab network's name when no LAB= is given (make up LAB=alice: socklab-alice).
NETWORK = "socklab"


def by_host(host: str) -> Variant:
    """The variant whose server runs on ``host`` (``"epoll-server"``)."""
    for variant in VARIANTS.values():
        if variant.host == host:
            return variant
    raise KeyError(f"no variant runs on {host!r}; the servers are "
                   f"{', '.join(v.host for v in VARIANTS.values())}")


def server_hosts() -> list[str]:
    """Every server's host name, in the contract's order."""
    return [v.host for v in VARIANTS.values()]
