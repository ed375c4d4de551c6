"""Echo sessions: the upper-case echo of tcp/select/epoll and Twisted's plain echo."""

from __future__ import annotations

from socklab.sessions import Session


class UpperEcho(Session):
    """Answer each chunk with ``chunk.upper()`` (ASCII letters only, as bytes.upper)."""

    def __init__(self, greeting: bytes = b"") -> None:
        self._greeting = greeting

    def greeting(self) -> bytes:
        return self._greeting

    def feed(self, data: bytes) -> list[bytes]:
        return [data.upper()]


class Echo(Session):
    """Answer each chunk with itself."""

    def feed(self, data: bytes) -> list[bytes]:
        return [data]
