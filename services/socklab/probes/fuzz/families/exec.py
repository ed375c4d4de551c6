"""The exec families: exec-server's naive, handshake and length-framed ports.

Every generated command ends at once: the runner gives it /dev/null for
stdin, and no word here sleeps, waits, reads a terminal or runs long, so no
case holds one of the server's few command slots for its time limit.
"""

from __future__ import annotations

import random

from socklab.clients.core import FramedClient, HandshakeClient, open_connection, recv_exact
from socklab.probes.fuzz.cases import (
    SERVER_RECV,
    Cap,
    Case,
    Kind,
    Message,
    extreme_json,
    past,
    to_json,
)
from socklab.probes.fuzz.families.base import HEALTH_TIMEOUT, Family
from socklab.probes.fuzz.judging import expect
from socklab.probes.fuzz.play import Done, Outcome
from socklab.protocol import exec_framed
from socklab.protocol.errors import RemoteProtocolError
from socklab.protocol.framing import (
    HEADER,
    MAX_ENCODABLE,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
)
from socklab.protocol.handshake import READY, START
from socklab.registry import Variant

# Shell words that end at once with stdin on /dev/null (the runner's).
SHELL_WORDS = ("echo", "printf", "ls", "true", "false", "test", "pwd", "id", "cd", "exit",
               "[", "]", "-n", "-z", "-l", "%s", "x", "..", "/", "~", "*", "?", "$HOME", "$1",
               "$?", "${x:-y}", "$(", ")", "`", "'", '"', "\\", "|", "||", "&&", ";", "&",
               ">", ">>", "<", "2>&1", "#", "!", "{", "}", "(", "=", "\n", "\t")

VALID_COMMANDS = (b"echo hello", b"ls -l", b"printf 'a%sb\\n' x", b"pwd", b"true", b"id -u",
                  b"echo out; echo err >&2")

# Between the steps of a partial handshake, so they arrive as chunks of their own.
PARTIAL_GAP = 0.05

# Random bytes sent where every chunk is a command: a shell is started for each.
COMMAND_RANDOM_LARGEST = 8192

# Wrong request payloads: JSON of the wrong shape, and bytes that are not JSON.
FRAMED_WRONG: tuple[object, ...] = (
    {"cmd": 1}, {"cmd": None}, {"cmd": ["ls"]}, {"cmd": {"a": 1}}, {"cmd": True}, {}, [],
    "ls", 1, None, {"command": "ls"}, {"cmd": "\ud800"}, {"cmd": "echo a\x00b"},
)
FRAMED_NOT_JSON = (b"", b"ls -l", b"{", b'{"cmd": "ls"', b'{"cmd": "ls"}{"cmd": "ls"}')

# Room for a wrong request's extreme value: well inside the request frame cap.
WRONG_JSON_ROOM = 1 << 16


def health_command(token: int) -> tuple[str, bytes]:
    """A command a health check runs, and its exact output."""
    return f"echo fuzz-health-{token}", b"fuzz-health-%d\n" % token


class ExecFamily(Family):
    """What the three exec ports share: commands, shell noise, the common kinds."""

    def make_kinds(self) -> tuple[Kind, ...]:
        return (Kind("random-bytes", self.random_bytes),
                Kind("invalid-utf8", self.invalid_utf8),
                Kind("oversized", self.oversized, rare=True),
                Kind("shell-noise", self.shell_noise),
                Kind("mutation", self.mutation),
                Kind("empty", self.empty, rare=True),
                *self.more_kinds())

    def more_kinds(self) -> tuple[Kind, ...]:
        return ()

    def oversized(self, rng: random.Random) -> Message:
        raise NotImplementedError

    def shell_noise(self, rng: random.Random) -> Message:
        words = " ".join(rng.choice(SHELL_WORDS) for _ in range(rng.randint(1, 30)))
        return Message(self.command(words))

    def command(self, words: str) -> bytes:
        """A command as this port takes it."""
        return words.encode()


