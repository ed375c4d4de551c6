"""The ftp-server's messages: JSON requests, JSON answers, and sized bodies.

A request is one JSON object (the tutorial sends it in one chunk; we accept
it split or glued to what follows). Every answer is one JSON object on one
line. After ``put`` is answered with status 200 the client sends exactly
``filesize`` bytes; after ``get`` is answered with 200 the server does.

``FtpServerConnection`` is the server's state machine: feed it bytes, get
``Request``/``BodyData``/``BodyEnd``/``BadRequest`` events back; its
transitions are the table ``TRANSITIONS``. Names are checked here too, so no
file system code ever sees a name that could leave the upload directory.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from socklab.protocol.body import SizedBody
from socklab.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from socklab.protocol.jsonobj import parse_object

# A request is a few short fields; the tutorial's server reads it with a single
# recv(2014). 8 KiB leaves room for long names and extra fields and bounds what
# one silent client can make us buffer.
MAX_REQUEST = 8 << 10

# An answer line, as a client buffers it (a listing of many files is longest).
MAX_ANSWER = 4 << 20

# NAME_MAX of Linux file systems: one path component is at most 255 bytes.
MAX_NAME_BYTES = 255

# Default upload limit; the server may set a lower one. Large enough for the
# 1 GiB benchmark transfer, small enough to be a limit at all.
DEFAULT_MAX_FILE_SIZE = 4 << 30

# Uploads in progress live under this prefix in the upload directory and are
# never listed, served, or accepted as a client's name.
PARTIAL_PREFIX = ".socklab-partial-"

SHA256_HEX = re.compile(r"[0-9a-f]{64}")

OK = 200
CREATED = 201
BAD_REQUEST = 400
NOT_FOUND = 404
REQUEST_TIMEOUT = 408
CONFLICT = 409
TOO_LARGE = 413
DIGEST_MISMATCH = 422
SERVER_ERROR = 500
INSUFFICIENT_STORAGE = 507


class FtpError(ProtocolError):
    """A request that gets a 4xx or 5xx answer; the connection stays usable.

    Raise one of its two kinds, which keep whose fault it is apart:
    ``RequestRefused`` (4xx) and ``ServerFailed`` (5xx).
    """

    statuses = range(400, 600)

    def __init__(self, status: int, message: str) -> None:
        if status not in self.statuses:
            raise ValueError(f"{type(self).__name__} cannot have status {status}")
        super().__init__(message)
        self.status = status
        self.message = message

    def answer(self) -> bytes:
        return answer(self.status, message=self.message)


class RequestRefused(FtpError, RemoteProtocolError):
    """A 4xx: the client asked for what cannot be done (their fault)."""

    statuses = range(400, 500)


class ServerFailed(FtpError, LocalProtocolError):
    """A 5xx: a request we should carry out and could not (our fault)."""

    statuses = range(500, 600)


def answer(status: int, **fields: Any) -> bytes:
    """Encode one answer line."""
    # ASCII escapes: a name read from disk may hold undecodable bytes (surrogates).
    return json.dumps({"status": status, **fields}).encode() + b"\n"


def object_end(buffer: bytes | bytearray) -> int | None:
    """Index just past the first complete JSON object in ``buffer``, or None.

    Scans braces outside strings. Works on UTF-8 bytes because ``{``, ``}``,
    ``"`` and ``\\`` never occur inside a multi-byte sequence.
    """
    start = len(buffer) - len(bytes(buffer).lstrip())
    if start == len(buffer):
        return None
    if buffer[start] != ord("{"):
        raise RequestRefused(BAD_REQUEST, "a request is one JSON object")
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(buffer)):
        byte = buffer[index]
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == 0x5C, byte != 0x22)
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x7D):
            depth += 1 if byte == 0x7B else -1
            if depth == 0:
                return index + 1
    return None


class State(enum.Enum):
    AWAIT_REQUEST = "await-request"
    AWAIT_VERDICT = "await-verdict"
    RECEIVING_BODY = "receiving-body"


class Trigger(enum.Enum):
    REQUEST = "request"  # a get, a list or an unknown action was read
    BAD_REQUEST = "bad-request"  # bytes that are no request, dropped
    PUT = "put"  # a put was read
    ACCEPT = "accept"  # the session answered the put 200 (expect_body)
    REFUSE = "refuse"  # the session refused the put (resume)
    BODY_END = "body-end"  # the put's filesize bytes have arrived


# Requests are read one after another, but reading stops at a put until the
# session accepts or refuses it: only then is it known whether the bytes that
# follow are a file or the next request.
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.AWAIT_REQUEST, Trigger.REQUEST): State.AWAIT_REQUEST,
    (State.AWAIT_REQUEST, Trigger.BAD_REQUEST): State.AWAIT_REQUEST,
    (State.AWAIT_REQUEST, Trigger.PUT): State.AWAIT_VERDICT,
    (State.AWAIT_VERDICT, Trigger.ACCEPT): State.RECEIVING_BODY,
    (State.AWAIT_VERDICT, Trigger.REFUSE): State.AWAIT_REQUEST,
    (State.RECEIVING_BODY, Trigger.BODY_END): State.AWAIT_REQUEST,
}


@dataclass(frozen=True)
class Request:
    fields: dict[str, Any]

    @property
    def action(self) -> str:
        return str(self.fields.get("action", ""))


@dataclass(frozen=True)
class BodyData:
    data: bytes | memoryview  # a view of the loop's buffer, valid while the event is handled


@dataclass(frozen=True)
class BodyEnd:
    pass


@dataclass(frozen=True)
class BadRequest:
    error: FtpError


Event = Request | BodyData | BodyEnd | BadRequest


class FtpServerConnection:
    """Splits the client's byte stream into requests and upload bodies."""

    def __init__(self) -> None:
        self.state = State.AWAIT_REQUEST
        self._buffer = bytearray()
        self._body: SizedBody | None = None
        # How the bytes are read in each state: each reader takes bytes, adds the
        # events they complete and returns the bytes left for the next state,
        # or None when it needs more bytes (or the session's verdict).
        self._readers = {State.AWAIT_REQUEST: self._read_requests,
                         State.AWAIT_VERDICT: self._hold, State.RECEIVING_BODY: self._read_body}

    def receive(self, data: bytes | memoryview) -> list[Event]:
        """Take bytes from the client; the events they complete."""
        events: list[Event] = []
        rest: bytes | memoryview | None = data
        while rest is not None:
            rest = self._readers[self.state](rest, events)
        return events

    @property
    def body_remaining(self) -> int:
        """Bytes of the upload body still to come (0 outside a body)."""
        return self._body.remaining if self._body is not None else 0

    def expect_body(self, size: int) -> list[Event]:
        """After answering 200 to a put: the next ``size`` bytes are the file."""
        self._move(Trigger.ACCEPT)
        self._body = SizedBody(size)
        pending = bytes(self._buffer)
        self._buffer.clear()
        return self.receive(pending)

    def resume(self) -> list[Event]:
        """After refusing a put: go on with the requests already buffered."""
        self._move(Trigger.REFUSE)
        return self.receive(b"")

    def _move(self, trigger: Trigger) -> None:
        try:
            self.state = TRANSITIONS[(self.state, trigger)]
        except KeyError:
            message = f"{trigger.value} is not allowed in {self.state.value}"
            raise LocalProtocolError(message) from None

    def _read_requests(self, data: bytes | memoryview, events: list[Event]) -> bytes | None:
        self._buffer += data
        try:
            request = self._next_request()
        except RequestRefused as error:
            self._buffer.clear()  # no telling where the next request starts
            events.append(BadRequest(error))
            self._move(Trigger.BAD_REQUEST)
            return None
        if request is None:
            return None
        events.append(request)
        self._move(Trigger.PUT if request.action == "put" else Trigger.REQUEST)
        return b""

    def _hold(self, data: bytes | memoryview, events: list[Event]) -> bytes | None:
        self._buffer += data
        return None

    def _read_body(self, data: bytes | memoryview,
                   events: list[Event]) -> bytes | memoryview | None:
        assert self._body is not None
        part, rest = self._body.feed(data)
        if part:
            events.append(BodyData(part))
        if not self._body.done:
            return None
        events.append(BodyEnd())
        self._body = None
        self._move(Trigger.BODY_END)
        return rest

    def _next_request(self) -> Request | None:
        end = object_end(self._buffer)
        if end is None:
            if len(self._buffer) > MAX_REQUEST:
                raise RequestRefused(BAD_REQUEST, f"request longer than {MAX_REQUEST} bytes")
            return None
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        return Request(decode_request(raw))


