"""Token challenge–response of exec's handshake and framed ports, without I/O.

When the exec server has a token (``SOCKLAB_EXEC_TOKEN``), the first thing it
sends on the handshake and framed ports is a challenge: a nonce of 32
random bytes, new for every connection. The client proves it knows the token without sending it::

    proof = HMAC-SHA256(key=token, message=context + b"|" + nonce_hex)

``token`` is the UTF-8 of the token with surrounding white space removed,
``nonce_hex`` the challenge's 64 lower-case hex digits as sent, ``context``
names the framing: ``socklab-exec/handshake`` (the handshake port) or
``socklab-exec/framed`` (the framed port), so a proof made for one port is
worthless on the other; the nonce makes it worthless on any other
connection. The server compares with ``hmac.compare_digest``. Nothing is run
before a proof is accepted; a wrong proof gets a refusal with the reason,
then the connection is closed.

Each port writes the three messages its own way:

- handshake port, ASCII lines: ``Challenge|<hex>\\n``; ``Proof|<hex>\\n``;
  ``Auth|ok\\n`` or ``Auth|denied|<reason>\\n``.
- framed port, one JSON object per length-prefixed frame: ``{"challenge": HEX}``;
  ``{"proof": HEX}``; ``{"auth": "ok"}`` or ``{"auth": "denied", "error": REASON}``.

Bytes that follow the proof (a client that did not wait for ``Auth|ok``) are
the connection's first command, once the proof is accepted.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

from socklab.protocol.errors import LocalProtocolError, RemoteProtocolError
from socklab.protocol.framing import FrameDecoder, encode_frame
from socklab.protocol.jsonobj import parse_object

# The environment variable that holds the token, on the server and on clients.
TOKEN_VARIABLE = "SOCKLAB_EXEC_TOKEN"

# A token shorter than this is refused at start: 16 bytes of random text are
# far beyond guessing over a network, fewer invite "secret" or "labtoken".
MIN_TOKEN_BYTES = 16

# 32 random bytes: a nonce never repeats, so no proof can be replayed.
NONCE_BYTES = 32

# The longest auth message either side reads: a proof is under 100 bytes and
# a refusal's reason is cut to MAX_REASON characters, so 1 KiB holds any
# honest message and bounds what a peer can make the other buffer.
MAX_AUTH_MESSAGE = 1024
MAX_REASON = 200

HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class TokenError(ValueError):
    """The configured token cannot be used (too short)."""


class AuthDenied(RemoteProtocolError):
    """The server refused the proof (or wanted one the client did not give)."""


def load_token(value: str | None, source: str = TOKEN_VARIABLE) -> bytes | None:
    """The token as HMAC key; ``None`` when unset or empty (authentication off).

    ``source`` names where the value came from, for the error message.
    """
    token = (value or "").strip().encode("utf-8")
    if not token:
        return None
    if len(token) < MIN_TOKEN_BYTES:
        raise TokenError(f"the token in {source} is {len(token)} bytes long; use at least "
                         f"{MIN_TOKEN_BYTES} (e.g. the output of: openssl rand -hex 16)")
    return token


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def compute_proof(token: bytes, context: bytes, nonce_hex: str) -> str:
    """The hex HMAC a client sends for ``nonce_hex`` on the port named by ``context``."""
    message = context + b"|" + nonce_hex.encode("ascii")
    return hmac.new(token, message, hashlib.sha256).hexdigest()


def proof_matches(token: bytes, context: bytes, nonce_hex: str, proof_hex: str) -> bool:
    expected = compute_proof(token, context, nonce_hex)
    return hmac.compare_digest(expected.encode(), proof_hex.lower().encode())


# --- How each port writes the messages ---------------------------------------


class AuthFraming:
    """The three auth messages as one port writes them; subclasses fill in the format."""

    context: ClassVar[bytes]

    def reader(self) -> MessageReader:
        """Reads the server's messages (challenge, verdict) on the client."""
        raise NotImplementedError

    def proof_reader(self) -> MessageReader:
        """Reads the client's proof on the server."""
        return self.reader()

    def challenge(self, nonce_hex: str) -> bytes:
        raise NotImplementedError

    def proof(self, proof_hex: str) -> bytes:
        raise NotImplementedError

    def accepted(self) -> bytes:
        raise NotImplementedError

    def denied(self, reason: str) -> bytes:
        raise NotImplementedError

    def parse_challenge(self, message: bytes) -> str:
        raise NotImplementedError

    def parse_proof(self, message: bytes) -> str:
        raise NotImplementedError

    def parse_verdict(self, message: bytes) -> None:
        """Return when the server said ok; raise ``AuthDenied`` with its reason otherwise."""
        raise NotImplementedError

    def is_challenge(self, message: bytes) -> bool:
        """Whether ``message`` (e.g. what a client expected to be a reply) is a challenge."""
        try:
            self.parse_challenge(message)
        except RemoteProtocolError:
            return False
        return True


