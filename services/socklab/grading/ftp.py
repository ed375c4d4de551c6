"""The checks of the ftp variant, run from a client host.

The learner spec (docs/exercises/14-write-your-own-ftp.md): a banner line on
connect, then JSON requests (put, get, list), each answered by one JSON line
with a ``status``; exactly ``filesize`` bytes of file data after a put's 200
and a get's 200; files live in ``/srv/uploads`` under plain names
(docs/protocols.md, "ftp-server"). Only what the spec makes exact is judged:
the banner's wording, an error's ``message``, the fields an answer carries
beyond those below, where an upload is kept while it arrives and how the
server schedules its clients are the learner's.

Exact fields: a put's first answer ``status`` 200 (or the refusal), its
second ``status`` 201 with ``filesize`` and ``sha256`` (64 lower-case hex
digits); a get's 200 with ``filesize``; a list's 200 with ``files``, objects
with ``name`` and ``size``, sorted by name.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from socklab.grading import wire
from socklab.grading.echo import Target, Wrong, fuzz_verdict, payload
from socklab.grading.verdict import excerpt, size

# An answer line, at most (the lab's clients refuse longer ones: docs/protocols.md, "Caps").
MAX_LINE = 4 << 20
# The largest upload the spec lets a server accept: a put above it is refused with 413.
MAX_FILE = 4 << 30
# Names that are not plain file names: each must be refused with 400, on put and on get.
BAD_NAMES: tuple[str, ...] = ("../escape", "/etc/passwd", "a/b", "..", ".", "", "nul\x00name")
# A get that would read /etc/passwd through the upload directory's parent.
BAD_GETS: tuple[str, ...] = ("../../etc/passwd",)
# The links the host plants before security.links (socklab.host.grade.grader.LINKS).
LINKS: tuple[str, ...] = ("escape-link", "dir-link")


def shown(fields: Any) -> str:
    """A request or an answer as a message quotes it: its JSON, cut at 200 characters."""
    text = fields if isinstance(fields, str) else json.dumps(fields)
    return text if len(text) <= 200 else text[:200] + "…"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Session:
    """One connection to the ftp server, past its banner, reading answer lines."""

    def __init__(self, target: Target, timeout: float = 10.0, what: str = "") -> None:
        self.target, self.timeout, self.buffer = target, timeout, b""
        self.what = f"{what}: " if what else ""
        try:
            self.sock = wire.connect(target.host, target.port)
        except OSError as error:
            raise Wrong(f"{self.what}connect to {target.where} failed: {error}") from None
        try:
            self.banner = self.line(f"{self.what}on connect, the banner line")
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        wire.reset(self.sock)

    def line(self, what: str) -> bytes:
        """The next line the server sends, with its ``\\n``; Wrong if none comes."""
        self.sock.settimeout(self.timeout)
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise Wrong(f"{what}: expected a line ending in \\n; {size(len(self.buffer))} "
                            f"came without one, starting {excerpt(self.buffer, 0)}")
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise Wrong(f"{what}: nothing more came within {self.timeout:.0f} s; "
                            f"had {self.buffer[:80]!r}", "timeout") from None
            except ConnectionResetError:
                raise Wrong(f"{what}: the server reset the connection; had "
                            f"{self.buffer[:80]!r}") from None
            if not chunk:
                raise Wrong(f"{what}: the server closed the connection; had "
                            f"{self.buffer[:80]!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line + b"\n"

    def answer(self, what: str) -> dict[str, Any]:
        """The next answer: one JSON object with a ``status`` on one line."""
        raw = self.line(what)
        try:
            found = json.loads(raw)
        except ValueError:
            raise Wrong(f"{what}: expected one JSON object on a line; came {raw[:80]!r}") from None
        if not isinstance(found, dict) or "status" not in found:
            raise Wrong(f"{what}: expected a JSON object with a status; came {raw[:80]!r}")
        return found

    def read(self, count: int, what: str) -> bytes:
        """Exactly ``count`` bytes (a file after a get's 200)."""
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        if len(data) < count:
            rest, ending = wire.read_exact(self.sock, count - len(data), self.timeout)
            data += rest
            if len(data) < count:
                raise Wrong(f"{what}: expected {count:,} bytes; {len(data):,} came ({ending})",
                            "timeout" if ending == "timeout" else "failed")
        return data

    def send(self, request: dict[str, Any] | bytes) -> str:
        """Send one request (a dict as its JSON, or raw bytes); how a message names it."""
        raw = request if isinstance(request, bytes) else json.dumps(request).encode()
        self.sock.settimeout(self.timeout)
        self.sock.sendall(raw)
        return f"{self.what}sent {shown(raw.decode('utf-8', 'replace'))}"

    def ask(self, request: dict[str, Any] | bytes) -> tuple[dict[str, Any], str]:
        """Send a request and read its (first) answer; (answer, what was sent)."""
        sent = self.send(request)
        return self.answer(f"{sent}; its answer"), sent

    def quiet(self, seconds: float) -> bytes:
        """What arrives unasked within ``seconds`` (b"": nothing), past what was buffered."""
        extra, self.buffer = self.buffer, b""
        return extra or wire.arrives_within(self.sock, seconds)


def expect_status(found: dict[str, Any], status: int, sent: str, why: str = "") -> None:
    if found.get("status") != status:
        because = f" ({why})" if why else ""
        raise Wrong(f"{sent}; expected status {status}{because}; came {shown(found)}")


# --- the three requests, as a correct client makes them -------------------------------


def put(session: Session, name: str, data: bytes, *, with_sha256: bool = False,
        after: bytes = b"") -> dict[str, Any]:
    """Upload ``data`` as ``name``: 200, the bytes (and ``after`` in the same send), 201.

    The 201 must carry the data's ``filesize`` and ``sha256``.
    """
    request: dict[str, Any] = {"action": "put", "filename": name, "filesize": len(data)}
    if with_sha256:
        request["sha256"] = digest(data)
    first, sent = session.ask(request)
    expect_status(first, 200, sent)
    session.sock.sendall(data + after)
    glued = f" and, in the same send, {after.decode()}" if after else ""
    sent = f"{sent}, then its {len(data):,} bytes{glued}"
    done = session.answer(f"{sent}; the second answer")
    expect_status(done, 201, sent)
    if done.get("filesize") != len(data):
        raise Wrong(f"{sent}; expected the 201 to carry filesize {len(data)}; came {shown(done)}")
    if done.get("sha256") != digest(data):
        raise Wrong(f"{sent}; expected the 201 to carry the data's sha256 {digest(data)} "
                    f"(64 lower-case hex digits); came {shown(done)}")
    return done


def get(session: Session, name: str, expected: bytes | None = None) -> bytes:
    """Download ``name``: a 200 with ``filesize``, then exactly that many bytes."""
    found, sent = session.ask({"action": "get", "filename": name})
    expect_status(found, 200, sent)
    count = found.get("filesize")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise Wrong(f"{sent}; expected the 200 to carry filesize, a whole number; "
                    f"came {shown(found)}")
    if expected is not None and count != len(expected):
        raise Wrong(f"{sent}; expected filesize {len(expected):,} (the file put); "
                    f"came {shown(found)}")
    data = session.read(count, f"{sent}; the file's bytes after its 200")
    if expected is not None and data != expected:
        at = next(i for i, (a, b) in enumerate(zip(data, expected, strict=True)) if a != b)
        raise Wrong(f"{sent}; got {size(count)} back, but not the bytes put: first "
                    f"difference at byte {at:,}: expected {excerpt(expected, at)}, came "
                    f"{excerpt(data, at)}")
    return data


def listing(session: Session, what: str = "") -> list[dict[str, Any]]:
    """Send a list; its ``files``."""
    sent = session.send({"action": "list"})
    return files_of(session, f"{what}{sent}")


def files_of(session: Session, sent: str) -> list[dict[str, Any]]:
    """The answer of a list already sent: ``files``, objects with a ``name`` (text) and a
    ``size`` (a whole number)."""
    found = session.answer(f"{sent}; its answer")
    expect_status(found, 200, sent)
    files = found.get("files")
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str)
            and isinstance(f.get("size"), int) for f in files):
        raise Wrong(f"{sent}; expected files: a list of objects with a name and a size; "
                    f"came {shown(found)}")
    return files


