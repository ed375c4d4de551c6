"""Runs one shell command for the exec server: unprivileged, time-limited, capped.

The command runs with ``/bin/sh -c`` in its own process group, in the
server's working directory, as an unprivileged user. When the time limit or
the output cap is hit, the whole process group is killed, so no grandchild
lives on; the child is always waited for, so no zombie stays behind.

Memory stays bounded: a command's output is kept up to ``EXEC_OUTPUT_CAP``
(stdout and stderr together), and at most ``EXEC_MAX_COMMANDS`` commands run or
hold their output at once (``CommandSlots``). A result keeps its slot until the
session has sent the output and calls ``release()``; a command that finds no
free slot within ``EXEC_SLOT_WAIT`` seconds is not run and comes back ``busy``.
These caps are part of the lab contract, so they live in ``socklab.registry``.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from socklab.registry import EXEC_MAX_COMMANDS, EXEC_OUTPUT_CAP, EXEC_SLOT_WAIT, EXEC_TIMEOUT

SHELL = "/bin/sh"

# Commands share the server's container and its memory limit. When they use it
# up, the kernel's OOM killer must take a command, never the server: the shell
# raises its own oom_score_adj to the maximum (no privilege needed to raise it;
# everything it starts inherits it) before it becomes the command itself.
OOM_FIRST = '{ echo 1000 >/proc/self/oom_score_adj; } 2>/dev/null; exec /bin/sh -c "$1"'

# How much one read from a pipe takes: the default pipe buffer is 64 KiB.
READ_SIZE = 64 << 10

# Exit statuses we report when the shell could not even start, as sh does.
STATUS_CANNOT_RUN = 126


class Slot:
    """One of the ``CommandSlots``, held by a result until its output is sent."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Give the slot back; later calls do nothing."""
        release, self._release = self._release, None
        if release is not None:
            release()


class CommandSlots:
    """At most ``count`` commands run or hold their output at once."""

    def __init__(self, count: int = EXEC_MAX_COMMANDS, wait: float = EXEC_SLOT_WAIT) -> None:
        if count < 1:
            raise ValueError(f"--max-commands must be at least 1, not {count}")
        self.count = count
        self.wait = wait
        self._free = threading.BoundedSemaphore(count)

    def take(self) -> Slot | None:
        """A slot, or ``None`` when none came free within ``wait`` seconds."""
        if not self._free.acquire(timeout=self.wait):
            return None
        return Slot(self._free.release)

    def busy_message(self) -> bytes:
        return (f"server busy: {self.count} commands are running or sending their output "
                f"and none finished within {self.wait:g} s; try again later\n").encode()


@dataclass(frozen=True)
class CommandResult:
    """What a command did; it holds the command's slot until ``release()``.

    Use it as a context manager, or call ``release()`` once the output is sent.
    """

    status: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    timed_out: bool = False
    busy: bool = False  # not run: no command slot came free (the message is in stderr)
    slot: Slot | None = field(default=None, compare=False, repr=False)

    @property
    def output(self) -> bytes:
        """What the tutorial's servers send: stdout, or stderr when stdout is empty."""
        return self.stdout or self.stderr

    def release(self) -> None:
        """Free the command slot this result holds (if any)."""
        if self.slot is not None:
            self.slot.release()

    def __enter__(self) -> CommandResult:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


class RunAsRootError(ValueError):
    """The exec server was told to run commands as root."""


def resolve_user(name: str | None) -> int | None:
    """The uid commands run as; ``None`` means "as this process".

    Root must name an unprivileged user; anyone else runs commands as itself.
    """
    if os.geteuid() != 0:
        return None
    if name is None:
        raise RunAsRootError("running as root: name an unprivileged user with --run-as")
    uid = pwd.getpwnam(name).pw_uid
    if uid == 0:
        raise RunAsRootError(f"--run-as {name} is root: commands never run as root")
    return uid


