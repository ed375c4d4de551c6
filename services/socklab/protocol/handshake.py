"""The exec handshake port's protocol: ``Ready|<n>``, then ``start``, then n bytes.

The tutorial's fix for sticky packets. The client sends a command; the server
answers ``Ready|<n>|<exit status>``; the client answers ``start``; the server
sends exactly ``<n>`` bytes. The header is one chunk by construction: the
server sends nothing else until it hears ``start``, so the client may read it
with a single ``recv``. Every command gets a header, even an empty output
(``Ready|0|0``), so the tutorial's client never hangs.

Flags may follow the status, one ``|`` field each (the tutorial's client reads
field 1 only): ``truncated`` (the output cap cut the output), ``timed-out``
(the time limit killed the command), ``busy`` (not run: the server had no free
command slot; the output is the server's message), e.g.
``Ready|33554432|-9|truncated``.

Server side is a state machine; its transitions are the table below.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from socklab.protocol.errors import LocalProtocolError, RemoteProtocolError

START = b"start"
READY = b"Ready"

STATUS = re.compile(rb"-?[0-9]+")

# The flags a header may carry after the status.
TRUNCATED = "truncated"
TIMED_OUT = "timed-out"
BUSY = "busy"
FLAGS = frozenset({TRUNCATED, TIMED_OUT, BUSY})

# A Ready header is "Ready|", two decimal numbers and at most three flags
# (under 60 bytes): 64 bounds what a client buffers while waiting for it.
MAX_HEADER = 64


class State(enum.Enum):
    AWAIT_COMMAND = "await-command"
    RUNNING = "running"
    AWAIT_START = "await-start"


class Event(enum.Enum):
    COMMAND = "command"
    READY = "ready"
    START = "start"


# Anything but "start" while an output waits cancels that output and is taken
# as the next command: the tutorial's server behaves the same way.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.AWAIT_COMMAND, Event.COMMAND): State.RUNNING,
    (State.RUNNING, Event.READY): State.AWAIT_START,
    (State.AWAIT_START, Event.START): State.AWAIT_COMMAND,
    (State.AWAIT_START, Event.COMMAND): State.RUNNING,
}


@dataclass(frozen=True)
class Command:
    """The client asked to run ``line``."""

    line: bytes


@dataclass(frozen=True)
class SendOutput:
    """The client said ``start``: send ``data`` now."""

    data: bytes


def format_ready(size: int, status: int, flags: Iterable[str] = ()) -> bytes:
    unknown = set(flags) - FLAGS
    if unknown:
        raise LocalProtocolError(f"unknown Ready flags {sorted(unknown)}")
    return b"|".join([b"Ready|%d|%d" % (size, status), *(f.encode() for f in flags)])


class HandshakeServer:
    """The server's half of the handshake."""

    def __init__(self) -> None:
        self.state = State.AWAIT_COMMAND
        self._pending = b""

    def _move(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            message = f"{event.value} is not allowed in {self.state.value}"
            raise LocalProtocolError(message) from None

    def receive(self, chunk: bytes) -> list[Command | SendOutput]:
        """Interpret one chunk from the client."""
        if self.state is State.AWAIT_START and chunk.startswith(START):
            self._move(Event.START)
            events: list[Command | SendOutput] = [SendOutput(self._pending)]
            self._pending = b""
            rest = chunk[len(START) :]
            if rest.strip():
                self._move(Event.COMMAND)
                events.append(Command(rest))
            return events
        self._pending = b""
        self._move(Event.COMMAND)
        return [Command(chunk)]

    def ready(self, output: bytes, status: int, flags: Iterable[str] = ()) -> bytes:
        """Record the command's output; return the header to send."""
        header = format_ready(len(output), status, flags)
        self._move(Event.READY)
        self._pending = output
        return header


@dataclass(frozen=True)
class ReadyHeader:
    size: int
    status: int | None
    flags: frozenset[str] = field(default_factory=frozenset)


def parse_ready(header: bytes) -> ReadyHeader:
    """Parse ``Ready|<n>[|<status>[|<flag>…]]`` as the client receives it.

    Fields that are no known flag are ignored, as the contract allows.
    """
    if len(header) > MAX_HEADER:
        raise RemoteProtocolError(f"Ready header longer than {MAX_HEADER} bytes")
    fields = header.strip().split(b"|")
    if fields[0] != READY or len(fields) < 2 or not fields[1].isdigit():
        raise RemoteProtocolError(f"expected Ready|<n>, got {header[:MAX_HEADER]!r}")
    status = int(fields[2]) if len(fields) > 2 and STATUS.fullmatch(fields[2]) else None
    flags = frozenset(f.decode("ascii", "replace") for f in fields[3:]) & FLAGS
    return ReadyHeader(size=int(fields[1]), status=status, flags=flags)
