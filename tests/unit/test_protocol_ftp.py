"""The ftp messages: request scanning, the server's state machine, names, answers."""

from __future__ import annotations

import json

import pytest

from socklab.protocol import ftp
from socklab.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from socklab.protocol.ftp import (
    MAX_REQUEST,
    PARTIAL_PREFIX,
    TRANSITIONS,
    AnswerReader,
    BadRequest,
    BodyData,
    BodyEnd,
    FtpError,
    FtpServerConnection,
    PutRequest,
    Request,
    RequestRefused,
    ServerFailed,
    State,
    Trigger,
)

SHA = "ab" * 32
LIST = b'{"action": "list"}'


def put_request(size: int, name: str = "f.bin") -> bytes:
    return json.dumps({"action": "put", "filename": name, "filesize": size}).encode()


def drive(conn: FtpServerConnection, chunks: list[bytes], size: int) -> list[object]:
    """Feed ``chunks`` as a session would: accept every put; merge body data."""
    events: list[object] = []
    for chunk in chunks:
        pending = conn.receive(chunk)
        while pending:
            event = pending.pop(0)
            if isinstance(event, Request) and event.action == "put":
                pending = conn.expect_body(size) + pending
            if isinstance(event, BodyData) and events and isinstance(events[-1], BodyData):
                events[-1] = BodyData(events[-1].data + event.data)
            else:
                events.append(event)
    return events


# --- object_end ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"{}",
    b'  \n{"a": 1}',
    b'{"a": {"b": {"c": []}}}',
    b'{"a": "}"}',
    b'{"a": "{{{"}',
    b'{"a": "\\"}"}',
    b'{"a": "\\\\"}',
    '{"filename": "файл}{.txt"}'.encode(),
])
def test_ftp_object_end_finds_end_of_first_object(raw: bytes) -> None:
    assert ftp.object_end(raw + b'{"next": 1}') == len(raw)
    assert json.loads(raw[: ftp.object_end(raw)]) is not None


@pytest.mark.parametrize("raw", [b"", b"   \n", b"{", b'{"a": "}', b'{"a": {}', b'{"a": "\\"}'])
def test_ftp_object_end_incomplete_is_none(raw: bytes) -> None:
    assert ftp.object_end(raw) is None


@pytest.mark.parametrize("raw", [b"[1]", b"hello", b'  "a"', b"}"])
def test_ftp_object_end_not_an_object_is_bad_request(raw: bytes) -> None:
    with pytest.raises(FtpError) as caught:
        ftp.object_end(raw)
    assert caught.value.status == ftp.BAD_REQUEST


# --- FtpServerConnection: requests ----------------------------------------------------


def test_ftp_connection_request_three_ways(way) -> None:
    get = b'{"action": "get", "filename": "a"}'
    conn = FtpServerConnection()
    assert drive(conn, way.chunks(LIST, get[:7]), 0) == [Request({"action": "list"})]
    rest = get[len(way.leftover(get[:7])) :]
    assert conn.receive(rest) == [Request({"action": "get", "filename": "a"})]


def test_ftp_connection_glued_requests_all_parsed() -> None:
    events = FtpServerConnection().receive(LIST + b"\n" + LIST)
    assert events == [Request({"action": "list"})] * 2


@pytest.mark.parametrize("garbage", [
    b"hello\n", b"[1, 2]", b'{"a": }', b'{"a": "\xff"}', b"\x00\x01",
])
def test_ftp_connection_garbage_is_bad_request_then_next_feed_parsed(garbage: bytes) -> None:
    conn = FtpServerConnection()
    events = conn.receive(garbage)
    assert len(events) == 1 and isinstance(events[0], BadRequest)
    assert events[0].error.status == ftp.BAD_REQUEST
    assert conn.receive(LIST) == [Request({"action": "list"})]


def test_ftp_decode_request_refuses_json_that_is_not_an_object() -> None:
    with pytest.raises(FtpError):
        ftp.decode_request(b"[]")
    assert ftp.decode_request(b'{"action": "list"}') == {"action": "list"}