class MessageReader:
    """Cuts one port's auth messages out of a byte stream and keeps what follows."""

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def next_message(self) -> bytes | None:
        """One complete message, or ``None`` for "need more"."""
        raise NotImplementedError

    def rest(self) -> bytes:
        """The bytes received after the last message returned."""
        raise NotImplementedError


class LineReader(MessageReader):
    """``\\n``-terminated lines, at most ``MAX_AUTH_MESSAGE`` bytes each.

    With ``expect``, a line that does not start so is refused as soon as its
    first bytes differ: a client that sends a command instead of a proof (and
    no newline, as the tutorial's does) hears why at once.
    """

    def __init__(self, expect: bytes = b"") -> None:
        self._buffer = bytearray()
        self.expect = expect

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> bytes | None:
        start = bytes(self._buffer[: len(self.expect)])
        if not self.expect.startswith(start):
            raise RemoteProtocolError(f"expected {self.expect.decode()}<64 hex digits>, "
                                      f"got {start!r}…")
        end = self._buffer.find(b"\n", 0, MAX_AUTH_MESSAGE + 1)
        if end < 0:
            if len(self._buffer) > MAX_AUTH_MESSAGE:
                raise RemoteProtocolError(f"no end of line in {MAX_AUTH_MESSAGE} bytes")
            return None
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        return line

    def rest(self) -> bytes:
        return bytes(self._buffer)


class FrameReader(MessageReader):
    """Length-prefixed frames of at most ``MAX_AUTH_MESSAGE`` bytes."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder(MAX_AUTH_MESSAGE)
        self._received = bytearray()  # the decoder's leftover is the tail of this

    def feed(self, data: bytes) -> None:
        self._decoder.feed(data)
        self._received += data

    def next_message(self) -> bytes | None:
        return self._decoder.next_frame()

    def rest(self) -> bytes:
        return bytes(self._received[len(self._received) - self._decoder.buffered :])


class LineFraming(AuthFraming):
    """The handshake port: ASCII lines, ``|`` between fields, like ``Ready|<n>``."""

    context = b"socklab-exec/handshake"

    def reader(self) -> MessageReader:
        return LineReader()

    def proof_reader(self) -> MessageReader:
        return LineReader(expect=b"Proof|")

    def challenge(self, nonce_hex: str) -> bytes:
        return f"Challenge|{nonce_hex}\n".encode()

    def proof(self, proof_hex: str) -> bytes:
        return f"Proof|{proof_hex}\n".encode()

    def accepted(self) -> bytes:
        return b"Auth|ok\n"

    def denied(self, reason: str) -> bytes:
        return f"Auth|denied|{_one_line(reason)}\n".encode()

    def parse_challenge(self, message: bytes) -> str:
        return _hex_field(message, "Challenge")

    def parse_proof(self, message: bytes) -> str:
        return _hex_field(message, "Proof")

    def parse_verdict(self, message: bytes) -> None:
        text = message.decode("utf-8", "replace")
        if text == "Auth|ok":
            return
        prefix = "Auth|denied|"
        reason = text[len(prefix):] if text.startswith(prefix) else f"unexpected answer {text!r}"
        raise AuthDenied(f"the server refused the token: {reason}")


class JsonFraming(AuthFraming):
    """The framed port: one JSON object per frame, like the requests and replies."""

    context = b"socklab-exec/framed"

    def reader(self) -> MessageReader:
        return FrameReader()

    def challenge(self, nonce_hex: str) -> bytes:
        return _json_frame({"challenge": nonce_hex})

    def proof(self, proof_hex: str) -> bytes:
        return _json_frame({"proof": proof_hex})

    def accepted(self) -> bytes:
        return _json_frame({"auth": "ok"})

    def denied(self, reason: str) -> bytes:
        return _json_frame({"auth": "denied", "error": _one_line(reason)})

    def parse_challenge(self, message: bytes) -> str:
        return _hex_value(message, "challenge")

    def parse_proof(self, message: bytes) -> str:
        return _hex_value(message, "proof")

    def parse_verdict(self, message: bytes) -> None:
        fields = parse_object(message, "the server's answer")
        if fields.get("auth") == "ok":
            return
        reason = fields.get("error") if fields.get("auth") == "denied" else None
        raise AuthDenied(f"the server refused the token: {reason or f'unexpected {fields!r}'}")


FRAMINGS: dict[str, AuthFraming] = {"handshake": LineFraming(), "framed": JsonFraming()}


def _one_line(text: str) -> str:
    """A refusal's reason: one line, at most ``MAX_REASON`` characters."""
    return " ".join(text.split())[:MAX_REASON]