def sizes_of(files: list[dict[str, Any]]) -> dict[str, int]:
    return {f["name"]: f["size"] for f in files}


def refused(session: Session, request: dict[str, Any], status: int, why: str) -> None:
    """A request the server must refuse with ``status``; a put is never followed by data.

    A put answered 200 instead is sent its bytes, and the message says what
    the server then answered: where its file went is for the learner to see.
    """
    found, sent = session.ask(request)
    if found.get("status") == status:
        return
    if found.get("status") == 200 and request.get("action") == "put":
        raise Wrong(f"{sent}; expected status {status} ({why}), and no file data; came "
                    f"{shown(found)}: the server would take the file{_then(session, request)}")
    if found.get("status") == 200 and request.get("action") == "get":
        count = found.get("filesize")
        data = b""
        if isinstance(count, int) and count > 0:
            with contextlib.suppress(Wrong, OSError):
                data = session.read(min(count, 64), "the file")
        came = f", then {size(count)} of data starting {data[:48]!r}" if data else ""
        raise Wrong(f"{sent}; expected status {status} ({why}); came {shown(found)}{came}")
    expect_status(found, status, sent, why)


def _then(session: Session, request: dict[str, Any]) -> str:
    """After a put wrongly answered 200: send its bytes, and say what the server answered."""
    count = request.get("filesize")
    if not isinstance(count, int) or not 0 <= count <= 1024:
        return ""
    session.timeout = 3.0
    try:
        session.sock.sendall(b"x" * count)
        return f"; sent it {count} bytes, then came {shown(session.answer('the second answer'))}"
    except Wrong as wrong:
        return f"; sent it {count} bytes, then {str(wrong).split(': ', 1)[-1]}"
    except OSError as error:
        return f"; sending it {count} bytes failed: {error}"