def test_ftp_connection_incomplete_request_over_cap_is_bad_request() -> None:
    conn = FtpServerConnection()
    head = b'{"filename": "' + b"x" * (MAX_REQUEST - 14)
    assert len(head) == MAX_REQUEST
    assert conn.receive(head) == []  # at the cap: still waiting
    events = conn.receive(b"x")
    assert len(events) == 1 and isinstance(events[0], BadRequest)
    assert conn.receive(LIST) == [Request({"action": "list"})]


@pytest.mark.parametrize(("size", "accepted"), [(MAX_REQUEST, True), (MAX_REQUEST + 1, False)])
def test_ftp_connection_complete_request_size_cap(size: int, accepted: bool) -> None:
    raw = b'{"a": "' + b"x" * (size - 9) + b'"}'
    assert len(raw) == size
    (event,) = FtpServerConnection().receive(raw)
    assert isinstance(event, Request) is accepted


# --- FtpServerConnection: upload bodies -----------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000])
def test_ftp_connection_put_body_three_ways(size: int, way) -> None:
    body = (b"0123456789" * 100)[:size]
    request = put_request(size)
    events = drive(FtpServerConnection(), way.chunks(request + body, LIST), size)
    expected = [Request(json.loads(request))] + ([BodyData(body)] if size else []) + [BodyEnd()]
    if way.leftover(LIST):
        expected.append(Request({"action": "list"}))
    assert events == expected


def test_ftp_connection_body_bytes_are_not_parsed_as_requests() -> None:
    body = LIST + b"garbage"
    request = put_request(len(body))
    conn = FtpServerConnection()
    assert conn.receive(request + body) == [Request(json.loads(request))]
    assert conn.expect_body(len(body)) == [BodyData(body), BodyEnd()]
    assert conn.state is ftp.State.AWAIT_REQUEST


def test_ftp_connection_body_split_across_feeds() -> None:
    conn = FtpServerConnection()
    conn.receive(put_request(6) + b"ab")
    assert conn.expect_body(6) == [BodyData(b"ab")]
    assert conn.state is ftp.State.RECEIVING_BODY
    events = conn.receive(b"cdef" + LIST)
    assert events == [BodyData(b"cdef"), BodyEnd(), Request({"action": "list"})]


def test_ftp_connection_resume_after_refused_put() -> None:
    conn = FtpServerConnection()
    assert conn.receive(put_request(5) + LIST) == [Request(json.loads(put_request(5)))]
    assert conn.resume() == [Request({"action": "list"})]
    assert conn.state is ftp.State.AWAIT_REQUEST


# --- FtpServerConnection: the transition table --------------------------------------


def reach(state: State) -> FtpServerConnection:
    """A connection brought to ``state`` by a client's bytes and the session's verdict."""
    conn = FtpServerConnection()
    if state is not State.AWAIT_REQUEST:
        conn.receive(put_request(5))
    if state is State.RECEIVING_BODY:
        conn.expect_body(5)
    assert conn.state is state
    return conn


# The client's bytes that cause each trigger (in the one state where they do).
CLIENT_BYTES = {Trigger.REQUEST: LIST, Trigger.BAD_REQUEST: b"[1]", Trigger.PUT: put_request(5),
                Trigger.BODY_END: b"12345"}

# The session's verdicts on a put.
VERDICTS = {Trigger.ACCEPT: lambda conn: conn.expect_body(5),
            Trigger.REFUSE: lambda conn: conn.resume()}


def test_ftp_transitions_table_covers_every_state_and_trigger() -> None:
    assert {state for state, _ in TRANSITIONS} == set(TRANSITIONS.values()) == set(State)
    assert {trigger for _, trigger in TRANSITIONS} == set(Trigger) == {*CLIENT_BYTES, *VERDICTS}


