"""The lab's own clients, run by a check the way a learner runs them: ``socklab client …``.

``conformance.tutorial-client`` of every family (the bodies are in ``echo``,
``udp``, ``exec`` and ``ftp``) runs the very command a learner types on a
client host, ``socklab client VARIANT …``, in the check's own process
(``socklab.cli.main``): its standard input holds the lines a learner would
type, its standard output and error are kept, and a deadline ends it if it
waits too long for the server. The check then judges what the client showed.

What a client shows depends on how the server's bytes were cut into
segments only where the client reads a reply of unknown length (the echo
clients read what comes until it stops for a moment); the spec leaves that
cut free, so the judges here join what was shown across prompts before
comparing. The naive exec client is left out for that reason: it shows one
``recv(1024)`` per command, whatever the reply (exercise 4's lesson).

The parts that read what was shown and judge it are pure (``screens``,
``joined``, ``ending``, ``showing``): ``tests/unit/test_grading_tutorial.py``
covers them, and the harness itself with a fake ``main``. The family modules
import this one inside their check body (it imports ``echo.Wrong``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from socklab.clients.interactive import PROMPT
from socklab.grading.echo import Wrong
from socklab.grading.verdict import compare

__all__ = ["PROMPT", "UDP_PROMPT", "Shown", "ending", "joined", "run_client", "screens",
           "showing"]

# What the lab's interactive clients write before each line they read: PROMPT, and udp's
# own (socklab.clients.interactive.udp_repl).
UDP_PROMPT = "data: "


class Deadline(Exception):
    """The client was still running when the check's deadline came (raised by SIGALRM)."""


@dataclass
class Terminal:
    """The client's stdin, stdout and stderr: typed lines in, everything written kept.

    ``events`` is the one ordered record of both directions: ``("out", text)``
    for each write to stdout, ``("in", line)`` for each line the client read.
    """

    typed: list[str]
    events: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    # stdin: what input() calls on a file that is not a terminal
    def readline(self, size: int = -1) -> str:
        line = self.typed.pop(0) + "\n" if self.typed else ""
        self.events.append(("in", line))
        return line

    # stdout
    def write(self, text: str) -> int:
        if text:
            self.events.append(("out", text))
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def stdout(self) -> str:
        return "".join(text for kind, text in self.events if kind == "out")

    @property
    def stderr(self) -> str:
        return "".join(self.errors)


class _Errors:
    """stderr of the client: written lines kept in the terminal's ``errors``."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def write(self, text: str) -> int:
        self.terminal.errors.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class Shown:
    """One run of a client: the command typed, the lines typed, what it showed, its status."""

    command: str
    typed: tuple[str, ...]
    events: tuple[tuple[str, str], ...]
    stdout: str
    stderr: str
    status: int | None  # None: stopped at the deadline, still waiting
    seconds_allowed: float

    def said(self, limit: int = 200) -> str:
        """What it showed, as a message quotes it (stdout, then stderr if any)."""
        text = _cut(self.stdout, limit)
        if self.stderr:
            text += f"; on stderr {_cut(self.stderr, limit)}"
        return text


def _cut(text: str, limit: int) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def command_line(args: Sequence[str]) -> str:
    """How a learner types the command: ``socklab client select --host … --port …``."""
    return shlex.join(["socklab", "client", *args])


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise Deadline in this thread after ``seconds`` (only the main thread has signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise Deadline

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cli_main(argv: Sequence[str]) -> int:
    from socklab.cli import main

    return main(list(argv))


def run_client(args: Sequence[str], typed: Sequence[str] = (), *, seconds: float,
               cwd: Path | None = None,
               main: Callable[[Sequence[str]], int] | None = None) -> Shown:
    """Run ``socklab client ARGS`` in this process, ``typed`` on its stdin; what it showed.

    ``cwd``: the directory it runs in (where ``socklab client ftp`` saves a get).
    ``main``: what runs the command line (``socklab.cli.main``; the tests give a fake).
    """
    main = main or _cli_main
    terminal = Terminal(list(typed))
    streams = (sys.stdin, sys.stdout, sys.stderr)
    here = os.getcwd()
    status: int | None = None
    try:
        sys.stdin = sys.stdout = terminal  # type: ignore[assignment]
        sys.stderr = _Errors(terminal)  # type: ignore[assignment]
        if cwd is not None:
            os.chdir(cwd)
        with _deadline(seconds):
            status = main(["client", *args])
    except Deadline:
        status = None
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        os.chdir(here)
    return Shown(command_line(args), tuple(typed), tuple(terminal.events), terminal.stdout,
                 terminal.stderr, status, seconds)


# --- Reading what was shown (pure) ---------------------------------------------------


def screens(events: Sequence[tuple[str, str]], prompt: str = PROMPT) -> list[str]:
    """What the client wrote before each line it read, and after the last; prompts dropped.

    ``screens(...)[0]`` is what it showed on connect (a greeting, a banner),
    ``[i]`` what it showed after the i-th line typed. The prompt is the last
    write before a read; one the server sent is never taken for it.
    """
    shown, current = [], []
    for kind, text in events:
        if kind == "in":
            if current and current[-1] == prompt:
                current.pop()
            shown.append("".join(current))
            current = []
        else:
            current.append(text)
    shown.append("".join(current))
    return shown


def unprinted(screen: str) -> str:
    """A screen without the newline ``print`` put after what it printed."""
    return screen[:-1] if screen.endswith("\n") else screen


def joined(events: Sequence[tuple[str, str]], prompt: str = PROMPT) -> str:
    """Everything the server's bytes made the client print, across prompts, in order.

    One ``print`` per screen, each without the newline it added: an answer
    that came in two pieces, the second shown after the next line typed,
    joins up again.
    """
    return "".join(unprinted(screen) for screen in screens(events, prompt))


# --- Judging it (pure) ---------------------------------------------------------------


def typed_words(typed: Sequence[str]) -> str:
    """The lines typed, as a message lists them (each cut short)."""
    return ", ".join(_cut(line, 24) for line in typed)


def ending(shown: Shown, did: str, status: int = 0, stderr: str = "") -> None:
    """Wrong unless the client ended by itself, with ``status`` and exactly ``stderr``.

    ``did``: what the learner did, as the message starts ("ran `socklab client
    …` and typed …").
    """
    if shown.status is None:
        typed = [line.rstrip("\n") for kind, line in shown.events if kind == "in"]
        after = f" after {_cut(typed[-1], 40)} was typed" if typed else ""
        raise Wrong(f"{did}; after {shown.seconds_allowed:.0f} s the client was still waiting "
                    f"for the server{after}, having shown {shown.said()}", "timeout")
    if shown.status != status or shown.stderr != stderr:
        on_stderr = f"{_cut(stderr, 80)} on stderr" if stderr else "nothing on stderr"
        raise Wrong(f"{did}; expected the client to end with exit status {status} and "
                    f"{on_stderr}; it ended with exit status {shown.status}, having shown "
                    f"{shown.said()}")


def showing(shown: Shown, did: str, what: str, expected: str, got: str) -> None:
    """Wrong unless ``got`` (read from what the client showed) is ``expected``.

    ``what`` says in words what ``expected`` is ("each line's answer").
    """
    problem = compare(expected.encode(), got.encode(), "complete")
    if problem:
        raise Wrong(f"{did}; expected it to show {what}: {_cut(expected, 80)}; {problem}. "
                    f"It showed {shown.said()}")