@dataclass
class CommandRunner:
    cwd: Path
    uid: int | None = None
    timeout: float = EXEC_TIMEOUT
    output_cap: int = EXEC_OUTPUT_CAP
    env: dict[str, str] = field(default_factory=dict)
    slots: CommandSlots | None = None  # None: no limit (tests, tools)
    running: set[subprocess.Popen[bytes]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, command: bytes) -> CommandResult:
        """Run ``command`` in a free slot; the result holds the slot until released."""
        if self.slots is None:
            return self._run(command)
        slot = self.slots.take()
        if slot is None:
            return CommandResult(STATUS_CANNOT_RUN, b"", self.slots.busy_message(), busy=True)
        try:
            return replace(self._run(command), slot=slot)
        except BaseException:
            slot.release()
            raise

    def _run(self, command: bytes) -> CommandResult:
        try:
            process = self._spawn(command)
        except (OSError, ValueError) as error:
            return CommandResult(STATUS_CANNOT_RUN, b"", f"cannot run command: {error}\n".encode())
        with self.lock:
            self.running.add(process)
        try:
            return self._collect(process)
        finally:
            _kill_group(process)
            process.wait()
            with self.lock:
                self.running.discard(process)

    def kill_all(self) -> None:
        """Kill every command still running (the server is stopping)."""
        with self.lock:
            for process in self.running:
                _kill_group(process)

    def _spawn(self, command: bytes) -> subprocess.Popen[bytes]:
        user_args: dict[str, object] = {}
        if self.uid is not None:
            entry = pwd.getpwuid(self.uid)
            user_args = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.Popen(
            [SHELL, "-c", OOM_FIRST, SHELL, command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.cwd),
                 "LANG": "C.UTF-8", **self.env},
            process_group=0,
            **user_args,  # type: ignore[arg-type]
        )

    def _collect(self, process: subprocess.Popen[bytes]) -> CommandResult:
        assert process.stdout is not None and process.stderr is not None
        deadline = time.monotonic() + self.timeout
        try:
            (stdout, stderr), truncated = self._read_outputs(process, deadline)
            timed_out = False
            if not truncated:
                try:  # the command may close its pipes and still run: the limit holds
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
            _kill_group(process)
        finally:
            # Closed only now: a command still writing to a closed pipe could die of
            # SIGPIPE, or exit 0, before our SIGKILL, and hide why it was stopped.
            process.stdout.close()
            process.stderr.close()
        return CommandResult(process.wait(), stdout, stderr, truncated, timed_out)

    def _read_outputs(self, process: subprocess.Popen[bytes],
                      deadline: float) -> tuple[tuple[bytes, bytes], bool]:
        """Read stdout and stderr until both close, the cap is hit or time is up.

        The outputs grow in ``BytesIO`` buffers, whose ``getvalue()`` hands the
        buffer over without a copy: a 32 MiB output costs 32 MiB, not 64.
        """
        assert process.stdout is not None and process.stderr is not None
        outputs = {process.stdout.fileno(): io.BytesIO(), process.stderr.fileno(): io.BytesIO()}
        truncated = False
        with selectors.DefaultSelector() as selector:
            for fd in outputs:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map() and not truncated and time.monotonic() < deadline:
                for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                    room = self.output_cap - sum(buffer.tell() for buffer in outputs.values())
                    truncated |= _read_into(key.fd, outputs[key.fd], room, selector)
        stdout, stderr = (buffer.getvalue() for buffer in outputs.values())
        return (stdout, stderr), truncated


def _read_into(fd: int, buffer: io.BytesIO, room: int, selector: selectors.BaseSelector) -> bool:
    """Read what one pipe has, keeping at most ``room`` bytes; True when the cap was hit."""
    chunk = os.read(fd, READ_SIZE)
    if not chunk:
        selector.unregister(fd)
        return False
    buffer.write(chunk[:room])
    return len(chunk) > room


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (it leads its own group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
