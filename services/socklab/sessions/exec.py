"""The exec server's three framings over one command runner.

- ``NaiveExec`` (the naive port): each chunk is a command; the reply has no framing.
- ``HandshakeExec`` (the handshake port): ``Ready|<n>|<status>[|<flag>…]``, wait for ``start``.
- ``FramedExec`` (the framed port): length-prefixed JSON request and reply frames.
- ``Authenticated``: the handshake or framed port behind the token's challenge–response.

A command's result holds a command slot (see ``socklab.runner``) until its
output has been sent: the sessions release it when the last slice is handed
to the loop, when the output is dropped, or when the connection closes.
Outputs go out in slices, so the loop never copies a whole one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from socklab.protocol import exec_framed, handshake
from socklab.protocol.auth import AuthFraming, Denied, ServerAuth
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import MAX_REQUEST_FRAME, FrameDecoder, FrameTooLarge
from socklab.registry import NAIVE_BANNER
from socklab.runner import CommandResult, CommandRunner
from socklab.sessions import FLUSH, Session

# Outputs are handed to the loop in pieces this big: the loops gather small
# chunks into 64 KiB writes, so a piece is copied once into that buffer and a
# 32 MiB output is never copied whole.
REPLY_SLICE = 64 << 10

# A wrong proof waits this long for its refusal. The token is long enough
# that guessing is hopeless anyway; this keeps a guessing loop slow and loud.
FAILED_PROOF_DELAY = 1.0


def slices(data: bytes, size: int = REPLY_SLICE) -> Iterator[bytes]:
    """``data`` in pieces of at most ``size`` bytes; nothing for empty data."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class NaiveExec(Session):
    """The tutorial's "call centre": reply bytes with no length and no delimiter."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def greeting(self) -> bytes:
        return NAIVE_BANNER

    def feed(self, data: bytes) -> Iterator[bytes]:
        with self.runner.run(data) as result:
            yield from slices(result.output or f"current directory is {self.runner.cwd}\n".encode())


def ready_flags(result: CommandResult) -> list[str]:
    """The flags of a result's ``Ready`` header, in the documented order."""
    flags = ((handshake.TRUNCATED, result.truncated), (handshake.TIMED_OUT, result.timed_out),
             (handshake.BUSY, result.busy))
    return [flag for flag, raised in flags if raised]


class HandshakeExec(Session):
    """Announce the size, wait for ``start``, then send exactly that many bytes."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self.protocol = handshake.HandshakeServer()
        self._held: CommandResult | None = None  # the output waiting for "start"

    def feed(self, data: bytes) -> Iterator[bytes]:
        for event in self.protocol.receive(data):
            if isinstance(event, handshake.SendOutput):
                try:
                    yield from slices(event.data)
                finally:
                    self._drop_held()
            else:
                self._drop_held()  # anything but "start" cancels the waiting output
                result = self._held = self.runner.run(event.line)
                yield self.protocol.ready(result.output, result.status, ready_flags(result))

    def _drop_held(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    def close(self) -> None:
        self._drop_held()


class FramedExec(Session):
    """Length-prefixed JSON: exit status, stdout and stderr apart, no extra round trip."""

    def __init__(self, runner: CommandRunner, max_frame: int = MAX_REQUEST_FRAME) -> None:
        self.runner = runner
        self.decoder = FrameDecoder(max_frame)

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.decoder.feed(data)
        while not self.finished:
            try:
                payload = self.decoder.next_frame()
            except FrameTooLarge as error:
                self.finished = True  # the stream cannot be resynchronised
                yield from _error_reply(str(error))
                return
            if payload is None:
                return
            yield from self._answer(payload)

    def _answer(self, payload: bytes) -> Iterator[bytes]:
        try:
            command = exec_framed.decode_request(payload)
        except RemoteProtocolError as error:
            yield from _error_reply(str(error))
            return
        with self.runner.run(command) as result:
            for chunk in _framed_reply(result).chunks():
                yield from slices(chunk)


def _framed_reply(result: CommandResult) -> exec_framed.ExecReply:
    if result.busy:
        message = result.stderr.decode("utf-8", "replace").strip()
        return exec_framed.ExecReply(None, b"", b"", error=message, busy=True)
    return exec_framed.ExecReply(result.status, result.stdout, result.stderr, result.truncated,
                                 result.timed_out)


def _error_reply(message: str) -> list[bytes]:
    return exec_framed.ExecReply(None, b"", b"", error=message).encode()


class Authenticated(Session):
    """A framing behind the token: challenge first, one proof, then ``inner`` as usual.

    Nothing reaches ``inner`` (so no command runs) before the proof is
    accepted; a wrong proof gets the refusal and the connection is closed.
    """

    def __init__(self, inner: Session, token: bytes, framing: AuthFraming,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self.inner = inner
        self.auth = ServerAuth(token, framing)
        self.sleep = sleep
        self.accepted = False

    def greeting(self) -> bytes:
        return self.auth.challenge()

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.accepted:
            yield from self._inner_feed(data)
            return
        verdict = self.auth.receive(data)
        if verdict is None:
            return
        if isinstance(verdict, Denied):
            self.sleep(FAILED_PROOF_DELAY)
            self.finished = True
            yield verdict.answer
            return
        self.accepted = True
        yield verdict.answer
        yield FLUSH  # the verdict goes out alone: a Ready header stays one chunk
        if greeting := self.inner.greeting():
            yield greeting
        if verdict.rest:
            yield from self._inner_feed(verdict.rest)

    def _inner_feed(self, data: bytes) -> Iterator[bytes]:
        try:
            yield from self.inner.feed(data)
        finally:
            self.finished = self.inner.finished

    def close(self) -> None:
        self.inner.close()
