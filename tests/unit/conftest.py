"""Fakes and fixtures shared by the unit tests: no Docker, no network beyond 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from socklab.runner import CommandResult

# A test that waits on a socket fails after this long instead of hanging the suite.
IO_TIMEOUT = 5.0


@dataclass
class FakeRunner:
    """Stands in for ``socklab.runner.CommandRunner``: answers from a table, records commands."""

    cwd: Path = Path("/srv/lab")
    results: dict[bytes, CommandResult] = field(default_factory=dict)
    commands: list[bytes] = field(default_factory=list)

    def run(self, command: bytes) -> CommandResult:
        self.commands.append(command)
        return self.results.get(command, CommandResult(127, b"", b"sh: 1: not found\n"))


@pytest.fixture
def fake_runner() -> FakeRunner:
    return FakeRunner(results={
        b"ls": CommandResult(0, b"a.txt\nb.txt\n", b""),
        b"true": CommandResult(0, b"", b""),
        b"warn": CommandResult(0, b"out\n", b"err\n"),
        b"fail": CommandResult(2, b"", b"boom\n"),
        b"big": CommandResult(0, b"x" * 100_000, b""),
    })


@dataclass(frozen=True)
class Way:
    """One of the three ways a decoder is fed: whole, a byte at a time, or with a trailer."""

    name: str

    def chunks(self, message: bytes, trailer: bytes) -> list[bytes]:
        if self.name == "whole":
            return [message]
        if self.name == "bytewise":
            return [message[i : i + 1] for i in range(len(message))]
        return [message + trailer]

    def leftover(self, trailer: bytes) -> bytes:
        """What the decoder must still hold once the message is out."""
        return trailer if self.name == "trailing" else b""


@pytest.fixture(params=["whole", "bytewise", "trailing"])
def way(request: pytest.FixtureRequest) -> Way:
    return Way(request.param)


class Background:
    """Threads a test starts; joined at teardown, and their exceptions re-raised."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, target: Callable[..., object], *args: object) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as error:  # handed to the test thread by join()
                self.errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def join(self, timeout: float = IO_TIMEOUT) -> None:
        for thread in self.threads:
            thread.join(timeout)
            if thread.is_alive():
                frame = sys._current_frames().get(thread.ident or 0)
                stack = "".join(traceback.format_stack(frame)) if frame else "?"
                raise AssertionError(f"a background thread did not finish:\n{stack}")
        self.threads.clear()
        if self.errors:
            raise self.errors.pop(0)


@pytest.fixture
def background() -> Iterator[Background]:
    threads = Background()
    yield threads
    threads.join()


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("socklab.test")


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """``(server end, client end)`` of a connected AF_UNIX stream pair, closed afterwards."""
    server, client = socket.socketpair()
    client.settimeout(IO_TIMEOUT)
    with server, client:
        yield server, client