@pytest.mark.parametrize(("state", "trigger"), [pair for pair in TRANSITIONS
                                                if pair[1] in CLIENT_BYTES])
def test_ftp_client_bytes_move_along_the_table(state: State, trigger: Trigger) -> None:
    conn = reach(state)
    assert conn.receive(CLIENT_BYTES[trigger])
    assert conn.state is TRANSITIONS[(state, trigger)]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("verdict", list(VERDICTS))
def test_ftp_verdicts_move_only_along_the_table(state: State, verdict: Trigger) -> None:
    conn = reach(state)
    if (state, verdict) in TRANSITIONS:
        VERDICTS[verdict](conn)
        assert conn.state is TRANSITIONS[(state, verdict)]
    else:  # a verdict without a put waiting for one is the session's bug
        with pytest.raises(LocalProtocolError):
            VERDICTS[verdict](conn)
        assert conn.state is state


def test_ftp_connection_holds_what_follows_a_put_until_the_verdict() -> None:
    conn = reach(State.AWAIT_VERDICT)
    assert conn.receive(LIST) == []  # a file's bytes or a request: not known yet
    assert conn.state is State.AWAIT_VERDICT
    assert conn.resume() == [Request({"action": "list"})]


# --- names and put requests ---------------------------------------------------------


@pytest.mark.parametrize("name", [
    "a.txt", "файл.txt", "日本語", "emoji-🎉", ".bashrc", "...", "..a", "a b", "x" * 255,
    "é" * 127, PARTIAL_PREFIX[:-1],
])
def test_ftp_check_filename_accepts(name: str) -> None:
    assert ftp.check_filename(name) == name


@pytest.mark.parametrize("name", [
    "", ".", "..", "a/b", "/etc/passwd", "../up", "a\x00b", "x" * 256, "é" * 128,
    "..\\..\\win", "a\\b",
    PARTIAL_PREFIX + "abc", "\udcff", None, 5, b"a.txt", ["a"],
])
def test_ftp_check_filename_refuses(name: object) -> None:
    with pytest.raises(FtpError) as caught:
        ftp.check_filename(name)
    assert caught.value.status == ftp.BAD_REQUEST


@pytest.mark.parametrize(("fields", "parsed"), [
    ({"filename": "a", "filesize": 0}, PutRequest("a", 0, None)),
    ({"filename": "a", "filesize": 100, "sha256": SHA}, PutRequest("a", 100, SHA)),
    ({"filename": "a", "filesize": 1000}, PutRequest("a", 1000, None)),
])
def test_ftp_parse_put_accepts(fields: dict, parsed: PutRequest) -> None:
    assert ftp.parse_put(fields, max_size=1000) == parsed


@pytest.mark.parametrize(("fields", "status"), [
    ({"filename": "a", "filesize": -1}, ftp.BAD_REQUEST),
    ({"filename": "a", "filesize": True}, ftp.BAD_REQUEST),
    ({"filename": "a", "filesize": "10"}, ftp.BAD_REQUEST),
    ({"filename": "a", "filesize": 1.5}, ftp.BAD_REQUEST),
    ({"filename": "a"}, ftp.BAD_REQUEST),
    ({"filename": "a", "filesize": 1001}, ftp.TOO_LARGE),
    ({"filename": "a", "filesize": 1, "sha256": SHA.upper()}, ftp.BAD_REQUEST),
    ({"filename": "a", "filesize": 1, "sha256": SHA[:-1]}, ftp.BAD_REQUEST),
    ({"filename": "a", "filesize": 1, "sha256": 5}, ftp.BAD_REQUEST),
    ({"filename": "../a", "filesize": 1}, ftp.BAD_REQUEST),
])
def test_ftp_parse_put_refuses(fields: dict, status: int) -> None:
    with pytest.raises(FtpError) as caught:
        ftp.parse_put(fields, max_size=1000)
    assert caught.value.status == status