def _hex_field(message: bytes, name: str) -> str:
    fields = message.decode("ascii", "replace").split("|")
    if len(fields) != 2 or fields[0] != name or not HEX_DIGEST.fullmatch(fields[1]):
        raise RemoteProtocolError(f"expected {name}|<64 hex digits>, got {message[:80]!r}")
    return fields[1]


def _json_frame(fields: dict[str, Any]) -> bytes:
    return encode_frame(json.dumps(fields).encode())


def _hex_value(message: bytes, name: str) -> str:
    value = parse_object(message, f"the {name} message").get(name)
    if not isinstance(value, str) or not HEX_DIGEST.fullmatch(value):
        raise RemoteProtocolError(f'expected {{"{name}": "<64 hex digits>"}}, '
                                  f"got {message[:80]!r}")
    return value


# --- The server's side -------------------------------------------------------


class State(enum.Enum):
    AWAIT_PROOF = "await-proof"
    ACCEPTED = "accepted"
    DENIED = "denied"


class Event(enum.Enum):
    GOOD_PROOF = "good-proof"
    BAD_PROOF = "bad-proof"


# One proof per connection: accepted for good, or refused and closed.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.AWAIT_PROOF, Event.GOOD_PROOF): State.ACCEPTED,
    (State.AWAIT_PROOF, Event.BAD_PROOF): State.DENIED,
}


@dataclass(frozen=True)
class Accepted:
    """The proof is right: send ``answer``, then treat ``rest`` as the first command bytes."""

    answer: bytes
    rest: bytes


@dataclass(frozen=True)
class Denied:
    """The proof is wrong or malformed: send ``answer`` and close."""

    answer: bytes
    reason: str


class ServerAuth:
    """The server's half: a challenge out, one proof in, a verdict."""

    def __init__(self, token: bytes, framing: AuthFraming, nonce_hex: str | None = None) -> None:
        self.token = token
        self.framing = framing
        self.nonce_hex = nonce_hex or new_nonce()
        self.state = State.AWAIT_PROOF
        self._reader = framing.proof_reader()

    def challenge(self) -> bytes:
        return self.framing.challenge(self.nonce_hex)

    def receive(self, data: bytes) -> Accepted | Denied | None:
        """Take bytes from the client; ``None`` until a whole proof message is in."""
        if self.state is not State.AWAIT_PROOF:
            raise LocalProtocolError(f"no more input expected in state {self.state.value}")
        self._reader.feed(data)
        try:
            message = self._reader.next_message()
            if message is None:
                return None
            proof = self.framing.parse_proof(message)
        except RemoteProtocolError as error:
            return self._deny(str(error))
        if not proof_matches(self.token, self.framing.context, self.nonce_hex, proof):
            return self._deny("the proof does not match the server's token")
        self.state = TRANSITIONS[(self.state, Event.GOOD_PROOF)]
        return Accepted(self.framing.accepted(), self._reader.rest())

    def _deny(self, reason: str) -> Denied:
        self.state = TRANSITIONS[(self.state, Event.BAD_PROOF)]
        return Denied(self.framing.denied(reason), reason)


# --- The client's side -------------------------------------------------------


class ClientAuth:
    """The client's half: read the challenge, answer it, read the verdict."""

    def __init__(self, token: bytes, framing: AuthFraming) -> None:
        self.token = token
        self.framing = framing
        self.reader = framing.reader()

    def answer(self, challenge_message: bytes) -> bytes:
        """The proof message to send for this challenge message."""
        nonce_hex = self.framing.parse_challenge(challenge_message)
        return self.framing.proof(compute_proof(self.token, self.framing.context, nonce_hex))

    def verdict(self, message: bytes) -> None:
        self.framing.parse_verdict(message)
