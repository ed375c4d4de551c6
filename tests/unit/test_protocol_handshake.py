"""The Ready|<n> handshake: the server's state machine and the client's header parser."""

from __future__ import annotations

import itertools

import pytest

from socklab.protocol import handshake
from socklab.protocol.errors import LocalProtocolError, RemoteProtocolError
from socklab.protocol.handshake import (
    MAX_HEADER,
    TRANSITIONS,
    Command,
    Event,
    HandshakeServer,
    ReadyHeader,
    SendOutput,
    State,
)

HEADERS = [
    pytest.param(0, 0, b"Ready|0|0", id="empty-output"),
    pytest.param(5, 0, b"Ready|5|0", id="small"),
    pytest.param(10_000_000, 2, b"Ready|10000000|2", id="large-failed"),
    pytest.param(5, -9, b"Ready|5|-9", id="killed"),
]


def awaiting_start(output: bytes = b"out", status: int = 0) -> HandshakeServer:
    server = HandshakeServer()
    server.receive(b"ls")
    server.ready(output, status)
    return server


@pytest.mark.parametrize(("size", "status", "header"), HEADERS)
def test_handshake_ready_header_encodes(size: int, status: int, header: bytes) -> None:
    server = HandshakeServer()
    server.receive(b"cmd")
    assert server.ready(b"x" * size, status) == header


@pytest.mark.parametrize(("size", "status", "header"), HEADERS)
def test_handshake_ready_header_parses(size: int, status: int, header: bytes) -> None:
    assert handshake.parse_ready(header) == ReadyHeader(size, status)


@pytest.mark.parametrize(("raw", "parsed"), [
    (b"Ready|5", ReadyHeader(5, None)),
    (b"Ready|5\n", ReadyHeader(5, None)),
    (b"Ready|5|", ReadyHeader(5, None)),
    (b"Ready|5|x", ReadyHeader(5, None)),
    (b"Ready|5|-", ReadyHeader(5, None)),
    (b"Ready|5|--9", ReadyHeader(5, None)),  # was ValueError from int(b"--9")
    (b"Ready|5|1-2", ReadyHeader(5, None)),
    (b"Ready|5|0|later", ReadyHeader(5, 0)),
    (b"Ready|" + b"1" * (MAX_HEADER - 6), ReadyHeader(int("1" * (MAX_HEADER - 6)), None)),
])
def test_handshake_parse_ready_accepts(raw: bytes, parsed: ReadyHeader) -> None:
    assert handshake.parse_ready(raw) == parsed