def served(target: Target, what: str = "a fresh client") -> None:
    """A correct client, on a new connection, puts a small file and gets it back."""
    data = b"still there? The quick brown fox jumps over the lazy dog 0123456789\n"
    try:
        with Session(target) as session:
            put(session, "grade-still-there.txt", data)
            get(session, "grade-still-there.txt", data)
    except Wrong as wrong:
        raise Wrong(f"afterwards, {what}: {wrong}", wrong.status) from None


# --- conformance ---------------------------------------------------------------------


def banner(target: Target) -> None:
    with Session(target, timeout=5.0, what="connected and sent nothing") as session:
        extra = session.quiet(0.5)
        if extra:
            raise Wrong(f"connected and sent nothing; expected one banner line, then nothing "
                        f"before a request; after {session.banner[:80]!r} came {extra[:80]!r}")


def put_get(target: Target) -> None:
    one, mib, empty = payload(1, 12), payload(1 << 20, 13), b""
    with Session(target) as session:
        put(session, "grade-one-byte.bin", one)
        put(session, "grade-one-mib.bin", mib, with_sha256=True)
        put(session, "grade-empty.bin", empty)
        get(session, "grade-one-byte.bin", one)
        get(session, "grade-one-mib.bin", mib)
        get(session, "grade-empty.bin", empty)
        files = sizes_of(listing(session, "after the get of a 0-byte file, "))
        if files.get("grade-empty.bin") != 0:
            raise Wrong(f"after putting a 0-byte grade-empty.bin, expected the list to show it "
                        f"with size 0; the list has {shown(files)}")


def list_files(target: Target) -> None:
    puts = (("grade-list-c.txt", b"ccc"), ("grade-list-a.txt", b"a"),
            ("grade-list-b.txt", b"bbbbb"), ("grade-list-b.txt", b"bb"))
    with Session(target) as session:
        for name, data in puts:
            put(session, name, data)
        files = listing(session)
    said = ("after putting grade-list-c.txt (3 B), grade-list-a.txt (1 B), grade-list-b.txt "
            "(5 B) and grade-list-b.txt again (2 B)")
    names = [f["name"] for f in files]
    if names != sorted(names):
        raise Wrong(f"{said}, expected the list sorted by name; came the names {shown(names)}")
    if len(names) != len(set(names)):
        raise Wrong(f"{said}, expected each name once; came the names {shown(names)}")
    found = sizes_of(files)
    for name, count in (("grade-list-a.txt", 1), ("grade-list-b.txt", 2),
                        ("grade-list-c.txt", 3)):
        if found.get(name) != count:
            raise Wrong(f"{said}, expected {name} in the list with size {count}; "
                        f"came {shown(files)}")