class ChunkCommands(ExecFamily):
    """The naive and handshake ports' way: every chunk is a command, so no byte-at-a-time sends."""

    chunk_is_command = True
    random_largest = COMMAND_RANDOM_LARGEST
    valid = VALID_COMMANDS

    def around_text(self, text: bytes, wrapping: int) -> bytes:
        return b"echo " + text

    def oversized(self, rng: random.Random) -> Message:
        """A command longer than one recv: the server runs it as two (or more) commands.

        Cut anywhere, each piece is still harmless: a comment, ``true`` or an echo.
        """
        cap = Cap("RECV_SIZE", SERVER_RECV)
        size = past(rng, cap)
        data = rng.choice((b"#" * size, b"true " + b"#" * (size - 5),
                           b"echo " + b"a" * (size - 5)))
        return Message(data, cap, keep=cap.value + 1)

    def reply_done(self, case: Case) -> Done:
        """The first command's answer: the fuzzer goes no faster than the commands run."""
        size = len(self.greeting) + (1 if case.sent else 0)
        return lambda reply: len(reply) >= size


class Naive(ChunkCommands):
    """exec's naive port: a banner, then each chunk's output."""

    framing = "naive"

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        reply = outcome.reply
        return None if reply.startswith(self.greeting) else f"no banner: {reply[:80]!r}"

    def check(self, host: str, port: int, token: int) -> None:
        command, output = health_command(token)
        with open_connection(host, port, HEALTH_TIMEOUT) as sock:
            banner = recv_exact(sock, len(self.greeting))
            sock.sendall(command.encode())
            reply = recv_exact(sock, len(output))
        expect(banner == self.greeting, "the banner", banner)
        expect(reply == output, f"the output {output!r}", reply)


class Handshake(ChunkCommands):
    """exec's handshake port: command, Ready header, start, output."""

    framing = "handshake"

    def more_kinds(self) -> tuple[Kind, ...]:
        return (Kind("partial-handshake", self.partial_handshake),)

    def partial_handshake(self, rng: random.Random) -> Message:
        """The handshake's steps out of order, repeated, cut or glued, each its own chunk."""
        command, other = rng.choice(VALID_COMMANDS), rng.choice(VALID_COMMANDS)
        steps = rng.choice(((START,), (START, START), (command, START, START),
                            (command + START,), (command, START[:3]), (READY + b"|5|0",),
                            (command, START + other), (command, other, START), (command,)))
        return Message(b"".join(steps), parts=steps, gap=PARTIAL_GAP)

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        reply = outcome.reply
        ok = not reply or reply.startswith(READY + b"|")
        return None if ok else f"not a Ready header: {reply[:80]!r}"

    def check(self, host: str, port: int, token: int) -> None:
        command, output = health_command(token)
        with open_connection(host, port, HEALTH_TIMEOUT) as sock:
            header, reply = HandshakeClient(sock).run(command)
        expect((header.size, header.status) == (len(output), 0), f"Ready|{len(output)}|0",
               header)
        expect(reply == output, f"the output {output!r}", reply)


