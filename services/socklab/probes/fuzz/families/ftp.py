"""The ftp family: JSON requests, JSON answers and the files between them."""

from __future__ import annotations

import hashlib
import io
import random

from socklab.clients.core import FtpClient, open_connection
from socklab.probes.fuzz.cases import Cap, Case, Kind, Message, extreme_json, past, to_json
from socklab.probes.fuzz.families.base import HEALTH_TIMEOUT, Family
from socklab.probes.fuzz.judging import expect
from socklab.probes.fuzz.play import Outcome
from socklab.protocol import ftp
from socklab.protocol.errors import RemoteProtocolError
from socklab.registry import Variant


def put(name: str, size: int) -> bytes:
    return to_json({"action": "put", "filename": name, "filesize": size})


def fuzz_name(rng: random.Random) -> str:
    return f"fuzz-{rng.randrange(1 << 20)}.bin"


# Names a server must refuse: they leave the directory, hold NUL or '/', pass
# NAME_MAX (300 bytes, one- or two-byte characters), are reserved, or are not
# valid Unicode (a lone surrogate).
BAD_NAMES = ("..", ".", "../escape", "a/../../b", "/etc/passwd", "a\x00b", "\x00", "",
             "n" * 300, "é" * 150, f"{ftp.PARTIAL_PREFIX}x", "\ud800", 7, None, ["a"])
BAD_SIZES = ("10", True, 1.5, -1, -(2**63), None, 2**64, 10**30)
BAD_DIGESTS = ("abc", "A" * 64, "g" * 64, "0" * 63, 123, "")
FTP_WRONG: tuple[object, ...] = (
    {"action": 1}, {"action": None}, {"action": ["put"]}, {"action": {"put": True}},
    {"action": "PUT", "filename": "a", "filesize": 1}, {"action": "delete", "filename": "a"},
    {"action": ""}, {}, {"action": "put"}, {"action": "get"}, {"action": "put", "filename": "a"},
    [], ["put"], "put", 1, None,
)

# Room a wrong request's extreme value leaves for the rest of the object.
WRONG_JSON_MARGIN = 64