def split(target: Target) -> None:
    data = b"sent a byte at a time"
    request = json.dumps({"action": "put", "filename": "grade-split.txt",
                          "filesize": len(data)}).encode()
    with Session(target) as session:
        for i in range(len(request)):
            session.sock.sendall(request[i:i + 1])
            time.sleep(0.01)
        sent = f"sent {request.decode()} in {len(request)} sends of one byte, 10 ms apart"
        expect_status(session.answer(f"{sent}; its answer"), 200, sent)
        for i in range(0, len(data), 5):
            session.sock.sendall(data[i:i + 5])
            time.sleep(0.01)
        sent += f", then its {len(data)} bytes in sends of 5"
        done = session.answer(f"{sent}; the second answer")
        expect_status(done, 201, sent)
        request = json.dumps({"action": "get", "filename": "grade-split.txt"}).encode()
        for i in range(len(request)):
            session.sock.sendall(request[i:i + 1])
            time.sleep(0.01)
        sent = f"sent {request.decode()} in {len(request)} sends of one byte, 10 ms apart"
        found = session.answer(f"{sent}; its answer")
        expect_status(found, 200, sent)
        if found.get("filesize") != len(data):
            raise Wrong(f"{sent}; expected filesize {len(data)}; came {shown(found)}")
        back = session.read(len(data), f"{sent}; the file's bytes")
        if back != data:
            raise Wrong(f"{sent}; expected the bytes put, {data!r}; came {back!r}")


def glued(target: Target) -> None:
    data = payload(1000, 14)
    after = json.dumps({"action": "list"}).encode()
    with Session(target) as session:
        put(session, "grade-glued.bin", data, after=after)
        said = ("sent a put of 1,000 bytes, then the bytes and {\"action\": \"list\"} in one "
                "send; after the 201")
        files = sizes_of(files_of(session, said))
        if files.get("grade-glued.bin") != len(data):
            raise Wrong(f"{said}, expected the list to show grade-glued.bin with size 1000 (the "
                        f"bytes after the 1,000th are the next request, not the file); "
                        f"came {shown(files)}")
        two = (json.dumps({"action": "get", "filename": "grade-glued.bin"})
               + json.dumps({"action": "list"})).encode()
        sent = session.send(two) + " (two requests in one send)"
        found = session.answer(f"{sent}; the first answer")
        expect_status(found, 200, sent)
        if found.get("filesize") != len(data):
            raise Wrong(f"{sent}; expected the get's 200 with filesize 1000; came {shown(found)}")
        if session.read(len(data), f"{sent}; the file's bytes") != data:
            raise Wrong(f"{sent}; the 1,000 bytes after the get's 200 are not the file put")
        files_of(session, f"{sent}; after the file's bytes, the second request")


# Requests a server must answer 400, the connection going on; (bytes, why).
BAD_REQUESTS: tuple[tuple[bytes, str], ...] = (
    (b"not JSON at all\n", "not JSON"),
    (b'{"action": "list",, "oops": 1}', "a complete object that is not valid JSON"),
    (b'["list"]', "JSON, but not an object"),
    (b'{"action": "delete", "filename": "x"}', "an unknown action"),
    (b'{"filename": "x"}', "no action"),
)


def errors(target: Target) -> None:
    with Session(target, timeout=5.0) as session:
        for raw, why in BAD_REQUESTS:
            found, sent = session.ask(raw)
            expect_status(found, 400, sent, why)
            drain_refusals(session, sent)
            listing(session, f"{sent}, answered 400; then the connection goes on: ")
        found, sent = session.ask({"action": "get", "filename": "grade-no-such-file.txt"})
        expect_status(found, 404, sent, "no such file")
        listing(session, f"{sent}, answered 404; then the connection goes on: ")


def drain_refusals(session: Session, sent: str) -> None:
    """Further 400s for the bytes of one bad request (a server may answer it in parts)."""
    while True:
        session.timeout, saved = 0.3, session.timeout
        try:
            found = session.answer(f"{sent}; after its 400")
        except Wrong as wrong:
            if wrong.status == "timeout":
                return
            raise
        finally:
            session.timeout = saved
        expect_status(found, 400, f"{sent} (answered 400); then, unasked", "nothing more")


# --- the lab's client ----------------------------------------------------------------

# `socklab client ftp` at its prompt, in a directory of its own: a put of a file from a
# subdirectory (its name without the directory goes to the server), the list, a get of it
# (saved under its name where the client runs), then exit. One connection for all three.
CLIENT_FILE = "grade-tutorial-client.bin"
CLIENT_SIZE = 200_000
CLIENT_TYPED = (f"put up/{CLIENT_FILE}", "ls", f"get {CLIENT_FILE}", "exit")
CLIENT_WAIT = 20.0


