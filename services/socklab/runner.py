"""Runs one shell command for the exec server: unprivileged, time-limited, capped.

The command runs with ``/bin/sh -c`` in its own process group, in the
server's working directory, as an unprivileged user. When the time limit or
the output cap is hit, the whole process group is killed, so no grandchild
lives on; the child is always waited for, so no zombie stays behind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SHELL = "/bin/sh"

# Per stream (stdout, stderr). Large enough for the 10 MB outputs of the
# sticky-packet scenario, small enough that a `yes` cannot eat the host.
OUTPUT_CAP = 32 << 20

# Wall-clock limit of one command. The lab's commands are `ls`, `cat`, `seq`:
# 30 s is forever for them and short enough that a `sleep 1e9` frees its slot.
DEFAULT_TIMEOUT = 30.0

# How much one read from a pipe takes: the default pipe buffer is 64 KiB.
READ_SIZE = 64 << 10

# Exit statuses we report when the shell could not even start, as sh does.
STATUS_CANNOT_RUN = 126


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    timed_out: bool = False

    @property
    def output(self) -> bytes:
        """What the tutorial's servers send: stdout, or stderr when stdout is empty."""
        return self.stdout or self.stderr


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
    timeout: float = DEFAULT_TIMEOUT
    output_cap: int = OUTPUT_CAP
    env: dict[str, str] = field(default_factory=dict)
    running: set[subprocess.Popen[bytes]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, command: bytes) -> CommandResult:
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
            [SHELL, "-c", command],
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
        deadline = time.monotonic() + self.timeout
        (stdout, stderr), truncated = self._read_outputs(process, deadline)
        timed_out = False
        if not truncated:
            try:  # the command may close its pipes and still run: the limit holds
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        _kill_group(process)
        return CommandResult(process.wait(), stdout, stderr, truncated, timed_out)

    def _read_outputs(self, process: subprocess.Popen[bytes],
                      deadline: float) -> tuple[tuple[bytes, bytes], bool]:
        """Read stdout and stderr until both close, the cap is hit or time is up."""
        assert process.stdout is not None and process.stderr is not None
        outputs = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
        truncated = False
        with selectors.DefaultSelector() as selector:
            for fd in outputs:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map() and not truncated and time.monotonic() < deadline:
                for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                    truncated |= self._read_into(key.fd, outputs[key.fd], selector)
        process.stdout.close()
        process.stderr.close()
        stdout, stderr = (bytes(buffer) for buffer in outputs.values())
        return (stdout, stderr), truncated

    def _read_into(self, fd: int, buffer: bytearray, selector: selectors.BaseSelector) -> bool:
        """Read what one pipe has; return True when the output cap was hit."""
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            selector.unregister(fd)
            return False
        room = self.output_cap - len(buffer)
        buffer += chunk[:room]
        return len(chunk) > room


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (it leads its own group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