class Framed(ExecFamily):
    """exec's length-framed port: a JSON request frame in, three reply frames out."""

    framing = "framed"
    valid = tuple(exec_framed.encode_request(c.decode()) for c in VALID_COMMANDS)

    def __init__(self, variant: Variant, framing: str) -> None:
        self.request_cap = Cap("MAX_REQUEST_FRAME", int(variant.caps["request_frame"]))
        self.reply_cap = int(variant.caps["reply_frame"])
        super().__init__(variant, framing)

    def more_kinds(self) -> tuple[Kind, ...]:
        return (Kind("truncated", self.truncated),
                Kind("huge-length", self.huge_length, rare=True),
                Kind("wrong-json", self.wrong_json))

    def command(self, words: str) -> bytes:
        return exec_framed.encode_request(words)

    def random_bytes(self, rng: random.Random) -> Message:
        data = super().random_bytes(rng).data
        if rng.random() < 0.5:
            data = encode_frame(data)  # random bytes in a well-formed frame
        return Message(data)

    def around_text(self, text: bytes, wrapping: int) -> bytes:
        return encode_frame(b'{"cmd": "echo ' + text + b'"}')

    def oversized(self, rng: random.Random) -> Message:
        """A request frame one cap and a bit long: refused from its header on."""
        cap = self.request_cap
        prefix, suffix = b'{"cmd": "true #', b'"}'
        payload = prefix + b"x" * (past(rng, cap) - len(prefix) - len(suffix)) + suffix
        return Message(encode_frame(payload), cap, keep=HEADER.size)

    def truncated(self, rng: random.Random) -> Message:
        """A request cut short, one and a piece, or a header at the cap with little after."""
        whole = exec_framed.encode_request(rng.choice(VALID_COMMANDS).decode())
        return Message(rng.choice((
            whole[: rng.randint(1, len(whole) - 1)],
            whole + whole[: rng.randint(1, len(whole) - 1)],
            HEADER.pack(self.request_cap.value) + rng.randbytes(rng.randrange(256)),
        )))

    def huge_length(self, rng: random.Random) -> Message:
        """A frame header declaring more than the cap, after a good frame or not."""
        cap = self.request_cap
        length = rng.choice((cap.value + 1, cap.value + 1 + rng.randrange(cap.value), 1 << 31,
                             MAX_ENCODABLE))
        before = rng.choice((b"", exec_framed.encode_request("echo before")))
        data = before + HEADER.pack(length) + rng.randbytes(rng.randrange(64))
        return Message(data, cap, keep=len(before) + HEADER.size)

    def wrong_json(self, rng: random.Random) -> Message:
        payload = extreme_json(rng, b'{"cmd": "true", "x": ', WRONG_JSON_ROOM)
        if payload is None:
            payload = rng.choice((*(to_json(v) for v in FRAMED_WRONG), *FRAMED_NOT_JSON))
        return Message(encode_frame(payload))

    def replies_owed(self, sent: bytes) -> int:
        """How many replies the server owes for these bytes: one per whole request frame,
        and one error reply for an oversized header, after which it closes."""
        decoder, count = FrameDecoder(self.request_cap.value), 0
        decoder.feed(sent)
        while True:
            try:
                frame = decoder.next_frame()
            except FrameTooLarge:
                return count + 1
            if frame is None:
                return count
            count += 1

    def reply_frames(self, reply: bytes | bytearray) -> tuple[list[bytes], int]:
        """The whole frames in ``reply`` and the number of bytes left over."""
        decoder, frames = FrameDecoder(self.reply_cap), []
        decoder.feed(reply)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
        return frames, decoder.buffered

    def reply_done(self, case: Case) -> Done:
        frames_owed = exec_framed.REPLY_FRAMES * self.replies_owed(case.sent)
        return lambda reply: len(self.reply_frames(reply)[0]) >= frames_owed

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        frames, left = self.reply_frames(outcome.reply)
        owed = self.replies_owed(case.sent)
        if left or len(frames) != exec_framed.REPLY_FRAMES * owed:
            return f"{len(frames)} frames and {left} stray bytes for {owed} replies"
        try:
            for start in range(0, len(frames), exec_framed.REPLY_FRAMES):
                exec_framed.decode_reply(frames[start : start + exec_framed.REPLY_FRAMES])
        except RemoteProtocolError as error:
            return f"bad reply: {error}"
        return None

    def check(self, host: str, port: int, token: int) -> None:
        command, output = health_command(token)
        with open_connection(host, port, HEALTH_TIMEOUT) as sock:
            reply = FramedClient(sock).run(command)
        expect((reply.exit_status, reply.stdout, reply.stderr, reply.error)
               == (0, output, b"", None), f"exit 0, stdout {output!r}", reply)