class Ftp(Family):
    """ftp-server: a banner, then requests answered by JSON lines and files."""

    framing = "ftp"
    concurrency = 8  # ftp answers at once, but its FIN cases wait for silence
    valid = (to_json({"action": "list"}), to_json({"action": "get", "filename": "fuzz-valid.txt"}),
             put("fuzz-valid.txt", 10) + b"fuzz data\n")

    def __init__(self, variant: Variant, framing: str) -> None:
        self.request_cap = Cap("MAX_REQUEST", int(variant.caps["request"]))
        self.name_cap = Cap("MAX_NAME_BYTES", int(variant.caps["name"]))
        self.file_cap = Cap("DEFAULT_MAX_FILE_SIZE", int(variant.caps["file"]))
        super().__init__(variant, framing)

    def make_kinds(self) -> tuple[Kind, ...]:
        return (Kind("random-bytes", self.random_bytes),
                Kind("invalid-utf8", self.invalid_utf8),
                Kind("oversized", self.oversized, rare=True),
                Kind("truncated", self.truncated),
                Kind("wrong-json", self.wrong_json),
                Kind("partial-handshake", self.partial_put),
                Kind("mutation", self.mutation),
                Kind("empty", self.empty, rare=True))

    def random_bytes(self, rng: random.Random) -> Message:
        data = super().random_bytes(rng).data
        if rng.random() < 0.5:
            data = b"{" + data  # an object that starts well
        return Message(data)

    def around_text(self, text: bytes, wrapping: int) -> bytes:
        return (b'{"action": "' + text + b'"}',
                b'{"action": "put", "filename": "' + text + b'", "filesize": 1}',
                b'{"action": "get", "filename": "' + text + b'"}')[wrapping]

    def oversized(self, rng: random.Random) -> Message:
        """Past one of the caps: the request, a name, a file's size."""
        cap = self.request_cap
        choice = rng.randrange(4)
        if choice == 0:  # a whole object past the request cap
            head = b'{"action": "list", "pad": "'
            data = head + b"x" * (past(rng, cap) - len(head) - 2) + b'"}'
            return Message(data, cap, keep=len(data))
        if choice == 1:  # an object that never ends
            data = b'{"action": "list", "pad": "' + b"x" * cap.value
            data += b"x" * (past(rng, cap) - len(data))
            return Message(data, cap, keep=cap.value + 1)
        if choice == 2:  # a name past NAME_MAX, in two-byte characters or one-byte ones
            size = past(rng, self.name_cap)
            name = rng.choice(("é" * (size // 2 + 1), "n" * size))
            data = to_json({"action": rng.choice(("put", "get")), "filename": name,
                            "filesize": 1})
            return Message(data, self.name_cap, keep=len(data))
        data = put(fuzz_name(rng), past(rng, self.file_cap))
        return Message(data, self.file_cap, keep=len(data))

    def truncated(self, rng: random.Random) -> Message:
        whole = rng.choice(self.valid)
        return Message(whole[: rng.randint(1, len(whole) - 1)])

    def wrong_json(self, rng: random.Random) -> Message:
        room = self.request_cap.value - WRONG_JSON_MARGIN
        payload = extreme_json(rng, b'{"action": "list", "x": ', room)
        return Message(to_json(self.wrong_request(rng)) if payload is None else payload)

    def wrong_request(self, rng: random.Random) -> object:
        name, size = fuzz_name(rng), rng.randint(1, 64)
        return rng.choice((
            rng.choice(FTP_WRONG),
            {"action": rng.choice(("put", "get")), "filename": rng.choice(BAD_NAMES),
             "filesize": 1},
            {"action": "put", "filename": name, "filesize": rng.choice(BAD_SIZES)},
            {"action": "put", "filename": name, "filesize": size,
             "sha256": rng.choice(BAD_DIGESTS)},
        ))

    def partial_put(self, rng: random.Random) -> Message:
        """A put whose body is short, missing, or another request."""
        name, size = fuzz_name(rng), rng.randint(1, 64)
        body = rng.randbytes(size)
        return Message(rng.choice((
            put(name, size) + body[: rng.randrange(size)],
            put(name, size) + to_json({"action": "list"}),
            put(name, 0) + to_json({"action": "list"}),
            put(name, size) + body + put(fuzz_name(rng), size),
            to_json({"action": "put", "filename": name}),
            to_json({"action": "put", "filesize": size}),
        )))

    def judge(self, case: Case, outcome: Outcome) -> str | None:
        """Every answer a JSON line with a status below 500; a get's bytes skipped."""
        reply = outcome.reply
        if not reply.startswith(self.greeting):
            return f"no banner: {reply[:80]!r}"
        reader = ftp.AnswerReader()
        reader.feed(reply[len(self.greeting):])
        try:
            while (answer := reader.next_answer()) is not None:
                status = answer["status"]
                if not isinstance(status, int) or status >= ftp.SERVER_ERROR:
                    return f"answer {answer}"
                if status == ftp.OK and "filesize" in answer:  # a get: the file follows
                    del reader.buffer[: answer["filesize"]]
        except RemoteProtocolError as error:
            return str(error)
        return f"{len(reader.buffer)} bytes after the last answer" if reader.buffer else None

    def check(self, host: str, port: int, token: int) -> None:
        """Upload a small file with its sha256, download it, compare."""
        name, data = f"fuzz-health-{token}.txt", b"health check %d\n" % token * 64
        digest = hashlib.sha256(data).hexdigest()
        sink = io.BytesIO()
        with open_connection(host, port, HEALTH_TIMEOUT) as sock:
            client = FtpClient(sock)
            stored = client.put(name, len(data), [data], digest)
            fetched = client.get(name, sink)
        expect(client.banner.encode() + b"\n" == self.greeting, "the banner", client.banner)
        expect(stored == {"status": ftp.CREATED, "filename": name, "filesize": len(data),
                          "sha256": digest}, "201 with the sha256", stored)
        expect(fetched.get("status") == ftp.OK and sink.getvalue() == data,
               "the same bytes back", fetched)
