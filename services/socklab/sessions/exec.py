"""The exec server's three framings over one command runner.

- ``NaiveExec`` (port 9000): each chunk is a command; the reply has no framing.
- ``HandshakeExec`` (port 9001): ``Ready|<n>|<status>``, wait for ``start``.
- ``FramedExec`` (port 9002): length-prefixed JSON request and reply frames.
"""

from __future__ import annotations

from collections.abc import Iterator

from socklab.protocol import exec_framed, handshake
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import MAX_REQUEST_FRAME, FrameDecoder, FrameTooLarge
from socklab.runner import CommandRunner
from socklab.sessions import Session

NAIVE_BANNER = b"Welcome to socklab exec-server (naive port): every chunk you send is a command.\n"


class NaiveExec(Session):
    """The tutorial's "call centre": reply bytes with no length and no delimiter."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def greeting(self) -> bytes:
        return NAIVE_BANNER

    def feed(self, data: bytes) -> list[bytes]:
        result = self.runner.run(data)
        return [result.output or f"current directory is {self.runner.cwd}\n".encode()]


class HandshakeExec(Session):
    """Announce the size, wait for ``start``, then send exactly that many bytes."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self.protocol = handshake.HandshakeServer()

    def feed(self, data: bytes) -> Iterator[bytes]:
        for event in self.protocol.receive(data):
            if isinstance(event, handshake.SendOutput):
                yield event.data
            else:
                result = self.runner.run(event.line)
                yield self.protocol.ready(result.output, result.status)


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

    def _answer(self, payload: bytes) -> list[bytes]:
        try:
            command = exec_framed.decode_request(payload)
        except RemoteProtocolError as error:
            return _error_reply(str(error))
        result = self.runner.run(command)
        reply = exec_framed.ExecReply(result.status, result.stdout, result.stderr,
                                      result.truncated, result.timed_out)
        return reply.encode()


def _error_reply(message: str) -> list[bytes]:
    return exec_framed.ExecReply(None, b"", b"", error=message).encode()
