"""Fuzzing: seeded malformed inputs against one server, a correct exchange after each batch.

``socklab probe fuzz --target ftp`` sends ``--inputs`` cases (1,000 by default)
to one server from a few concurrent connections: random bytes, invalid UTF-8,
messages just past the server's named size caps, truncated frames, frames
declaring huge lengths, JSON that parses but is wrong, partial handshakes and
mutations of valid messages. Each connection ends in one of three ways,
chosen by the case: a FIN (``close()``), an RST in the middle of the message
(``SO_LINGER`` 0), or a half-close (``shutdown(SHUT_WR)``) and a read to the
server's EOF. After every ``--batch`` cases a correct client runs one normal
exchange and checks the answer byte for byte: a robust server still answers
it, whatever came before.

A case is a pure function of (target, seed, index): ``make_case`` does no I/O,
so a case found by a run is replayed alone with ``--only INDEX``.

The report counts the connections the server closed or reset before the
fuzzer ended them (``dropped_by_server``), wrong answers seen while fuzzing
(``server_errors``) and the failed health checks with the index of the last
case before them (``failures``). A fuzzer-side timeout is counted as such,
never as a server failure. The server's own log (a traceback, a restart) is
read on the server's host, not here.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import selectors
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from socklab.clients.core import (
    FramedClient,
    FtpClient,
    HandshakeClient,
    open_connection,
    recv_exact,
)
from socklab.probes.common import Stopwatch, errno_name
from socklab.protocol import exec_framed, ftp
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import (
    HEADER,
    MAX_ENCODABLE,
    MAX_REPLY_FRAME,
    MAX_REQUEST_FRAME,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
)
from socklab.protocol.handshake import READY, START
from socklab.servers.base import RECV_SIZE
from socklab.servers.readiness import OUTPUT_CAP
from socklab.servers.udp import ACK, MAX_DATAGRAM
from socklab.sessions.echo import HELLO
from socklab.sessions.exec import NAIVE_BANNER
from socklab.sessions.ftp import FTP_BANNER

NAME = "fuzz"
HELP = "send seeded malformed inputs to one server; check it still answers correctly"

FIN, RST, HALF_CLOSE, DATAGRAMS = "fin", "rst", "half-close", "datagrams"
TCP_ENDINGS = (FIN, HALF_CLOSE, RST)
ENDING_WEIGHTS = (4, 4, 2)

# Every kind is drawn twice as often as these, which are costly (megabytes,
# a closed connection) or say the same thing every time.
RARE_KINDS = frozenset({"oversized", "huge-length", "max-datagram", "empty"})

# How far past a cap an oversized message goes: "just past", by 1 to this many.
PAST_CAP = 64

# Fuzzer-side limits. None of them is a server failure when reached.
CONNECT_TIMEOUT = 2.0
SEND_TIMEOUT = 10.0  # for all of one case's bytes, megabytes included
QUIET_GAP = 0.1  # a FIN case with no known reply (ftp) closes after this much silence
HEALTH_TIMEOUT = 10.0
HEALTH_TRIES = 3  # UDP only: a datagram may be lost, three in a row are not
PARTIAL_GAP = 0.05  # between the steps of a partial handshake, so they arrive apart

# Replies are kept up to this size for the judges (the largest echo fits);
# an exec command may print 32 MiB, which is counted, not kept.
REPLY_KEPT = OUTPUT_CAP + RECV_SIZE

SO_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends an RST, not a FIN


@dataclass(frozen=True)
class Cap:
    """A named size cap of the server (its value imported from the code that enforces it)."""

    name: str
    value: int


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    family: str  # echo, naive, handshake, framed, ftp or udp: how cases are made and judged
    kinds: tuple[str, ...]
    greeting: bytes = b""
    echo: Callable[[bytes], bytes] | None = None
    transport: str = "tcp"
    concurrency: int = 4

    @property
    def chunk_is_command(self) -> bool:
        """Every recv() is one command (exec 9000, 9001): no byte-at-a-time splits."""
        return self.family in ("naive", "handshake")


def _same(data: bytes) -> bytes:
    return data


ECHO_KINDS = ("random-bytes", "invalid-utf8", "oversized", "mutation", "empty")
EXEC_KINDS = ("random-bytes", "invalid-utf8", "oversized", "shell-noise", "mutation", "empty")

TARGETS: dict[str, Target] = {t.name: t for t in (
    # tcp-server serves one client at a time: more connections would only queue.
    Target("tcp", "tcp-server", 9000, "echo", ECHO_KINDS, echo=bytes.upper, concurrency=1),
    Target("select", "select-server", 9000, "echo", ECHO_KINDS, HELLO, bytes.upper),
    Target("epoll", "epoll-server", 9000, "echo", ECHO_KINDS, HELLO, bytes.upper),
    Target("twisted", "twisted-server", 8000, "echo", ECHO_KINDS, echo=_same),
    Target("udp", "udp-server", 9999, "udp",
           ("random-bytes", "invalid-utf8", "empty", "max-datagram", "burst", "mutation"),
           transport="udp"),
    # exec-server runs a few commands at once and queues the rest: more
    # connections than that only make the queue longer.
    Target("exec-naive", "exec-server", 9000, "naive", EXEC_KINDS, NAIVE_BANNER),
    Target("exec-handshake", "exec-server", 9001, "handshake",
           (*EXEC_KINDS, "partial-handshake")),
    Target("exec-framed", "exec-server", 9002, "framed",
           (*EXEC_KINDS, "truncated", "huge-length", "wrong-json")),
    # ftp answers at once but its FIN cases wait for silence: more at a time.
    Target("ftp", "ftp-server", 9000, "ftp",
           ("random-bytes", "invalid-utf8", "oversized", "truncated", "wrong-json",
            "partial-handshake", "mutation", "empty"), FTP_BANNER, concurrency=8),
)}


# --- Cases: a pure function of (target, seed, index) -----------------------------------


@dataclass(frozen=True)
class Message:
    """What a kind generator makes, before it is split into sends and ended."""

    data: bytes
    cap: Cap | None = None
    keep: int = 0  # leading bytes an RST may not cut: the part that passes the cap
    parts: tuple[bytes, ...] | None = None  # fixed sends (a handshake's steps, datagrams)
    gap: float = 0.0


@dataclass(frozen=True)
class Case:
    target: str
    seed: int
    index: int
    kind: str
    message: bytes
    parts: tuple[bytes, ...]  # one send (TCP) or one datagram (UDP) each
    ending: str
    gap: float = 0.0  # seconds between sends
    cap: Cap | None = None

    @property
    def sent(self) -> bytes:
        return b"".join(self.parts)

    def describe(self) -> dict[str, Any]:
        """The case in a few fields, for a report or a bug."""
        return {"target": self.target, "seed": self.seed, "index": self.index,
                "kind": self.kind, "ending": self.ending,
                "cap": {"name": self.cap.name, "value": self.cap.value} if self.cap else None,
                "bytes": len(self.sent), "sends": [len(p) for p in self.parts[:20]],
                "gap": self.gap, "head": repr(self.sent[:80])}


def make_case(target: str, seed: int, index: int) -> Case:
    """Case ``index`` of ``seed`` for ``target``: the same bytes on every run and host."""
    spec = TARGETS[target]
    rng = random.Random(f"socklab-fuzz/{target}/{seed}/{index}")
    weights = [1 if kind in RARE_KINDS else 2 for kind in spec.kinds]
    kind = rng.choices(spec.kinds, weights)[0]
    message = GENERATORS[kind](rng, spec.family)
    if spec.transport == "udp":
        return Case(target, seed, index, kind, message.data, message.parts or (message.data,),
                    DATAGRAMS, cap=message.cap)
    ending = rng.choices(TCP_ENDINGS, ENDING_WEIGHTS)[0]
    parts = message.parts or split(rng, message.data, fine=not spec.chunk_is_command)
    if ending == RST:
        parts = cut(rng, parts, message.keep)
    gap = message.gap or (0.0 if spec.chunk_is_command else rng.choice((0.0, 0.0, 0.0, 0.002)))
    return Case(target, seed, index, kind, message.data, parts, ending, gap, message.cap)


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


def _size(rng: random.Random, largest: int) -> int:
    """Mostly small, sometimes up to ``largest``: parsers break at both ends."""
    return rng.randint(0, min(rng.choice((16, 256, 4096, largest)), largest))


# Byte sequences no UTF-8 decoder accepts: lone continuation bytes, overlong
# forms, truncated sequences, surrogates, code points past U+10FFFF, 0xFE/0xFF.
# None holds a quote, a backslash or a NUL, so a JSON string stays a string.
INVALID_UTF8 = (b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xc3\x28", b"\xe2\x28\xa1",
                b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x28\x8c\xbc",
                b"\xf4\x90\x80\x80", b"\xf8\xa1\xa1\xa1\xa1", b"\xfe", b"\xff", b"\xff\xfe")

# Shell words that end at once with stdin on /dev/null (the runner's): nothing
# here sleeps, waits, reads a terminal or runs long.
SHELL_WORDS = ("echo", "printf", "ls", "true", "false", "test", "pwd", "id", "cd", "exit",
               "[", "]", "-n", "-z", "-l", "%s", "x", "..", "/", "~", "*", "?", "$HOME", "$1",
               "$?", "${x:-y}", "$(", ")", "`", "'", '"', "\\", "|", "||", "&&", ";", "&",
               ">", ">>", "<", "2>&1", "#", "!", "{", "}", "(", "=", "\n", "\t")

VALID_COMMANDS = (b"echo hello", b"ls -l", b"printf 'a%sb\\n' x", b"pwd", b"true", b"id -u",
                  b"echo out; echo err >&2")

# Bytes that mean something to one parser or another.
INTERESTING = (b"\x00", b"\xff", b"{", b"}", b'"', b"\\", b"|", b"\n", b"\r\n", b"\xc0", b"%s",
               b"..", b"/", b"start", b"Ready|")


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _put(name: str, size: int) -> bytes:
    return _json({"action": "put", "filename": name, "filesize": size})


def _fuzz_name(rng: random.Random) -> str:
    return f"fuzz-{rng.randrange(1 << 20)}.bin"


VALID_MESSAGES: dict[str, tuple[bytes, ...]] = {
    "echo": (b"hello\n", b"The quick brown fox jumps over the lazy dog\n", bytes(range(256))),
    "udp": (b"hello", b"ping", bytes(range(256))),
    "naive": VALID_COMMANDS,
    "handshake": VALID_COMMANDS,
    "framed": tuple(exec_framed.encode_request(c.decode()) for c in VALID_COMMANDS),
    "ftp": (_json({"action": "list"}), _json({"action": "get", "filename": "fuzz-valid.txt"}),
            _put("fuzz-valid.txt", 10) + b"fuzz data\n"),
}


def gen_random_bytes(rng: random.Random, family: str) -> Message:
    largest = {"udp": MAX_DATAGRAM, "naive": 8192, "handshake": 8192}.get(family, RECV_SIZE)
    data = rng.randbytes(_size(rng, largest))
    if family == "framed" and rng.random() < 0.5:
        data = encode_frame(data)  # random bytes in a well-formed frame
    elif family == "ftp" and rng.random() < 0.5:
        data = b"{" + data  # an object that starts well
    return Message(data)


def gen_invalid_utf8(rng: random.Random, family: str) -> Message:
    text = b"".join(rng.choice((b"abc", b"x", b" ", *INVALID_UTF8))
                    for _ in range(rng.randint(1, 40)))
    wrapped = {
        "naive": b"echo " + text,
        "handshake": b"echo " + text,
        "framed": encode_frame(b'{"cmd": "echo ' + text + b'"}'),
        "ftp": rng.choice((b'{"action": "' + text + b'"}',
                           b'{"action": "put", "filename": "' + text + b'", "filesize": 1}',
                           b'{"action": "get", "filename": "' + text + b'"}')),
    }.get(family, text)
    return Message(wrapped)


def gen_oversized(rng: random.Random, family: str) -> Message:
    return {"echo": _oversized_echo, "naive": _oversized_command,
            "handshake": _oversized_command, "framed": _oversized_frame,
            "ftp": _oversized_ftp}[family](rng)


def _past(rng: random.Random, cap: Cap) -> int:
    return cap.value + 1 + rng.randrange(PAST_CAP)


def _oversized_echo(rng: random.Random) -> Message:
    """Past one recv (64 KiB), or (one in four: it costs) past what select/epoll hold
    for a slow reader (4 MiB)."""
    cap = rng.choices((Cap("RECV_SIZE", RECV_SIZE), Cap("OUTPUT_CAP", OUTPUT_CAP)), (3, 1))[0]
    size = _past(rng, cap)
    return Message(rng.randbytes(size), cap, keep=cap.value + 1)


def _oversized_command(rng: random.Random) -> Message:
    """A command longer than one recv: the server runs it as two (or more) commands.

    Cut anywhere, each piece is still harmless: a comment, ``true`` or an echo.
    """
    cap = Cap("RECV_SIZE", RECV_SIZE)
    size = _past(rng, cap)
    data = rng.choice((b"#" * size, b"true " + b"#" * (size - 5), b"echo " + b"a" * (size - 5)))
    return Message(data, cap, keep=cap.value + 1)


def _oversized_frame(rng: random.Random) -> Message:
    """A request frame one cap and a bit long: refused from its header on."""
    cap = Cap("MAX_REQUEST_FRAME", MAX_REQUEST_FRAME)
    prefix, suffix = b'{"cmd": "true #', b'"}'
    payload = prefix + b"x" * (_past(rng, cap) - len(prefix) - len(suffix)) + suffix
    return Message(encode_frame(payload), cap, keep=HEADER.size)


def _oversized_ftp(rng: random.Random) -> Message:
    request_cap = Cap("MAX_REQUEST", ftp.MAX_REQUEST)
    choice = rng.randrange(4)
    if choice == 0:  # a whole object past the request cap
        head = b'{"action": "list", "pad": "'
        data = head + b"x" * (_past(rng, request_cap) - len(head) - 2) + b'"}'
        return Message(data, request_cap, keep=len(data))
    if choice == 1:  # an object that never ends
        data = b'{"action": "list", "pad": "' + b"x" * ftp.MAX_REQUEST
        data += b"x" * (_past(rng, request_cap) - len(data))
        return Message(data, request_cap, keep=request_cap.value + 1)
    if choice == 2:  # a name past NAME_MAX, in two-byte characters or one-byte ones
        cap = Cap("MAX_NAME_BYTES", ftp.MAX_NAME_BYTES)
        size = _past(rng, cap)
        name = rng.choice(("é" * (size // 2 + 1), "n" * size))
        data = _json({"action": rng.choice(("put", "get")), "filename": name, "filesize": 1})
        return Message(data, cap, keep=len(data))
    cap = Cap("DEFAULT_MAX_FILE_SIZE", ftp.DEFAULT_MAX_FILE_SIZE)
    data = _put(_fuzz_name(rng), _past(rng, cap))
    return Message(data, cap, keep=len(data))


def gen_truncated(rng: random.Random, family: str) -> Message:
    if family == "framed":
        whole = exec_framed.encode_request(rng.choice(VALID_COMMANDS).decode())
        return Message(rng.choice((
            whole[: rng.randint(1, len(whole) - 1)],
            whole + whole[: rng.randint(1, len(whole) - 1)],
            HEADER.pack(MAX_REQUEST_FRAME) + rng.randbytes(rng.randrange(256)),  # at the cap
        )))
    whole = rng.choice(VALID_MESSAGES["ftp"])
    return Message(whole[: rng.randint(1, len(whole) - 1)])


def gen_huge_length(rng: random.Random, family: str) -> Message:
    """A frame header declaring more than the cap, after a good frame or not."""
    cap = Cap("MAX_REQUEST_FRAME", MAX_REQUEST_FRAME)
    length = rng.choice((cap.value + 1, cap.value + 1 + rng.randrange(cap.value), 1 << 31,
                         MAX_ENCODABLE))
    before = rng.choice((b"", exec_framed.encode_request("echo before")))
    data = before + HEADER.pack(length) + rng.randbytes(rng.randrange(64))
    return Message(data, cap, keep=len(before) + HEADER.size)


# Names a server must refuse: they leave the directory, hold NUL or '/', pass
# NAME_MAX (300 bytes, one- or two-byte characters), are reserved, or are not
# valid Unicode (a lone surrogate).
BAD_NAMES = ("..", ".", "../escape", "a/../../b", "/etc/passwd", "a\x00b", "\x00", "",
             "n" * 300, "é" * 150, f"{ftp.PARTIAL_PREFIX}x", "\ud800", 7, None, ["a"])
BAD_SIZES = ("10", True, 1.5, -1, -(2**63), None, 2**64, 10**30)
BAD_DIGESTS = ("abc", "A" * 64, "g" * 64, "0" * 63, 123, "")
FTP_WRONG: tuple[object, ...] = (
    {"action": 1}, {"action": None}, {"action": ["put"]}, {"action": {"put": True}},
    {"action": "PUT", "filename": "a", "filesize": 1}, {"action": "delete", "filename": "a"},
    {"action": ""}, {}, {"action": "put"}, {"action": "get"}, {"action": "put", "filename": "a"},
    [], ["put"], "put", 1, None,
)
FRAMED_WRONG: tuple[object, ...] = (
    {"cmd": 1}, {"cmd": None}, {"cmd": ["ls"]}, {"cmd": {"a": 1}}, {"cmd": True}, {}, [],
    "ls", 1, None, {"command": "ls"}, {"cmd": "\ud800"}, {"cmd": "echo a\x00b"},
)
FRAMED_NOT_JSON = (b"", b"ls -l", b"{", b'{"cmd": "ls"', b'{"cmd": "ls"}{"cmd": "ls"}')


def _deep(rng: random.Random, room: int) -> bytes:
    """Arrays nested deeper than a recursive parser's stack, within ``room`` bytes."""
    depth = rng.randint(1, room // 2)
    return b"[" * depth + b"]" * depth


def _many_digits(rng: random.Random, room: int) -> bytes:
    """An integer longer than Python's int() accepts from a string (4300 digits)."""
    return b"9" * rng.randint(4301, room)


def gen_wrong_json(rng: random.Random, family: str) -> Message:
    room = ftp.MAX_REQUEST - 64 if family == "ftp" else 1 << 16
    extreme = rng.random()
    if extreme < 0.1:
        head = b'{"action": "list", "x": ' if family == "ftp" else b'{"cmd": "true", "x": '
        value = (_deep if extreme < 0.05 else _many_digits)(rng, room)
        payload = head + value + b"}"
    elif family == "ftp":
        payload = _json(_ftp_wrong(rng))
    else:
        payload = rng.choice((*(_json(v) for v in FRAMED_WRONG), *FRAMED_NOT_JSON))
    return Message(encode_frame(payload) if family == "framed" else payload)


def _ftp_wrong(rng: random.Random) -> object:
    name, size = _fuzz_name(rng), rng.randint(1, 64)
    return rng.choice((
        rng.choice(FTP_WRONG),
        {"action": rng.choice(("put", "get")), "filename": rng.choice(BAD_NAMES), "filesize": 1},
        {"action": "put", "filename": name, "filesize": rng.choice(BAD_SIZES)},
        {"action": "put", "filename": name, "filesize": size, "sha256": rng.choice(BAD_DIGESTS)},
    ))


def gen_partial_handshake(rng: random.Random, family: str) -> Message:
    if family == "ftp":
        return Message(_partial_put(rng))
    command, other = rng.choice(VALID_COMMANDS), rng.choice(VALID_COMMANDS)
    steps = rng.choice(((START,), (START, START), (command, START, START), (command + START,),
                        (command, START[:3]), (READY + b"|5|0",), (command, START + other),
                        (command, other, START), (command,)))
    return Message(b"".join(steps), parts=steps, gap=PARTIAL_GAP)


def _partial_put(rng: random.Random) -> bytes:
    """A put whose body is short, missing, or another request."""
    name, size = _fuzz_name(rng), rng.randint(1, 64)
    body = rng.randbytes(size)
    return rng.choice((
        _put(name, size) + body[: rng.randrange(size)],
        _put(name, size) + _json({"action": "list"}),
        _put(name, 0) + _json({"action": "list"}),
        _put(name, size) + body + _put(_fuzz_name(rng), size),
        _json({"action": "put", "filename": name}),
        _json({"action": "put", "filesize": size}),
    ))


def gen_shell_noise(rng: random.Random, family: str) -> Message:
    words = " ".join(rng.choice(SHELL_WORDS) for _ in range(rng.randint(1, 30)))
    if family == "framed":
        return Message(exec_framed.encode_request(words))
    return Message(words.encode())


def gen_mutation(rng: random.Random, family: str) -> Message:
    data = bytearray(rng.choice(VALID_MESSAGES[family]))
    for _ in range(rng.randint(1, 4)):
        _mutate(rng, data)
    return Message(bytes(data))


def _mutate(rng: random.Random, data: bytearray) -> None:
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


def gen_empty(rng: random.Random, family: str) -> Message:
    """Connect and end without a byte (UDP: one empty datagram)."""
    return Message(b"")


def gen_max_datagram(rng: random.Random, family: str) -> Message:
    """The largest datagram IPv4 carries: a bigger one cannot be sent at all (EMSGSIZE)."""
    return Message(rng.randbytes(MAX_DATAGRAM), Cap("MAX_DATAGRAM", MAX_DATAGRAM))


def gen_burst(rng: random.Random, family: str) -> Message:
    datagrams = tuple(rng.randbytes(_size(rng, 1400)) for _ in range(rng.randint(2, 30)))
    return Message(b"".join(datagrams), parts=datagrams)


GENERATORS: dict[str, Callable[[random.Random, str], Message]] = {
    "random-bytes": gen_random_bytes, "invalid-utf8": gen_invalid_utf8,
    "oversized": gen_oversized, "truncated": gen_truncated, "huge-length": gen_huge_length,
    "wrong-json": gen_wrong_json, "partial-handshake": gen_partial_handshake,
    "shell-noise": gen_shell_noise, "mutation": gen_mutation, "empty": gen_empty,
    "max-datagram": gen_max_datagram, "burst": gen_burst,
}


# --- Playing a case over a socket ---------------------------------------------------------


@dataclass
class Outcome:
    dropped: bool = False  # the server closed or reset before the fuzzer ended the connection
    timed_out: bool = False  # the fuzzer stopped waiting: its own limit, not a failure
    complete: bool = False  # the whole reply is in: judge it
    connect_error: str | None = None
    reply: bytes = b""
    datagrams: int = 0
    answered: int = 0


# Whether the reply so far (kept in a bytearray, not copied) is all a case waits for.
Done = Callable[[bytearray], bool]


class Wire:
    """One fuzz connection: sends while reading replies, and notes how the server ended it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.reply = bytearray()
        self.received = 0
        self.closed_by: str | None = None  # "eof" or "reset", as the server ended it
        self.last_activity = time.monotonic()

    def send(self, data: bytes, deadline: float) -> bool:
        """Send ``data``, reading all the while; False if the deadline passed first."""
        view = memoryview(data)
        self.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while view and self.closed_by is None:
                if time.monotonic() >= deadline:
                    return False
                for _key, events in self.selector.select(deadline - time.monotonic()):
                    if events & selectors.EVENT_READ:
                        self.read_available()
                    if events & selectors.EVENT_WRITE and self.closed_by is None:
                        view = view[self._send_some(view):]
        finally:
            self.selector.modify(self.sock, selectors.EVENT_READ)
            self.last_activity = time.monotonic()
        return True

    def _send_some(self, view: memoryview) -> int:
        try:
            return self.sock.send(view)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError):
            self.closed_by = "reset"
            return 0

    def read_available(self) -> None:
        while self.closed_by is None:
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return
            except ConnectionResetError:
                self.closed_by = "reset"
                return
            if not data:
                self.closed_by = "eof"
                return
            self.received += len(data)
            self.reply += data[: max(0, REPLY_KEPT - len(self.reply))]
            self.last_activity = time.monotonic()

    def wait(self, seconds: float, done: Done | None = None, quiet: float | None = None) -> bool:
        """Read until ``done``, the server's close, or ``quiet`` seconds of silence: True;
        False when ``seconds`` pass first."""
        deadline = time.monotonic() + seconds
        while True:
            if self.closed_by is not None or (done is not None and done(self.reply)):
                return True
            now = time.monotonic()
            if quiet is not None and now - self.last_activity >= quiet:
                return True
            if now >= deadline:
                return False
            until = deadline if quiet is None else min(deadline, self.last_activity + quiet)
            if self.selector.select(max(0.0, until - now)):
                self.read_available()

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.closed_by = self.closed_by or "reset"

    def reset(self) -> None:
        """Close with an RST: SO_LINGER on, with a zero timeout."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, SO_LINGER_RESET)
        self.close()

    def close(self) -> None:
        if self.sock.fileno() != -1:
            self.selector.close()
            self.sock.close()

    @property
    def whole(self) -> bool:
        return self.received == len(self.reply)


def play(sock: socket.socket, case: Case, target: Target, read_timeout: float) -> Outcome:
    """Send the case's parts over a connected ``sock``, then end it the case's way."""
    wire = Wire(sock)
    try:
        deadline = time.monotonic() + SEND_TIMEOUT
        for number, part in enumerate(case.parts):
            if not wire.send(part, deadline):
                return Outcome(timed_out=True, dropped=wire.closed_by is not None)
            if case.gap and number < len(case.parts) - 1:
                wire.wait(case.gap)
        return ENDINGS[case.ending](wire, case, target, read_timeout)
    finally:
        wire.close()


def end_fin(wire: Wire, case: Case, target: Target, read_timeout: float) -> Outcome:
    """Wait for the reply (or for silence), then close(): a FIN."""
    done = _reply_done(target, case)
    settled = wire.wait(read_timeout, done, None if done else QUIET_GAP)
    complete = done is not None and wire.whole and done(wire.reply)
    dropped = wire.closed_by is not None
    wire.close()
    return Outcome(dropped, not settled, complete, reply=bytes(wire.reply))


def end_half_close(wire: Wire, case: Case, target: Target, read_timeout: float) -> Outcome:
    """shutdown(SHUT_WR), then read to the server's EOF: the reply is then whole."""
    wire.read_available()
    early = wire.closed_by
    if early is None:
        wire.shutdown()
    settled = wire.wait(read_timeout)
    dropped = early is not None or wire.closed_by == "reset"
    return Outcome(dropped, not settled, wire.closed_by == "eof" and wire.whole,
                   reply=bytes(wire.reply))


def end_rst(wire: Wire, case: Case, target: Target, read_timeout: float) -> Outcome:
    """Mid-message: close with an RST, at once."""
    wire.read_available()
    dropped = wire.closed_by is not None
    wire.reset()
    return Outcome(dropped)


ENDINGS = {FIN: end_fin, HALF_CLOSE: end_half_close, RST: end_rst}


def play_tcp(case: Case, target: Target, host: str, port: int, read_timeout: float) -> Outcome:
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        return Outcome(connect_error="timeout")
    except OSError as error:
        return Outcome(connect_error=errno_name(error))
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # sends stay apart
        return play(sock, case, target, read_timeout)


def play_udp(case: Case, target: Target, host: str, port: int, read_timeout: float) -> Outcome:
    """Send the datagrams, then collect answers until all came or ``read_timeout`` passed."""
    replies: list[bytes] = []
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in case.parts:
            try:
                sock.sendto(datagram, (host, port))
                sent += 1
            except OSError:  # e.g. ENOBUFS in a burst, or an earlier ICMP error
                pass
        deadline = time.monotonic() + read_timeout
        while len(replies) < sent and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                replies.append(sock.recv(RECV_SIZE))
            except TimeoutError:
                break
            except ConnectionRefusedError:
                return Outcome(connect_error="ECONNREFUSED", datagrams=sent)
    return Outcome(timed_out=len(replies) < sent, complete=True, reply=b"".join(replies),
                   datagrams=sent, answered=len(replies))


# --- Judging replies seen while fuzzing ---------------------------------------------------


def _reply_done(target: Target, case: Case) -> Done | None:
    """When a FIN case has its reply: whole where its length is known; on exec 9000 and
    9001 the first command's answer, so the fuzzer goes no faster than the commands run."""
    if target.family in ("naive", "handshake"):
        size = len(target.greeting) + (1 if case.sent else 0)
        return lambda reply: len(reply) >= size
    if target.family == "echo":
        size = len(target.greeting) + len(case.sent)
        return lambda reply: len(reply) >= size
    if target.family == "framed":
        expected = framed_replies(case.sent)
        return lambda reply: len(reply_frames(reply)[0]) >= 3 * expected
    return None


def framed_replies(sent: bytes) -> int:
    """How many replies exec 9002 owes for these bytes: one per whole request frame,
    and one error reply for an oversized header, after which it closes."""
    decoder, count = FrameDecoder(MAX_REQUEST_FRAME), 0
    decoder.feed(sent)
    while True:
        try:
            frame = decoder.next_frame()
        except FrameTooLarge:
            return count + 1
        if frame is None:
            return count
        count += 1


def reply_frames(reply: bytes | bytearray) -> tuple[list[bytes], int]:
    """The whole frames in ``reply`` and the number of bytes left over."""
    decoder, frames = FrameDecoder(MAX_REPLY_FRAME), []
    decoder.feed(reply)
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames, decoder.buffered


def judge(target: Target, case: Case, outcome: Outcome) -> str | None:
    """What is wrong with a whole reply, or None."""
    if target.family == "udp":
        return judge_udp(outcome)
    return JUDGES[target.family](target, case, outcome.reply)


def judge_echo(target: Target, case: Case, reply: bytes) -> str | None:
    assert target.echo is not None
    expected = target.greeting + target.echo(case.sent)
    if reply == expected:
        return None
    at = next((i for i, (a, b) in enumerate(zip(reply, expected, strict=False)) if a != b),
              min(len(reply), len(expected)))
    return f"echo differs at byte {at}: {len(reply)} bytes back for {len(expected)} expected"


def judge_naive(target: Target, case: Case, reply: bytes) -> str | None:
    return None if reply.startswith(NAIVE_BANNER) else f"no banner: {reply[:80]!r}"


def judge_handshake(target: Target, case: Case, reply: bytes) -> str | None:
    ok = not reply or reply.startswith(READY + b"|")
    return None if ok else f"not a Ready header: {reply[:80]!r}"


def judge_framed(target: Target, case: Case, reply: bytes) -> str | None:
    frames, left = reply_frames(reply)
    expected = framed_replies(case.sent)
    if left or len(frames) != 3 * expected:
        return f"{len(frames)} frames and {left} stray bytes for {expected} replies"
    try:
        for start in range(0, len(frames), 3):
            exec_framed.decode_reply(frames[start : start + 3])
    except RemoteProtocolError as error:
        return f"bad reply: {error}"
    return None


def judge_ftp(target: Target, case: Case, reply: bytes) -> str | None:
    """Every answer a JSON line with a status below 500; a get's bytes skipped."""
    if not reply.startswith(FTP_BANNER):
        return f"no banner: {reply[:80]!r}"
    reader = ftp.AnswerReader()
    reader.feed(reply[len(FTP_BANNER):])
    try:
        while (answer := reader.next_answer()) is not None:
            status = answer["status"]
            if not isinstance(status, int) or status >= 500:
                return f"answer {answer}"
            if status == ftp.OK and "filesize" in answer:  # a get: the file follows
                del reader.buffer[: answer["filesize"]]
    except RemoteProtocolError as error:
        return str(error)
    return f"{len(reader.buffer)} bytes after the last answer" if reader.buffer else None


def judge_udp(outcome: Outcome) -> str | None:
    """One ``ok`` per answer (the answers are joined in ``outcome.reply``)."""
    if outcome.reply == ACK * outcome.answered:
        return None
    return f"{outcome.answered} answers are not all {ACK!r}: {outcome.reply[:80]!r}"


JUDGES = {"echo": judge_echo, "naive": judge_naive, "handshake": judge_handshake,
          "framed": judge_framed, "ftp": judge_ftp}


# --- Health checks: a correct client, an exact answer ---------------------------------------


class HealthError(Exception):
    """The server answered a correct client wrongly."""


def _expect(condition: bool, what: str, got: object) -> None:
    if not condition:
        raise HealthError(f"{what}; got {got!r:.200}")


def health_echo(target: Target, host: str, port: int, token: int) -> None:
    assert target.echo is not None
    payload = b"Health check %d: Mixed Case, bytes \x00\xff\n" % token
    with open_connection(host, port, HEALTH_TIMEOUT) as sock:
        greeting = recv_exact(sock, len(target.greeting))
        sock.sendall(payload)
        reply = recv_exact(sock, len(payload))
    _expect(greeting == target.greeting, f"greeting {target.greeting!r}", greeting)
    _expect(reply == target.echo(payload), "the echo", reply)


def health_udp(target: Target, host: str, port: int, token: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(HEALTH_TIMEOUT / HEALTH_TRIES)
        for _ in range(HEALTH_TRIES):
            sock.sendto(b"health check %d" % token, (host, port))
            try:
                reply = sock.recv(RECV_SIZE)
            except TimeoutError:
                continue
            _expect(reply == ACK, f"the answer {ACK!r}", reply)
            return
    raise HealthError(f"no answer to {HEALTH_TRIES} datagrams")


def _command(token: int) -> tuple[str, bytes]:
    return f"echo fuzz-health-{token}", b"fuzz-health-%d\n" % token


def health_naive(target: Target, host: str, port: int, token: int) -> None:
    command, output = _command(token)
    with open_connection(host, port, HEALTH_TIMEOUT) as sock:
        banner = recv_exact(sock, len(NAIVE_BANNER))
        sock.sendall(command.encode())
        reply = recv_exact(sock, len(output))
    _expect(banner == NAIVE_BANNER, "the banner", banner)
    _expect(reply == output, f"the output {output!r}", reply)


def health_handshake(target: Target, host: str, port: int, token: int) -> None:
    command, output = _command(token)
    with open_connection(host, port, HEALTH_TIMEOUT) as sock:
        header, reply = HandshakeClient(sock).run(command)
    _expect((header.size, header.status) == (len(output), 0), f"Ready|{len(output)}|0", header)
    _expect(reply == output, f"the output {output!r}", reply)


def health_framed(target: Target, host: str, port: int, token: int) -> None:
    command, output = _command(token)
    with open_connection(host, port, HEALTH_TIMEOUT) as sock:
        reply = FramedClient(sock).run(command)
    _expect((reply.exit_status, reply.stdout, reply.stderr, reply.error) == (0, output, b"", None),
            f"exit 0, stdout {output!r}", reply)


def health_ftp(target: Target, host: str, port: int, token: int) -> None:
    """Upload a small file with its sha256, download it, compare."""
    name, data = f"fuzz-health-{token}.txt", b"health check %d\n" % token * 64
    digest = hashlib.sha256(data).hexdigest()
    sink = io.BytesIO()
    with open_connection(host, port, HEALTH_TIMEOUT) as sock:
        client = FtpClient(sock)
        stored = client.put(name, len(data), [data], digest)
        fetched = client.get(name, sink)
    _expect(client.banner.encode() + b"\n" == FTP_BANNER, "the banner", client.banner)
    _expect(stored == {"status": ftp.CREATED, "filename": name, "filesize": len(data),
                       "sha256": digest}, "201 with the sha256", stored)
    _expect(fetched.get("status") == ftp.OK and sink.getvalue() == data, "the same bytes back",
            fetched)


HEALTH_CHECKS = {"echo": health_echo, "udp": health_udp, "naive": health_naive,
                 "handshake": health_handshake, "framed": health_framed, "ftp": health_ftp}


def health_check(target: Target, host: str, port: int, token: int) -> str | None:
    """None if a correct client got exactly the right answer, else what went wrong."""
    try:
        HEALTH_CHECKS[target.family](target, host, port, token)
    except (OSError, RemoteProtocolError, HealthError, ValueError, KeyError) as error:
        return f"{type(error).__name__}: {error}"
    return None


# --- The run and its report ---------------------------------------------------------------

SERVER_ERRORS_LISTED = 20


@dataclass
class Tally:
    kinds: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # by kind
    timeouts: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    datagrams: int = 0
    answered: int = 0
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    health_checks: int = 0

    def add(self, case: Case, outcome: Outcome, target: Target) -> None:
        self.kinds[case.kind] += 1
        self.endings[case.ending] += 1
        if outcome.connect_error:
            self.connect_errors[outcome.connect_error] += 1
            return
        self.bytes_sent += len(case.sent)
        self.datagrams += outcome.datagrams
        self.answered += outcome.answered
        self.timeouts += outcome.timed_out
        if outcome.dropped:
            self.dropped[case.kind] += 1
        wrong = judge(target, case, outcome) if outcome.complete else None
        if wrong:
            self.server_errors.append({**case.describe(), "error": wrong})

    def health(self, after_case: int, batch: int, error: str | None) -> None:
        self.health_checks += 1
        if error:
            self.failures.append({"after_case": after_case, "batch": batch, "error": error})

    def report(self) -> dict[str, Any]:
        return {"kinds": dict(sorted(self.kinds.items())),
                "endings": dict(sorted(self.endings.items())), "bytes_sent": self.bytes_sent,
                "dropped_by_server": sum(self.dropped.values()),
                "dropped_by_kind": dict(sorted(self.dropped.items())),
                "fuzzer_timeouts": self.timeouts, "connect_errors": dict(self.connect_errors),
                "server_error_count": len(self.server_errors),
                "server_errors": self.server_errors[:SERVER_ERRORS_LISTED],
                "health_checks": self.health_checks, "failures": self.failures}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, choices=list(TARGETS),
                        help="which server and port to fuzz")
    parser.add_argument("--inputs", type=int, default=1000,
                        help="cases to send (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same cases "
                        "(default: %(default)s)")
    parser.add_argument("--batch", type=int, default=100,
                        help="cases between two health checks (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="connections at once (default: 1 for tcp, 8 for ftp, else 4)")
    parser.add_argument("--host", default=None, help="server (default: the target's lab host)")
    parser.add_argument("--port", type=int, default=None, help="(default: the target's port)")
    parser.add_argument("--read-timeout", type=float, default=1.0,
                        help="seconds to wait for a reply per case (default: %(default)s)")
    parser.add_argument("--only", type=int, default=None, metavar="INDEX",
                        help="replay the one case INDEX of --seed, and show it")


def run(args: argparse.Namespace) -> dict[str, Any]:
    target = TARGETS[args.target]
    host, port = args.host or target.host, args.port or target.port
    concurrency = args.concurrency or target.concurrency
    indices = [args.only] if args.only is not None else list(range(args.inputs))
    clock, tally = Stopwatch(), Tally()
    baseline = health_check(target, host, port, token=0)
    if baseline:
        raise OSError(f"{target.name} at {host}:{port} fails before any fuzzing: {baseline}")
    play_case = play_udp if target.transport == "udp" else play_tcp
    batches = [indices[i : i + args.batch] for i in range(0, len(indices), args.batch)]
    with ThreadPoolExecutor(concurrency) as pool:
        for number, batch in enumerate(batches, 1):
            cases = [make_case(target.name, args.seed, index) for index in batch]
            outcomes = pool.map(lambda c: play_case(c, target, host, port, args.read_timeout),
                                cases)
            for case, outcome in zip(cases, outcomes, strict=True):
                tally.add(case, outcome, target)
            tally.health(batch[-1], number, health_check(target, host, port, token=number))
    result = {"target": target.name, "host": host, "port": port, "seed": args.seed,
              "inputs": len(indices), "batches": len(batches), "concurrency": concurrency,
              **tally.report()}
    if target.transport == "udp":
        result.update(datagrams=tally.datagrams, answered=tally.answered)
    if args.only is not None:
        result["case"] = make_case(target.name, args.seed, args.only).describe()
    result["seconds"] = clock()
    return result