@pytest.mark.parametrize("raw", [
    b"", b"Ready", b"Ready|", b"ready|5", b"Ready|-1", b"Ready|5x", b"Ready 5", b"a.txt\nb.txt\n",
    b"Ready|\xd9\xa3",  # a non-ASCII digit is no size
    b"Ready|1|" + b"0" * MAX_HEADER,  # over MAX_HEADER
])
def test_handshake_parse_ready_rejects(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        handshake.parse_ready(raw)


def test_handshake_command_starts_running() -> None:
    server = HandshakeServer()
    assert server.receive(b"ls -l") == [Command(b"ls -l")]
    assert server.state is State.RUNNING


def test_handshake_ready_awaits_start() -> None:
    server = awaiting_start(b"out", 0)
    assert server.state is State.AWAIT_START


def test_handshake_start_sends_pending_output() -> None:
    server = awaiting_start(b"the output")
    assert server.receive(b"start") == [SendOutput(b"the output")]
    assert server.state is State.AWAIT_COMMAND


def test_handshake_start_with_newline_is_only_start() -> None:
    server = awaiting_start(b"out")
    assert server.receive(b"start\n") == [SendOutput(b"out")]
    assert server.state is State.AWAIT_COMMAND


def test_handshake_other_chunk_cancels_pending_output() -> None:
    server = awaiting_start(b"old")
    assert server.receive(b"pwd") == [Command(b"pwd")]
    assert server.state is State.RUNNING
    server.ready(b"new", 0)
    assert server.receive(b"start") == [SendOutput(b"new")]


def test_handshake_start_glued_to_next_command() -> None:
    server = awaiting_start(b"out")
    assert server.receive(b"startls") == [SendOutput(b"out"), Command(b"ls")]
    assert server.state is State.RUNNING


def test_handshake_start_before_any_command_is_a_command() -> None:
    server = HandshakeServer()
    assert server.receive(b"start") == [Command(b"start")]


@pytest.mark.parametrize("misuse", [
    pytest.param(lambda s: s.ready(b"", 0), id="ready-before-command"),
    pytest.param(lambda s: (s.receive(b"ls"), s.ready(b"", 0), s.ready(b"", 0)), id="ready-twice"),
    pytest.param(lambda s: (s.receive(b"ls"), s.receive(b"ls")), id="command-while-running"),
])
def test_handshake_illegal_transition_raises(misuse) -> None:
    with pytest.raises(LocalProtocolError):
        misuse(HandshakeServer())


def test_handshake_transitions_table_covers_every_state_and_event() -> None:
    sources = {state for state, _ in TRANSITIONS}
    targets = set(TRANSITIONS.values())
    assert sources == targets == set(State)
    assert {event for _, event in TRANSITIONS} == set(Event)


def reach(state: State) -> HandshakeServer:
    """A server brought to ``state`` the way a client and the session bring it there."""
    server = HandshakeServer()
    if state is not State.AWAIT_COMMAND:
        server.receive(b"ls")
    if state is State.AWAIT_START:
        server.ready(b"out", 0)
    assert server.state is state
    return server


# How each event comes about through the server's interface.
CAUSES = {
    Event.COMMAND: lambda server: server.receive(b"ls"),
    Event.READY: lambda server: server.ready(b"out", 0),
    Event.START: lambda server: server.receive(b"start"),
}

# "start" before any command is a command (tested above): START cannot come then.
PAIRS = [pair for pair in itertools.product(State, Event)
         if pair != (State.AWAIT_COMMAND, Event.START)]


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_handshake_moves_only_along_the_table(state: State, event: Event) -> None:
    server = reach(state)
    if (state, event) in TRANSITIONS:
        CAUSES[event](server)
        assert server.state is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(LocalProtocolError):
            CAUSES[event](server)
        assert server.state is state


# --- flags after the status -----------------------------------------------------------

FLAGGED = [
    pytest.param(["truncated"], b"Ready|33554432|-9|truncated", id="truncated"),
    pytest.param(["timed-out"], b"Ready|33554432|-9|timed-out", id="timed-out"),
    pytest.param(["busy"], b"Ready|33554432|-9|busy", id="busy"),
    pytest.param(["truncated", "timed-out", "busy"],
                 b"Ready|33554432|-9|truncated|timed-out|busy", id="all"),
]


@pytest.mark.parametrize(("flags", "header"), FLAGGED)
def test_handshake_ready_flags_encode(flags: list[str], header: bytes) -> None:
    server = HandshakeServer()
    server.receive(b"yes")
    assert server.ready(b"y" * 33554432, -9, flags) == header


@pytest.mark.parametrize(("flags", "header"), FLAGGED)
def test_handshake_ready_flags_parse(flags: list[str], header: bytes) -> None:
    assert len(header) <= MAX_HEADER
    assert handshake.parse_ready(header) == ReadyHeader(33554432, -9, frozenset(flags))


def test_handshake_parse_ready_ignores_unknown_flags() -> None:
    assert handshake.parse_ready(b"Ready|5|0|later|truncated|\xff") == ReadyHeader(
        5, 0, frozenset({"truncated"}))


def test_handshake_tutorial_client_reads_field_one_of_flagged_header() -> None:
    # The tutorial's client: int(header.decode().split("|")[1])
    assert int(b"Ready|20|-9|truncated".decode().split("|")[1]) == 20


def test_handshake_ready_refuses_unknown_flag_and_keeps_state() -> None:
    server = HandshakeServer()
    server.receive(b"ls")
    with pytest.raises(LocalProtocolError):
        server.ready(b"out", 0, ["partial"])
    assert server.state is State.RUNNING
    assert server.ready(b"out", 0) == b"Ready|3|0"
