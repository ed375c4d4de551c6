"""The checks of the exec variant, run from a client host.

The learner spec (docs/exercises/13-write-your-own-exec.md): three ports,
naive (9000), handshake (9001) and framed (9002), each running a client's
commands with ``/bin/sh -c`` as the unprivileged user ``runner`` (uid 1001)
and answering in its own framing (docs/protocols.md, "exec-server"). The
framings are exact; the rest is judged only as a client sees it. Nothing the
spec leaves free is judged: the naive banner's wording and the line standing
for an empty output (one line each, ending in ``\\n``), error messages, how
many commands may run at once (at least three), the environment beyond the
user. ``--port`` moves all three ports by the same offset (``--port 19100``:
19100, 19101, 19102, where ``PUBLISH=1`` puts the lab's own).

Commands whose output the checks know in advance: ``yes LINE | head -c N``
prints the first N bytes of LINE repeated (:func:`lines`).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from socklab.grading import wire
from socklab.grading.echo import Target, Wrong, fuzz_verdict
from socklab.grading.verdict import compare, size
from socklab.registry import EXEC_OUTPUT_CAP, EXEC_TIMEOUT, Variant

FRAMINGS = ("naive", "handshake", "framed")
FRAME_HEADER = struct.Struct(">I")
# The user commands run as.
RUNNER_UID = 1001

# A handshake header: Ready|<n>|<status>, then flags, each a |field of its own.
READY = re.compile(rb"Ready\|(\d+)\|(-?\d+)((?:\|[A-Za-z-]+)*)")
MAX_HEADER = 64
START = b"start"
# After a header (or a reply) that must be all: how long nothing more may come.
QUIET = 0.3
# A naive banner, or the line standing for an empty output, is at most this long.
MAX_LINE = 1024
# How long a reply may take: a command slot may be busy for a while (ours wait 15 s).
REPLY_WAIT = 20.0

# The line ``yes`` repeats for the outputs of known size.
LINE = b"socklab exec grading: one line of a long output, repeated\n"
BIG = 10 << 20  # the sticky-packet output: 10 MiB on 9001 and 9002
CAP_TEST = 40 << 20  # printed to meet the 32 MiB cap
RESET_OUTPUT = 8 << 20


# --- Pure parts: frames, headers, expected outputs, messages -------------------------


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload)) + payload


def request(command: str) -> bytes:
    """One framed request, as the spec writes it."""
    return frame(json.dumps({"cmd": command}).encode())


def split_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole frames at the start of ``data``, and the bytes left over."""
    frames, at = [], 0
    while len(data) - at >= FRAME_HEADER.size:
        (length,) = FRAME_HEADER.unpack_from(data, at)
        if len(data) - at - FRAME_HEADER.size < length:
            break
        at += FRAME_HEADER.size
        frames.append(data[at:at + length])
        at += length
    return frames, data[at:]


def lines_command(n: int) -> str:
    """A command that prints exactly ``n`` bytes: :func:`lines` (n)."""
    return f"yes '{LINE[:-1].decode()}' | head -c {n}"