def decode_request(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_REQUEST:
        raise RequestRefused(BAD_REQUEST, f"request longer than {MAX_REQUEST} bytes")
    try:
        return parse_object(raw, "a request")
    except RemoteProtocolError as error:
        raise RequestRefused(BAD_REQUEST, str(error)) from None


def check_filename(name: object) -> str:
    """Return ``name`` if it is a plain file name; else raise a 400 ``RequestRefused``."""
    if not isinstance(name, str) or not name:
        raise RequestRefused(BAD_REQUEST, "filename must be a non-empty string")
    # A backslash is a Windows path's separator: "..\\..\\win" is not a plain name either.
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise RequestRefused(BAD_REQUEST, f"filename {name!r} is not a plain file name")
    if name.startswith(PARTIAL_PREFIX):
        raise RequestRefused(BAD_REQUEST, f"names starting with {PARTIAL_PREFIX!r} are reserved")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestRefused(BAD_REQUEST, "filename is not valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise RequestRefused(BAD_REQUEST, f"filename longer than {MAX_NAME_BYTES} bytes")
    return name


@dataclass(frozen=True)
class PutRequest:
    filename: str
    filesize: int
    sha256: str | None


def parse_put(fields: dict[str, Any], max_size: int = DEFAULT_MAX_FILE_SIZE) -> PutRequest:
    name = check_filename(fields.get("filename"))
    size = fields.get("filesize")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RequestRefused(BAD_REQUEST, "filesize must be a whole number of bytes")
    if size > max_size:
        raise RequestRefused(TOO_LARGE, f"filesize {size} exceeds the limit of {max_size} bytes")
    digest = fields.get("sha256")
    if digest is not None and not (isinstance(digest, str) and SHA256_HEX.fullmatch(digest)):
        raise RequestRefused(BAD_REQUEST, "sha256 must be 64 lower-case hex digits")
    return PutRequest(name, size, digest)


class AnswerReader:
    """The client's side: answer lines out of a byte stream, bytes after kept."""

    def __init__(self, max_line: int = MAX_ANSWER) -> None:
        self.max_line = max_line
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_line(self) -> bytes | None:
        end = self.buffer.find(b"\n")
        if end < 0:
            if len(self.buffer) > self.max_line:
                raise RemoteProtocolError(f"answer line longer than {self.max_line} bytes")
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    def next_answer(self) -> dict[str, Any] | None:
        line = self.next_line()
        if line is None:
            return None
        answer_fields = parse_object(line, f"answer {line[:80]!r}")
        if "status" not in answer_fields:
            raise RemoteProtocolError(f"answer has no status: {line[:80]!r}")
        return answer_fields