def put_answer(screen: str) -> Any:
    """The answer the client printed after a put (a dict, as Python prints it); None if none."""
    for line in screen.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
                return ast.literal_eval(line)
    return None


def listed(screen: str, name: str, count: int) -> bool:
    """Whether the client's ``ls`` printed ``name`` with its size, as it prints an entry."""
    return f"{count:>12}  {name}" in screen.splitlines()


def tutorial_client(target: Target) -> None:
    """``socklab client ftp``, typed: put a file, ls, get it back; the client's view of each."""
    from socklab.grading import tutorial

    data = payload(CLIENT_SIZE, 23)
    with tempfile.TemporaryDirectory(prefix="socklab-grade-") as where:
        here = Path(where)
        (here / "up").mkdir()
        (here / "up" / CLIENT_FILE).write_bytes(data)
        shown = tutorial.run_client(["ftp", "--host", target.host, "--port", str(target.port)],
                                    CLIENT_TYPED, seconds=CLIENT_WAIT, cwd=here)
        saved = here / CLIENT_FILE
        back = saved.read_bytes() if saved.is_file() else None
    did = (f"ran `{shown.command}` and typed {tutorial.typed_words(CLIENT_TYPED)} "
           f"(a file of {size(CLIENT_SIZE)})")
    tutorial.ending(shown, did)
    after = [*tutorial.screens(shown.events), "", "", ""]
    answer = put_answer(after[1])
    if not isinstance(answer, dict) or answer.get("status") != 201:
        raise Wrong(f"{did}; expected the put to end with status 201; the client printed "
                    f"{after[1][:200]!r}")
    if not listed(after[2], CLIENT_FILE, CLIENT_SIZE):
        raise Wrong(f"{did}; expected ls to print {CLIENT_FILE} with its size "
                    f"{CLIENT_SIZE}; it printed {after[2][:300]!r}")
    if back != data:
        came = "no file" if back is None else f"{size(len(back))}, not the bytes put"
        raise Wrong(f"{did}; expected the get to save the {size(CLIENT_SIZE)} put; came "
                    f"{came}. The client printed {after[3][:200]!r}")


# --- concurrency ---------------------------------------------------------------------


CHUNK = 256 << 10


def two_uploads(target: Target) -> None:
    first, second = payload(4 << 20, 21), payload(4 << 20, 22)
    with Session(target, what="the first client") as one, \
            Session(target, what="the second client") as two:
        requests = []
        for session, name, data in ((one, "grade-two-1.bin", first),
                                    (two, "grade-two-2.bin", second)):
            request = {"action": "put", "filename": name, "filesize": len(data)}
            found, sent = session.ask(request)
            expect_status(found, 200, f"{sent} (both clients connected, the first's upload "
                          "announced)")
            requests.append(sent)
        for at in range(0, len(first), CHUNK):  # both uploads at once, 256 KiB each in turn
            one.sock.sendall(first[at:at + CHUNK])
            two.sock.sendall(second[at:at + CHUNK])
        for session, sent, data in ((one, requests[0], first), (two, requests[1], second)):
            said = f"{sent}, then 4 MiB in turns with the other client"
            done = session.answer(f"{said}; the second answer")
            expect_status(done, 201, said)
            if done.get("sha256") != digest(data):
                raise Wrong(f"{said}; expected sha256 {digest(data)}; came {shown(done)}")
        get(one, "grade-two-2.bin", second)
        get(two, "grade-two-1.bin", first)


def silent_client(target: Target) -> None:
    with contextlib.ExitStack() as stack:
        stack.enter_context(Session(target, what="a first client"))  # silent after the banner
        half = stack.enter_context(
            Session(target, timeout=3.0, what="a second client, while a first was silent"))
        half.send(b'{"action": "pu')  # and nothing more
        stalled = stack.enter_context(
            Session(target, timeout=3.0, what="a third client, while two others were silent"))
        found, sent = stalled.ask({"action": "put", "filename": "grade-stalled.bin",
                                   "filesize": 1 << 20})
        expect_status(found, 200, sent)
        stalled.sock.sendall(payload(100 << 10, 23))  # a tenth of it, then nothing
        started = time.monotonic()
        data = b"served while three others wait\n"
        try:
            with Session(target, timeout=3.0) as session:
                put(session, "grade-not-stalled.txt", data)
                get(session, "grade-not-stalled.txt", data)
                listing(session)
        except Wrong as wrong:
            raise Wrong("with one client silent after the banner, one stopped in the middle "
                        "of a request and one in the middle of an upload (100 KiB of 1 MiB), "
                        f"a fourth client: {wrong}", wrong.status) from None
        seconds = time.monotonic() - started
        if seconds > 3.0:
            raise Wrong(f"a fourth client was served only after {seconds:.1f} s while three "
                        "others were silent (expected within 3 s)")