def lines(n: int) -> bytes:
    """What :func:`lines_command` (n) prints."""
    return (LINE * (n // len(LINE) + 1))[:n]


@dataclass(frozen=True)
class Ready:
    """A handshake header as it came: ``Ready|<n>|<status>[|<flag>…]``."""

    size: int
    status: int
    flags: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "|".join(["Ready", str(self.size), str(self.status), *self.flags])


def parse_ready(data: bytes,
                expected: tuple[int, int] | None = None) -> tuple[Ready | None, bytes]:
    """The header at the start of ``data`` and what follows it; (None, data) if there is none.

    With the ``expected`` (size, status), a header that is exactly those is read as
    such even when digits follow it (an output sent before ``start``).
    """
    match = None
    if expected is not None:
        match = re.match(rb"Ready\|(%d)\|(%d)((?:\|[A-Za-z-]+)*)" % expected, data)
    match = match or READY.match(data)
    if match is None or match.end() > MAX_HEADER:
        return None, data
    flags = tuple(f.decode() for f in match[3].split(b"|")[1:])
    return Ready(int(match[1]), int(match[2]), flags), data[match.end():]


def header_done(data: bytes) -> bool:
    """Whether ``data`` holds a whole header (a server sends it in one piece)."""
    return READY.match(data) is not None


def same(got: object, expected: object) -> bool:
    """Equal and of the same JSON type: ``0`` is not ``false``, ``1`` is not ``true``."""
    return type(got) is type(expected) and got == expected


MISSING = "(missing)"


def header_differences(header: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``header`` that are not as ``expected``, with what they were."""
    return {k: header.get(k, MISSING) for k, v in expected.items()
            if not same(header.get(k, MISSING), v)}


def show(value: object) -> str:
    """A header value as JSON writes it (a missing field says so)."""
    return value if value == MISSING else json.dumps(value)


def reply_expected(stdout: bytes, stderr: bytes = b"", status: int = 0, *,
                   truncated: bool = False, timed_out: bool = False) -> dict[str, Any]:
    """The header a framed reply must carry for these outputs."""
    return {"exit_status": status, "stdout_bytes": len(stdout), "stderr_bytes": len(stderr),
            "truncated": truncated, "timed_out": timed_out}


def header_problem(header: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None if every expected field is right, else which are wrong and what they were."""
    wrong = header_differences(header, expected)
    if not wrong:
        return None
    return "; ".join(f'"{k}" was {show(v)}, expected {show(expected[k])}'
                     for k, v in wrong.items())


def ready_problem(header: Ready, size_: int, status: int) -> str | None:
    """None if the header announces ``size_`` bytes and ``status``, else what differs."""
    if (header.size, header.status) == (size_, status):
        return None
    return f"expected Ready|{size_}|{status}; came {header}"


def output_problem(name: str, expected: bytes, got: bytes) -> str | None:
    """None if ``got`` is ``expected``, else a sentence naming the output (stdout, stderr)."""
    problem = compare(expected, got, "complete")
    return None if problem is None else f"{name}: {problem}"


# --- Ports and connections -----------------------------------------------------------


def port_of(target: Target, framing: str) -> int:
    """A framing's port: the variant's, moved by the offset ``--port`` gave the main one."""
    variant: Variant = target.variant
    return variant.port(framing) + (target.port - variant.main_port)


def where(target: Target, framing: str) -> str:
    return f"port {port_of(target, framing)} ({framing})"


def connect(target: Target, framing: str, timeout: float = 5.0) -> socket.socket:
    try:
        return wire.connect(target.host, port_of(target, framing), timeout)
    except OSError as error:
        raise Wrong(f"connect to {target.host}:{port_of(target, framing)} ({framing}) failed: "
                    f"{error}") from None


def read_until(sock: socket.socket, done: Callable[[bytes], bool], limit: int,
               timeout: float) -> tuple[bytes, str]:
    """Read until ``done(data)``, ``limit`` bytes, the server's close or ``timeout``.

    (what came, how it ended: ``complete``, ``eof``, ``reset`` or ``timeout``).
    """
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while not done(data) and len(data) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                return data, "timeout"
            sock.settimeout(left)
            try:
                chunk = sock.recv(limit - len(data))
            except TimeoutError:
                return data, "timeout"
            except ConnectionResetError:
                return data, "reset"
            if not chunk:
                return data, "eof"
            data += chunk
        return data, "complete"
    finally:
        sock.settimeout(None)


def ending_words(ending: str) -> str:
    return {"eof": "then the server closed the connection",
            "reset": "then the server reset the connection",
            "timeout": "then nothing more"}.get(ending, "")


def status_of(ending: str) -> str:
    return "timeout" if ending == "timeout" else "failed"


def nothing_more(sock: socket.socket, after: str, seconds: float = QUIET) -> None:
    """Nothing may arrive for ``seconds``: a reply that is all there is."""
    extra = wire.arrives_within(sock, seconds)
    if extra:
        raise Wrong(f"{after}; expected nothing more, came {extra[:48]!r} "
                    f"({size(len(extra))})")


# --- naive (9000) --------------------------------------------------------------------


def naive_open(target: Target, timeout: float = 5.0) -> tuple[socket.socket, bytes]:
    """Connected to the naive port and past its banner line; (socket, banner)."""
    sock = connect(target, "naive")
    data, ending = read_until(sock, lambda d: b"\n" in d, MAX_LINE, timeout)
    if b"\n" not in data:
        sock.close()
        came = f"came {data[:80]!r}" if data else "nothing came"
        raise Wrong(f"connected to {where(target, 'naive')} and sent nothing; expected a "
                    f"banner line ending in b'\\n' within {timeout:.0f} s (at most "
                    f"{MAX_LINE} bytes); {came}, {ending_words(ending) or 'no newline'}",
                    status_of(ending))
    banner, extra = data.split(b"\n", 1)
    if extra:
        sock.close()
        raise Wrong(f"connected to {where(target, 'naive')}; expected one banner line, then "
                    f"nothing before a command; came the line {banner[:60]!r}, then "
                    f"{extra[:48]!r}")
    return sock, banner + b"\n"


def naive_run(target: Target, sock: socket.socket, command: str, expected: bytes,
              stall: float = REPLY_WAIT) -> None:
    """Send one command; exactly ``expected`` back (what follows is the caller's business)."""
    sock.sendall(command.encode())
    got, ending = wire.read_exact(sock, len(expected), stall)
    problem = compare(expected, got, ending)
    if problem:
        raise Wrong(f"sent the command {command!r} to {where(target, 'naive')}; {problem}",
                    "timeout" if ending == "timeout" and not got else "failed")


# --- handshake (9001) ----------------------------------------------------------------


def handshake_header(target: Target, sock: socket.socket, command: str, strict: bool,
                     expected: tuple[int, int] | None = None) -> tuple[Ready, bytes]:
    """Send a command, read its Ready header; (header, bytes that came after it).

    ``strict``: nothing may follow the header before ``start`` (the server waits
    for it); otherwise what follows is taken as the start of the output.
    ``expected``: the (size, status) the header should announce, to tell it from
    an output sent too early.
    """
    sock.sendall(command.encode())
    sent = f"sent the command {command!r} to {where(target, 'handshake')}"
    data, ending = read_until(sock, header_done, MAX_HEADER, REPLY_WAIT)
    if strict and header_done(data):
        data += wire.arrives_within(sock, QUIET)
    header, rest = parse_ready(data, expected)
    if header is None:
        came = f"came {data[:80]!r}" if data else "nothing came"
        raise Wrong(f"{sent}; expected a header Ready|<n>|<status>; {came}"
                    f"{', ' + ending_words(ending) if ending != 'complete' else ''}",
                    "timeout" if ending == "timeout" and not data else "failed")
    if strict and rest:
        raise Wrong(f"{sent}; expected the header {header} and then nothing until the "
                    f"client sends start; came {rest[:48]!r} ({size(len(rest))}) before "
                    "start was sent")
    return header, rest


def handshake_output(target: Target, sock: socket.socket, command: str,
                     expected: tuple[int, int] | None = None) -> tuple[Ready, bytes]:
    """One command, ``start``, then the bytes its header announced, however they came."""
    header, early = handshake_header(target, sock, command, False, expected)
    sock.sendall(START)
    more, _ = wire.read_exact(sock, max(0, header.size - len(early)), REPLY_WAIT)
    return header, early + more


def handshake_run(target: Target, sock: socket.socket, command: str, expected: bytes,
                  status: int = 0, *, strict: bool = False) -> None:
    """One command on the handshake port: its header, ``start``, exactly its output.

    ``strict``: nothing before ``start``, and nothing after the output.
    """
    header, early = handshake_header(target, sock, command, strict, (len(expected), status))
    sent = f"sent the command {command!r} to {where(target, 'handshake')}"
    problem = ready_problem(header, len(expected), status)
    if problem:
        raise Wrong(f"{sent}; {problem}")
    sock.sendall(START)
    more, ending = (wire.read_exact(sock, len(expected) - len(early), REPLY_WAIT)
                    if len(expected) > len(early) else (b"", "complete"))
    problem = compare(expected, early + more, ending)
    if problem:
        raise Wrong(f"{sent}, got {header}, sent start; {problem}",
                    "timeout" if ending == "timeout" and not more else "failed")
    if strict:
        nothing_more(sock, f"{sent}, got {header}, sent start, got the {size(len(expected))} "
                     "announced")


# --- framed (9002) -------------------------------------------------------------------


def read_frame(sock: socket.socket, what: str, timeout: float = REPLY_WAIT) -> bytes:
    """One frame: 4 bytes of length, then that many; Wrong says how it fell short."""
    head, ending = wire.read_exact(sock, FRAME_HEADER.size, timeout)
    if len(head) < FRAME_HEADER.size:
        raise Wrong(f"{what}: expected a 4-byte frame length; came {head!r}"
                    f"{', ' + ending_words(ending) if ending_words(ending) else ''}",
                    status_of(ending))
    (length,) = FRAME_HEADER.unpack(head)
    body, ending = wire.read_exact(sock, length, timeout)
    if len(body) < length:
        raise Wrong(f"{what}: the frame announced {length:,} bytes; {len(body):,} came, "
                    f"{ending_words(ending)}", status_of(ending))
    return body


def framed_reply(sock: socket.socket, sent: str,
                 timeout: float = REPLY_WAIT) -> tuple[dict[str, Any], bytes, bytes]:
    """Read one reply, three frames; (header, stdout, stderr) as they came."""
    raw = read_frame(sock, f"{sent}; the reply's header", timeout)
    try:
        header = json.loads(raw)
    except ValueError:
        raise Wrong(f"{sent}; expected a JSON header frame; came {raw[:80]!r}") from None
    if not isinstance(header, dict):
        raise Wrong(f"{sent}; expected a JSON object as the header; came {raw[:80]!r}")
    stdout = read_frame(sock, f"{sent}; the stdout frame")
    stderr = read_frame(sock, f"{sent}; the stderr frame")
    return header, stdout, stderr


def framed_sent(target: Target, command: str) -> str:
    return f"sent the request {{\"cmd\": {json.dumps(command)}}} to {where(target, 'framed')}"


def framed_run(target: Target, sock: socket.socket, command: str,
               timeout: float = REPLY_WAIT) -> tuple[dict[str, Any], bytes, bytes]:
    """Send one framed request; (header, stdout, stderr) as they came."""
    sock.sendall(request(command))
    return framed_reply(sock, framed_sent(target, command), timeout)


def framed_expect(sent: str, reply: tuple[dict[str, Any], bytes, bytes], stdout: bytes,
                  stderr: bytes = b"", status: int = 0) -> None:
    """The reply is exactly this: header fields, stdout, stderr."""
    header, out, err = reply
    problems = [p for p in (header_problem(header, reply_expected(stdout, stderr, status)),
                            output_problem("stdout", stdout, out),
                            output_problem("stderr", stderr, err)) if p]
    if problems:
        header_text = json.dumps(reply_expected(stdout, stderr, status))
        raise Wrong(f"{sent}; expected the header {header_text}, stdout {stdout[:40]!r}, "
                    f"stderr {stderr[:40]!r}; " + "; ".join(problems))


# --- One command on any port, on a connection of its own -----------------------------


def command_for(framing: str, command: str) -> bytes:
    """The bytes that ask for ``command`` on a framing's port."""
    return request(command) if framing == "framed" else command.encode()


def run_once(target: Target, framing: str, command: str, expected: bytes) -> None:
    """A fresh client runs one command (status 0) and reads all of its output, then closes."""
    if framing == "naive":
        sock, _ = naive_open(target)
        with sock:
            naive_run(target, sock, command, expected)
    elif framing == "handshake":
        with connect(target, framing) as sock:
            handshake_run(target, sock, command, expected)
    else:
        with connect(target, framing) as sock:
            framed_expect(framed_sent(target, command), framed_run(target, sock, command),
                          expected)


def served(target: Target, what: str, framings: tuple[str, ...] = FRAMINGS) -> None:
    """A correct client on each port, on a new connection, gets a correct answer."""
    for framing in framings:
        try:
            run_once(target, framing, f"echo still there on {framing}",
                     f"still there on {framing}\n".encode())
        except Wrong as wrong:
            raise Wrong(f"afterwards, {what} on {where(target, framing)}: {wrong}",
                        wrong.status) from None


# --- conformance ---------------------------------------------------------------------


def naive(target: Target) -> None:
    sock, banner = naive_open(target)
    with sock:
        nothing_more(sock, f"connected to {where(target, 'naive')}, got the banner line "
                     f"{banner[:60]!r}", 0.5)
        naive_run(target, sock, "echo hello", b"hello\n")
        nothing_more(sock, f"sent the command 'echo hello' to {where(target, 'naive')}, got "
                     "b'hello\\n'")
        naive_run(target, sock, "echo oops >&2", b"oops\n")  # stderr when stdout is empty
        nothing_more(sock, f"sent the command 'echo oops >&2' to {where(target, 'naive')}, "
                     "got its stderr b'oops\\n'")
        sock.sendall(b"true")
        line, ending = read_until(sock, lambda d: b"\n" in d, MAX_LINE, REPLY_WAIT)
        sent = f"sent the command 'true' (no output at all) to {where(target, 'naive')}"
        if not line.endswith(b"\n"):
            came = f"came {line[:60]!r}" if line else "nothing came"
            raise Wrong(f"{sent}; expected one line ending in b'\\n' in its place (ours: "
                        f"b'current directory is /srv/exec\\n'); {came}, "
                        f"{ending_words(ending) or 'no newline'}", status_of(ending))
        nothing_more(sock, f"{sent}, got the line {line[:60]!r}")


def handshake(target: Target) -> None:
    with connect(target, "handshake") as sock:
        handshake_run(target, sock, "echo hello", b"hello\n", strict=True)
        handshake_run(target, sock, "true", b"", strict=True)  # Ready|0|0
        handshake_run(target, sock, "echo oops >&2; exit 3", b"oops\n", 3, strict=True)


def framed(target: Target) -> None:
    with connect(target, "framed") as sock:
        for command, stdout, stderr, status in (("echo hello", b"hello\n", b"", 0),
                                                ("echo oops >&2; exit 3", b"", b"oops\n", 3)):
            framed_expect(framed_sent(target, command), framed_run(target, sock, command),
                          stdout, stderr, status)


def big_output(target: Target) -> None:
    command, expected = lines_command(BIG), lines(BIG)
    with connect(target, "handshake") as sock:
        handshake_run(target, sock, command, expected)
        nothing_more(sock, f"sent the command {command!r} to {where(target, 'handshake')}, "
                     f"sent start, got the {size(BIG)} announced")
    with connect(target, "framed") as sock:
        framed_expect(framed_sent(target, command), framed_run(target, sock, command),
                      expected)


PIPELINED = (("echo first", b"first\n"), ("sleep 0.3; echo second", b"second\n"),
             ("echo third", b"third\n"))


def pipelined(target: Target) -> None:
    with connect(target, "framed") as sock:
        sock.sendall(b"".join(request(c) for c, _ in PIPELINED))  # one send
        names = ", ".join(json.dumps({"cmd": c}) for c, _ in PIPELINED)
        for number, (command, stdout) in enumerate(PIPELINED, 1):
            sent = (f"sent three requests in one send to {where(target, 'framed')} ({names}); "
                    f"reply {number} (to {json.dumps(command)})")
            framed_expect(sent, framed_reply(sock, sent), stdout)


# Requests the server cannot run: each gets an error reply, and the connection goes on.
BAD_REQUESTS: tuple[tuple[bytes, str], ...] = (
    (b"this is not JSON", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "a JSON array, not an object"),
    (b'{"command": "ls"}', 'an object with no "cmd"'),
)


def error_problem(header: dict[str, Any], stdout: bytes, stderr: bytes) -> str | None:
    """None if this is an error reply: a non-empty "error", no status, both frames empty."""
    problems = []
    error = header.get("error")
    if not isinstance(error, str) or not error:
        problems.append(f'"error" was {show(header.get("error", MISSING))}, expected a '
                        "string saying why")
    if header.get("exit_status") is not None:
        problems.append(f'"exit_status" was {show(header["exit_status"])}, expected null '
                        "(nothing ran)")
    for name, data in (("stdout", stdout), ("stderr", stderr)):
        if data or not same(header.get(f"{name}_bytes"), 0):
            problems.append(f"{name}: expected an empty frame and \"{name}_bytes\": 0; came "
                            f"{data[:40]!r} and {show(header.get(f'{name}_bytes', MISSING))}")
    return "; ".join(problems) or None


def bad_request(target: Target) -> None:
    with connect(target, "framed") as sock:
        for payload, what in BAD_REQUESTS:
            sock.sendall(frame(payload))
            sent = (f"sent a request frame that is {what} ({payload!r}) to "
                    f"{where(target, 'framed')}")
            header, stdout, stderr = framed_reply(sock, sent)
            problem = error_problem(header, stdout, stderr)
            if problem:
                raise Wrong(f"{sent}; expected an error reply; {problem}")
        command = "echo still here"
        sent = (f"after {len(BAD_REQUESTS)} bad requests on one connection, "
                f"{framed_sent(target, command)} on the same connection")
        framed_expect(sent, framed_run(target, sock, command), b"still here\n")


# --- the lab's clients ----------------------------------------------------------------

SEQ = "".join(f"{i}\n" for i in range(1, 2001)).encode()  # what `seq 1 2000` prints
# `socklab client exec --mode M -c C …`: each command with its stdout and stderr, and the
# last one's exit status (the client's own). Not the naive port: its client shows one
# recv(1024) per command, however the reply was cut (exercise 4's lesson), a cut the spec
# leaves free.
CLIENT_RUNS: tuple[tuple[str, tuple[tuple[str, bytes, bytes], ...], int], ...] = (
    ("handshake", (("seq 1 2000", SEQ, b""), ("true", b"", b""),
                   ("echo oops >&2; exit 3", b"", b"oops\n")), 3),
    ("framed", (("echo hello; echo oops >&2; exit 3", b"hello\n", b"oops\n"),), 3),
)
CLIENT_WAIT = 20.0


def client_expected(framing: str, outputs: tuple[tuple[str, bytes, bytes], ...],
                    status: int) -> tuple[str, str]:
    """What ``socklab client exec --mode FRAMING`` prints for these commands: (stdout, stderr).

    Handshake: for each command ``message size N recv size N`` (the tutorial's client's
    words), then its output (stdout, or stderr when stdout is empty). Framed (one
    command): its stdout; on stderr, its stderr and ``[exit status S]``.
    """
    if framing == "handshake":
        return "".join(f"message size {len(out or err)} recv size {len(out or err)}\n"
                       f"{(out or err).decode()}" for _, out, err in outputs), ""
    return ("".join(out.decode() for _, out, _ in outputs),
            "".join(err.decode() for _, _, err in outputs) + f"[exit status {status}]\n")


def tutorial_client(target: Target) -> None:
    """``socklab client exec`` on the handshake and framed ports, each output shown whole."""
    from socklab.grading import tutorial

    for framing, outputs, status in CLIENT_RUNS:
        args = ["exec", "--host", target.host, "--port", str(port_of(target, framing)),
                "--mode", framing]
        for command, _, _ in outputs:
            args += ["-c", command]
        shown = tutorial.run_client(args, seconds=CLIENT_WAIT)
        stdout, stderr = client_expected(framing, outputs, status)
        did = f"ran `{shown.command}` ({where(target, framing)})"
        tutorial.ending(shown, did, status, stderr)
        tutorial.showing(shown, did, "each command's output, whole" + (
            ", after the size its Ready header announced" if framing == "handshake" else ""),
            stdout, shown.stdout)


# --- concurrency ---------------------------------------------------------------------

# Margins of a second or two either way: a loaded machine slows a process start, not a sleep.
SLEEP = 3.0
# A quick command of a third client, while two sleep: answered within this.
QUICK = 2.0
# Both sleepers answered within this: they ran at the same time (one after the other: 6 s).
BOTH_SLEPT = 5.0


def parallel(target: Target) -> None:
    started = time.monotonic()
    sleepers: list[socket.socket] = []
    try:
        for number in (1, 2):
            sock = connect(target, "framed")
            sleepers.append(sock)
            sock.sendall(request(f"sleep {SLEEP:g}; echo slept {number}"))
        time.sleep(0.3)
        for framing in ("naive", "handshake"):
            asked = time.monotonic()
            try:
                run_once(target, framing, "echo quick", b"quick\n")
            except Wrong as wrong:
                raise Wrong(f"while two clients' 'sleep {SLEEP:g}' ran on "
                            f"{where(target, 'framed')}, a third client: {wrong}",
                            wrong.status) from None
            took = time.monotonic() - asked
            if took > QUICK:
                raise Wrong(f"while two clients' 'sleep {SLEEP:g}' ran on "
                            f"{where(target, 'framed')}, a third client's 'echo quick' on "
                            f"{where(target, framing)} was answered only after {took:.1f} s "
                            f"(expected within {QUICK} s: the commands of different clients "
                            "run at the same time)")
        for number, sock in enumerate(sleepers, 1):
            command = f"sleep {SLEEP:g}; echo slept {number}"
            sent = f"client {number} of 2 {framed_sent(target, command)}"
            framed_expect(sent, framed_reply(sock, sent), b"slept %d\n" % number)
        took = time.monotonic() - started
        if took > BOTH_SLEPT:
            raise Wrong(f"two clients each sent 'sleep {SLEEP:g}; echo slept N' to "
                        f"{where(target, 'framed')} at once; both were answered only after "
                        f"{took:.1f} s (expected within {BOTH_SLEPT} s: they ran one after the "
                        "other, not at the same time)")
    finally:
        for sock in sleepers:
            sock.close()


# --- robustness ----------------------------------------------------------------------


def _reset_once(target: Target, framing: str, when: str) -> None:
    """One connection reset in the middle: of a request, before start, or of an output."""
    command = lines_command(RESET_OUTPUT)
    sock = connect(target, framing) if framing != "naive" else naive_open(target)[0]
    try:
        if when == "request":  # half a request frame
            sock.sendall(request(command)[:12])
            time.sleep(0.05)
        elif when == "before-start":  # the output waits for start
            sock.sendall(command.encode())
            read_until(sock, header_done, MAX_HEADER, REPLY_WAIT)
        else:  # a little of the output
            sock.sendall(command_for(framing, command))
            if framing == "handshake":
                read_until(sock, header_done, MAX_HEADER,
                           REPLY_WAIT)
                sock.sendall(START)
            wire.read_exact(sock, 64 << 10, REPLY_WAIT)
    finally:
        wire.reset(sock)


RESETS = (("naive", "output"), ("handshake", "before-start"), ("handshake", "output"),
          ("framed", "request"), ("framed", "output"))


def resets(target: Target) -> None:
    for _ in range(2):
        for framing, when in RESETS:
            with contextlib.suppress(Wrong, OSError):
                _reset_once(target, framing, when)
    time.sleep(0.5)
    served(target, f"a fresh client after {2 * len(RESETS)} connections reset in the middle "
           "of a request or an output")


def vanish(target: Target, count: int = 30) -> None:
    for i in range(count):
        framing = FRAMINGS[i % len(FRAMINGS)]
        with contextlib.suppress(OSError):
            sock = wire.connect(target.host, port_of(target, framing))
            if i % 2:
                sock.sendall(command_for(framing, "echo nobody reads this"))
            sock.close()
    time.sleep(1.0)
    served(target, f"a fresh client after {count} clients connected and left at once")


FUZZ_INPUTS = 100  # per port


def fuzz(target: Target) -> None:
    from socklab.probes.fuzz.tally import Run
    from socklab.probes.fuzz.tally import fuzz as run_fuzz
    from socklab.probes.fuzz.targets import TARGETS
    from socklab.probes.fuzz.targets import Target as FuzzTarget

    for framing in FRAMINGS:
        name = f"exec-{framing}"
        aim = TARGETS[name]
        if framing == "naive":  # the banner's wording is the learner's
            aim = FuzzTarget(name, target.variant, framing, learner_naive(target.variant))
        run = Run(aim, target.host, port_of(target, framing), seed=1,
                  indices=list(range(FUZZ_INPUTS)), batch=50, concurrency=aim.concurrency,
                  read_timeout=1.0)
        try:
            report = run_fuzz(run).report()
        except OSError as error:  # the fuzzer's first correct client failed
            raise Wrong(f"fuzzing {where(target, framing)} (target {name}): {error}") from None
        fuzz_verdict(report, f"sent {FUZZ_INPUTS} malformed or abruptly ended connections "
                     f"to {where(target, framing)} (fuzzer target {name}, seed 1)")
    served(target, f"a fresh client after {FUZZ_INPUTS} fuzzer cases on each port")


def learner_naive(variant: Variant) -> Any:
    """The fuzzer's naive family with the banner free: any one line ending in ``\\n``."""
    from socklab.probes.fuzz.families.base import HEALTH_TIMEOUT
    from socklab.probes.fuzz.families.exec import Naive, health_command
    from socklab.probes.fuzz.judging import expect

    class LearnerNaive(Naive):
        def reply_done(self, case: Any) -> Callable[[bytearray], bool]:
            owed = 1 if case.sent else 0

            def done(reply: bytearray) -> bool:
                end = reply.find(b"\n")
                return end >= 0 and len(reply) >= end + 1 + owed
            return done

        def judge(self, case: Any, outcome: Any) -> str | None:
            reply = outcome.reply
            return None if b"\n" in reply else f"no banner line: {reply[:80]!r}"

        def check(self, host: str, port: int, token: int) -> None:
            command, output = health_command(token)
            with wire.connect(host, port, HEALTH_TIMEOUT) as sock:
                data, _ = read_until(sock, lambda d: b"\n" in d, MAX_LINE, HEALTH_TIMEOUT)
                expect(b"\n" in data, "a banner line", data)
                reply = data.split(b"\n", 1)[1]
                sock.sendall(command.encode())
                more, _ = wire.read_exact(sock, len(output) - len(reply), HEALTH_TIMEOUT)
                reply += more
            expect(reply == output, f"the output {output!r}", reply)

    return LearnerNaive(variant, "naive")


# --- security ------------------------------------------------------------------------


def output_of(target: Target, framing: str, command: str, expected: bytes) -> bytes:
    """What a command printed, read the port's way on a new connection (as many lines as
    ``expected`` has, on the naive port)."""
    if framing == "framed":
        with connect(target, framing) as sock:
            return framed_run(target, sock, command)[1]
    if framing == "handshake":
        with connect(target, framing) as sock:
            return handshake_output(target, sock, command, (len(expected), 0))[1]
    sock, _ = naive_open(target)
    with sock:
        sock.sendall(command.encode())
        count = expected.count(b"\n")
        return read_until(sock, lambda d: d.count(b"\n") >= count, MAX_LINE, REPLY_WAIT)[0]


def not_root(target: Target) -> None:
    command = "id -u; id -g"
    expected = b"%d\n%d\n" % (RUNNER_UID, RUNNER_UID)
    for framing in FRAMINGS:
        got = output_of(target, framing, command, expected)
        if got != expected:
            ids = got.split(b"\n")
            root = b"0" in ids[:2]
            raise Wrong(f"sent the command {command!r} to {where(target, framing)}; expected "
                        f"{expected!r} (runner's uid and gid); came {got[:60]!r}"
                        + (": the command ran as root (uid or gid 0)" if root else ""))


def output_cap(target: Target) -> None:
    command, cap = lines_command(CAP_TEST), EXEC_OUTPUT_CAP
    with connect(target, "framed") as sock:
        sent = framed_sent(target, command)
        sock.sendall(request(command))
        # The server's 30 s limit, then time to send 1 MiB: 10 s of slack was passed twice
        # by a correct one-CPU asyncio server on a machine at a load of 17-34.
        header, stdout, stderr = framed_reply(sock, sent, timeout=EXEC_TIMEOUT + 25)
    problems = []
    if not same(header.get("truncated", MISSING), True):
        problems.append(f'"truncated" was {show(header.get("truncated", MISSING))}, expected '
                        "true")
    if not same(header.get("stdout_bytes", MISSING), len(stdout)):
        problems.append(f'"stdout_bytes" was {show(header.get("stdout_bytes", MISSING))}, '
                        f"the stdout frame {len(stdout):,} bytes")
    problem = output_problem("stdout", lines(cap), stdout)
    if problem:
        problems.append(f"{problem} (expected the first {size(cap)} the command printed)")
    if stderr:
        problems.append(f"stderr: expected nothing (the cap counts stdout and stderr "
                        f"together); came {size(len(stderr))}: {stderr[:40]!r}")
    if problems:
        raise Wrong(f"{sent} (it prints {size(CAP_TEST)}); expected the first {size(cap)} of "
                    'its stdout and "truncated": true; ' + "; ".join(problems))
    served(target, f"a fresh client after a {size(CAP_TEST)} output")


# The time limit is 30 s: the reply comes after it, and not long after.
TIME_SLACK = (-2.0, 10.0)


def time_limit(target: Target) -> None:
    command = "sleep 1000"
    low, high = EXEC_TIMEOUT + TIME_SLACK[0], EXEC_TIMEOUT + TIME_SLACK[1]
    with connect(target, "framed") as sock:
        sent = framed_sent(target, command)
        started = time.monotonic()
        sock.sendall(request(command))
        try:
            header, stdout, stderr = framed_reply(sock, sent, timeout=high + 1)
        except Wrong as wrong:
            raise Wrong(f"{wrong} (expected the reply once the {EXEC_TIMEOUT:.0f} s limit "
                        f"killed it, within {high:.0f} s)", wrong.status) from None
        took = time.monotonic() - started
    expected = reply_expected(b"", b"", -9, timed_out=True)
    problem = header_problem(header, expected)
    if problem or stdout or stderr:
        raise Wrong(f"{sent}; expected after {EXEC_TIMEOUT:.0f} s the header "
                    f"{json.dumps(expected)} and empty outputs; "
                    + "; ".join(p for p in (problem, output_problem("stdout", b"", stdout),
                                            output_problem("stderr", b"", stderr)) if p))
    if not low <= took <= high:
        raise Wrong(f"{sent}; the reply came after {took:.1f} s; expected the command killed "
                    f"at the {EXEC_TIMEOUT:.0f} s limit (a reply between {low:.0f} and "
                    f"{high:.0f} s)")
    served(target, "a fresh client after a command was killed at the time limit")


# --- resources (the host measures; these only make the traffic) ----------------------


def churn(target: Target, count: int = 300) -> None:
    for i in range(count):
        framing = FRAMINGS[i % len(FRAMINGS)]
        try:
            run_once(target, framing, f"echo connection {i}", b"connection %d\n" % i)
        except Wrong as wrong:
            raise Wrong(f"connection {i + 1} of {count}: {wrong}", wrong.status) from None
    time.sleep(1.0)


def threads_churn(target: Target, count: int = 100, at_once: int = 20) -> None:
    for batch in range(count // at_once):
        socks: list[tuple[str, socket.socket]] = []
        try:
            for i in range(at_once):
                framing = FRAMINGS[i % len(FRAMINGS)]
                socks.append((framing, naive_open(target)[0] if framing == "naive"
                              else connect(target, framing)))
            for i, (framing, sock) in enumerate(socks):
                command = f"echo batch {batch} client {i}"
                expected = b"batch %d client %d\n" % (batch, i)
                if framing == "naive":
                    naive_run(target, sock, command, expected)
                elif framing == "handshake":
                    handshake_run(target, sock, command, expected)
                else:
                    framed_expect(framed_sent(target, command),
                                  framed_run(target, sock, command), expected)
        except Wrong as wrong:
            raise Wrong(f"with {len(socks)} clients connected at once (batch {batch + 1}): "
                        f"{wrong}", wrong.status) from None
        finally:
            for _, sock in socks:
                sock.close()
    time.sleep(1.0)


CHECKS: dict[str, Callable[[Target], None]] = {
    "conformance.naive": naive,
    "conformance.handshake": handshake,
    "conformance.framed": framed,
    "conformance.big-output": big_output,
    "conformance.pipelined": pipelined,
    "conformance.bad-request": bad_request,
    "conformance.tutorial-client": tutorial_client,
    "concurrency.parallel": parallel,
    "robustness.reset": resets,
    "robustness.vanish": vanish,
    "robustness.fuzz": fuzz,
    "security.not-root": not_root,
    "security.output-cap": output_cap,
    "security.time-limit": time_limit,
    "resources.fd-leak": churn,
    "resources.threads": threads_churn,
}