# --- answers ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "файл\n", "undecodable-\udcff"])
def test_ftp_answer_is_one_json_line(name: str) -> None:
    line = ftp.answer(ftp.CREATED, filename=name)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert json.loads(line) == {"status": 201, "filename": name}


def test_ftp_error_answer_carries_status_and_message() -> None:
    assert json.loads(FtpError(404, "no such file").answer()) == {
        "status": 404, "message": "no such file"}


@pytest.mark.parametrize(("kind", "status", "fault"), [
    (RequestRefused, ftp.NOT_FOUND, RemoteProtocolError),
    (ServerFailed, ftp.INSUFFICIENT_STORAGE, LocalProtocolError),
])
def test_ftp_error_kinds_say_whose_fault(kind: type[FtpError], status: int,
                                         fault: type[ProtocolError]) -> None:
    error = kind(status, "why")
    assert isinstance(error, FtpError) and isinstance(error, fault)
    assert json.loads(error.answer()) == {"status": status, "message": "why"}


@pytest.mark.parametrize(("kind", "status"), [
    (RequestRefused, ftp.SERVER_ERROR), (ServerFailed, ftp.BAD_REQUEST), (FtpError, ftp.OK)])
def test_ftp_error_kind_refuses_a_status_of_the_other_kind(kind: type[FtpError],
                                                           status: int) -> None:
    with pytest.raises(ValueError):
        kind(status, "why")


def test_ftp_answer_reader_three_ways(way) -> None:
    line = ftp.answer(ftp.OK, files=[{"name": "é", "size": 1}])
    trailer = b'{"status": 4'
    reader = AnswerReader()
    answers = []
    for chunk in way.chunks(line, trailer):
        reader.feed(chunk)
        while (fields := reader.next_answer()) is not None:
            answers.append(fields)
    assert answers == [{"status": 200, "files": [{"name": "é", "size": 1}]}]
    assert bytes(reader.buffer) == way.leftover(trailer)


def test_ftp_answer_reader_line_cap() -> None:
    reader = AnswerReader(max_line=10)
    reader.feed(b"x" * 10)
    assert reader.next_line() is None
    reader.feed(b"x")
    with pytest.raises(RemoteProtocolError):
        reader.next_line()


@pytest.mark.parametrize("line", [b"not json\n", b"[1]\n", b'{"message": "hi"}\n', b"\xff\n"])
def test_ftp_answer_reader_refuses_non_answers(line: bytes) -> None:
    reader = AnswerReader()
    reader.feed(line)
    with pytest.raises(RemoteProtocolError):
        reader.next_answer()


# --- bytes beyond filesize ----------------------------------------------------------


@pytest.mark.parametrize(("extra", "after"), [
    (LIST, Request), (b"not a request", BadRequest), (b"\x00" * 5000, BadRequest)])
def test_ftp_connection_bytes_beyond_filesize_are_never_body(extra: bytes, after: type) -> None:
    body = b"0123456789"
    conn = FtpServerConnection()
    conn.receive(put_request(len(body)))
    assert conn.expect_body(len(body)) == []
    events = conn.receive(body[:-1]) + conn.receive(body[-1:] + extra)  # last byte + extra
    assert b"".join(e.data for e in events if isinstance(e, BodyData)) == body
    assert [type(e) for e in events[events.index(BodyEnd()) + 1 :]] == [after]
    assert conn.state is ftp.State.AWAIT_REQUEST


# --- the documented status table ----------------------------------------------------


def test_ftp_every_error_status_is_documented() -> None:
    """docs/protocols.md's ftp-server table names every 4xx/5xx the server can send."""
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text()
    section = docs.split("## ftp-server", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split("|")[1] for row in section.splitlines() if row.startswith("| ")]
    documented = {int(code) for cell in first_cells for code in cell.split(",")
                  if code.strip().isdigit()}
    statuses = {value for name, value in vars(ftp).items()
                if name.isupper() and isinstance(value, int) and 400 <= value < 600}
    assert statuses <= documented, sorted(statuses - documented)