# --- robustness ----------------------------------------------------------------------


def cut_upload(target: Target) -> None:
    cuts = (("grade-cut-reset.bin", "a reset", Session.reset),
            ("grade-cut-close.bin", "a close (FIN)", Session.close))
    for name, _, end in cuts:
        with Session(target) as session:
            found, sent = session.ask({"action": "put", "filename": name,
                                       "filesize": 1 << 20})
            expect_status(found, 200, sent)
            session.sock.sendall(payload(256 << 10, 24))
            time.sleep(0.2)
            end(session)
    deadline = time.monotonic() + 5.0
    with Session(target) as session:
        while True:
            files = sizes_of(listing(session, "after two uploads cut short, "))
            left = {name: files[name] for name, _, _ in cuts if name in files}
            if not left:
                break
            if time.monotonic() > deadline:
                name = next(iter(left))
                how = next(h for n, h, _ in cuts if n == name)
                raise Wrong(f"an upload of 1 MiB as {name} was cut after 256 KiB by {how}; "
                            f"5 s later the list still shows {name} ({left[name]:,} bytes): "
                            "a file must appear under its name only once all of it arrived")
            time.sleep(0.25)
        for name, how, _ in cuts:
            found, sent = session.ask({"action": "get", "filename": name})
            expect_status(found, 404, sent, f"its upload was cut short by {how}")
    served(target, "a fresh client after two uploads cut short")


def vanish(target: Target) -> None:
    with Session(target) as session:
        put(session, "grade-vanish.bin", payload(1 << 20, 25))
    get_request = json.dumps({"action": "get", "filename": "grade-vanish.bin"}).encode()
    put_request = json.dumps({"action": "put", "filename": "grade-vanished.bin",
                              "filesize": 1000}).encode()
    for i in range(50):
        with contextlib.suppress(OSError):
            sock = wire.connect(target.host, target.port)
            kind = i % 5
            if kind == 1:
                sock.sendall(json.dumps({"action": "list"}).encode())
            elif kind == 2:
                sock.sendall(get_request)  # 1 MiB owed to a client that is gone
                time.sleep(0.01)
            elif kind == 3:
                sock.sendall(put_request)
            if kind == 4:
                wire.reset(sock)
            else:
                sock.close()
    time.sleep(0.5)
    served(target, "a fresh client after 50 clients connected and left at once (some after "
           "a list, a get of 1 MiB or a put, without reading the answer)")


def fuzz(target: Target) -> None:
    from socklab.probes.fuzz.families.ftp import Ftp
    from socklab.probes.fuzz.judging import HealthError
    from socklab.probes.fuzz.tally import Run
    from socklab.probes.fuzz.tally import fuzz as run_fuzz
    from socklab.probes.fuzz.targets import Target as FuzzTarget

    class AnyBanner(Ftp):
        """The lab's ftp family, whose health check takes any banner (its wording is free)."""

        def check(self, host: str, port: int, token: int) -> None:
            data = b"health check %d\n" % token * 64
            name = f"fuzz-health-{token}.txt"
            try:
                with Session(Target.of("ftp", host, port)) as session:
                    put(session, name, data)
                    get(session, name, data)
            except Wrong as wrong:
                raise HealthError(str(wrong)) from None

    variant = target.variant
    family = AnyBanner(variant, "ftp")
    run = Run(FuzzTarget("ftp", variant, "ftp", family), target.host, target.port, seed=1,
              indices=list(range(300)), batch=50, concurrency=family.concurrency,
              read_timeout=1.0)
    try:
        report = run_fuzz(run).report()
    except OSError as error:
        raise Wrong(f"before the fuzzer: {error}") from None
    fuzz_verdict(report, "sent 300 malformed or abruptly ended connections (fuzzer seed 1)")
    served(target, "a fresh client after 300 fuzzer cases")


# --- resources (the host measures; these only make the traffic) ----------------------


def churn(target: Target, count: int = 300) -> None:
    data = payload(4096, 26)
    with Session(target) as session:
        put(session, "grade-churn.bin", data)
    for i in range(count):
        try:
            session = Session(target)
        except Wrong as wrong:
            raise Wrong(f"connection {i + 1} of {count}: {wrong}", wrong.status) from None
        try:
            if i % 2:
                listing(session)
            else:
                get(session, "grade-churn.bin", data)
        except Wrong as wrong:
            raise Wrong(f"connection {i + 1} of {count}: {wrong}", wrong.status) from None
        finally:
            if i % 3 == 2:
                session.reset()
            else:
                session.close()
    time.sleep(1.0)


def threads_churn(target: Target) -> None:
    for batch in range(5):
        sessions = []
        try:
            for _ in range(20):
                sessions.append(Session(target))
            for session in sessions:
                listing(session, f"batch {batch + 1} of 5, 20 clients connected: ")
        finally:
            for session in sessions:
                session.close()
    time.sleep(1.0)


# --- security ------------------------------------------------------------------------


def names(target: Target) -> None:
    with Session(target, timeout=5.0) as session:
        for name in BAD_NAMES:
            refused(session, {"action": "put", "filename": name, "filesize": 16}, 400,
                    "not a plain file name")
        for name in BAD_NAMES + BAD_GETS:
            refused(session, {"action": "get", "filename": name}, 400, "not a plain file name")
        files = listing(session, "after puts and gets of names that are not plain file names, ")
    listed = [f["name"] for f in files if f["name"] in BAD_NAMES or "/" in f["name"]]
    if listed:
        raise Wrong(f"after puts of names that are not plain file names (all answered 400), "
                    f"the list shows {shown(listed)}")


def links(target: Target) -> None:
    # The host planted escape-link -> /etc/passwd and dir-link -> /srv in /srv/uploads.
    with Session(target, timeout=5.0) as session:
        for name in LINKS:
            refused(session, {"action": "get", "filename": name}, 404,
                    "a symbolic link, never followed")
        files = listing(session, "with the links escape-link and dir-link planted, ")
        shown_links = [f["name"] for f in files if f["name"] in LINKS]
        if shown_links:
            raise Wrong(f"with escape-link -> /etc/passwd and dir-link -> /srv planted in "
                        f"/srv/uploads, the list shows {shown(shown_links)}: it lists regular "
                        "files only")
        for name in LINKS:
            refused(session, {"action": "put", "filename": name, "filesize": 16}, 409,
                    "the name is held by a symbolic link")
        refused(session, {"action": "get", "filename": "escape-link"}, 404,
                "after the put to it was refused, still a link, never followed")


def size_cap(target: Target) -> None:
    with Session(target, timeout=5.0) as session:
        for count in (MAX_FILE + 1, 1 << 40):
            refused(session, {"action": "put", "filename": "grade-huge.bin",
                              "filesize": count}, 413, "above the 4 GiB limit, before any data")
            listing(session, f"after a put of {count:,} bytes answered 413 (no data sent), ")
        for count in (-1, "12", 1.5):
            refused(session, {"action": "put", "filename": "grade-huge.bin",
                              "filesize": count}, 400, "filesize is not a whole number >= 0")
        files = listing(session, "after puts refused up front, ")
    if "grade-huge.bin" in sizes_of(files):
        raise Wrong(f"after every put of grade-huge.bin was refused, the list shows it: "
                    f"{shown(files)}")


CHECKS: dict[str, Callable[[Target], None]] = {
    "conformance.banner": banner,
    "conformance.put-get": put_get,
    "conformance.list": list_files,
    "conformance.split": split,
    "conformance.glued": glued,
    "conformance.errors": errors,
    "conformance.tutorial-client": tutorial_client,
    "concurrency.two-uploads": two_uploads,
    "concurrency.silent-client": silent_client,
    "robustness.cut-upload": cut_upload,
    "robustness.vanish": vanish,
    "robustness.fuzz": fuzz,
    "resources.fd-leak": churn,
    "resources.threads": threads_churn,
    "security.names": names,
    "security.links": links,
    "security.size-cap": size_cap,
}
