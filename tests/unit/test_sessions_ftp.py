"""The ftp session over a real upload directory (tmp_path): put, get, list, refusals."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from socklab.protocol.ftp import PARTIAL_PREFIX, RequestRefused, ServerFailed
from socklab.registry import FTP_BANNER
from socklab.sessions import FileSpan, byte_chunks
from socklab.sessions.ftp import FtpSession, storage_error
from socklab.storage import UploadDir

LIST = b'{"action": "list"}'


def request(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def put(name: str, size: int, **extra: object) -> bytes:
    return request(action="put", filename=name, filesize=size, **extra)


def answers(chunks) -> list[dict]:
    """Every answer line the session sent (a session here never sends a file body)."""
    return [json.loads(line) for line in b"".join(chunks).splitlines()]


def partials(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(PARTIAL_PREFIX)]


@pytest.fixture
def upload_root(tmp_path: Path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    return root


@pytest.fixture
def session(upload_root: Path) -> FtpSession:
    return FtpSession(UploadDir(upload_root))


def test_ftp_session_greets_with_one_line(session: FtpSession) -> None:
    assert session.greeting() == FTP_BANNER and FTP_BANNER.count(b"\n") == 1


@pytest.mark.parametrize("size", [0, 1, 100_000])
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_ftp_session_put_stores_file(session, upload_root: Path, size: int, bytewise) -> None:
    body = os.urandom(size)
    data = put("f.bin", size) + body
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    out = [reply for chunk in chunks for reply in session.feed(chunk)]
    digest = hashlib.sha256(body).hexdigest()
    assert answers(out) == [{"status": 200}, {"status": 201, "filename": "f.bin",
                                              "filesize": size, "sha256": digest}]
    assert (upload_root / "f.bin").read_bytes() == body
    assert partials(upload_root) == []


def test_ftp_session_file_visible_only_after_last_byte(session, upload_root: Path) -> None:
    body = os.urandom(1000)
    assert answers(session.feed(put("late.txt", 1000) + body[:-1])) == [{"status": 200}]
    assert "late.txt" not in os.listdir(upload_root) and len(partials(upload_root)) == 1
    (listed,) = answers(FtpSession(UploadDir(upload_root)).feed(LIST))
    assert listed == {"status": 200, "files": []}
    (done,) = answers(session.feed(body[-1:]))
    assert done["status"] == 201
    assert os.listdir(upload_root) == ["late.txt"]
    assert (upload_root / "late.txt").read_bytes() == body


def test_ftp_session_put_replaces_existing_file(session, upload_root: Path) -> None:
    (upload_root / "f").write_bytes(b"old contents")
    answers(session.feed(put("f", 3) + b"new"))
    assert (upload_root / "f").read_bytes() == b"new"


@pytest.mark.parametrize(("given", "status"), [("sha256 of body", 201), ("ab" * 32, 422)])
def test_ftp_session_put_checks_sha256(session, upload_root: Path, given: str, status) -> None:
    body = b"checked body"
    digest = hashlib.sha256(body).hexdigest()
    sha = digest if given == "sha256 of body" else given
    first, final = answers(session.feed(put("c.txt", len(body), sha256=sha) + body))
    assert first == {"status": 200}
    assert final["status"] == status and final["sha256"] == digest
    assert os.listdir(upload_root) == (["c.txt"] if status == 201 else [])


def test_ftp_session_two_puts_and_list_in_one_feed(session, upload_root: Path) -> None:
    out = answers(session.feed(put("a", 2) + b"aa" + put("b", 0) + put("c", 1) + b"c" + LIST))
    assert [a["status"] for a in out] == [200, 201, 200, 201, 200, 201, 200]
    assert out[-1]["files"] == [{"name": "a", "size": 2}, {"name": "b", "size": 0},
                                {"name": "c", "size": 1}]


def test_ftp_session_get_returns_file_bytes(session, upload_root: Path) -> None:
    body = os.urandom(3000)
    (upload_root / "g.bin").write_bytes(body)
    first, *rest = byte_chunks(session.feed(request(action="get", filename="g.bin") + LIST))
    assert json.loads(first) == {"status": 200, "filename": "g.bin", "filesize": 3000}
    assert b"".join(rest[:-1]) == body
    assert json.loads(rest[-1])["status"] == 200


def test_ftp_session_get_hands_the_file_to_the_loop(session, upload_root: Path) -> None:
    """The body is a FileSpan (a loop may sendfile it), open until the reply goes on."""
    (upload_root / "g.bin").write_bytes(b"12345")
    replies = session.feed(request(action="get", filename="g.bin"))
    next(replies)
    span = next(replies)
    assert isinstance(span, FileSpan) and span.count == 5 and span.file.read() == b"12345"
    assert list(replies) == [] and span.file.closed


@pytest.mark.parametrize("kind", ["missing", "directory", "symlink"])
def test_ftp_session_get_of_non_file_is_404(session, upload_root: Path, kind: str) -> None:
    outside = upload_root.parent / "secret"
    outside.write_bytes(b"secret")
    if kind == "directory":
        (upload_root / "x").mkdir()
    elif kind == "symlink":
        (upload_root / "x").symlink_to(outside)
    (reply,) = answers(session.feed(request(action="get", filename="x")))
    assert reply["status"] == 404


def test_ftp_session_list_hides_partials_and_symlinks(session, upload_root: Path) -> None:
    (upload_root / "kept.txt").write_bytes(b"12345")
    (upload_root / (PARTIAL_PREFIX + "crashed")).write_bytes(b"half")
    (upload_root / "link").symlink_to(upload_root / "kept.txt")
    (upload_root / "dir").mkdir()
    other = FtpSession(UploadDir(upload_root))
    list(other.feed(put("inflight", 10) + b"12345"))
    (reply,) = answers(session.feed(LIST))
    assert reply == {"status": 200, "files": [{"name": "kept.txt", "size": 5}]}


def test_ftp_session_list_survives_undecodable_name(session, upload_root: Path) -> None:
    (upload_root / os.fsdecode(b"caf\xe9")).write_bytes(b"x")
    (reply,) = answers(session.feed(LIST))
    assert reply == {"status": 200, "files": [{"name": "caf\udce9", "size": 1}]}


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "..", "sub/evil", "", 7,
                                  PARTIAL_PREFIX + "x"])
@pytest.mark.parametrize("action", ["put", "get"])
def test_ftp_session_bad_name_is_400_and_nothing_written(
        session, tmp_path: Path, upload_root: Path, name: object, action: str) -> None:
    (tmp_path / "evil").write_bytes(b"outside")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = answers(session.feed(request(action=action, filename=name, filesize=4) + LIST))
    assert [a["status"] for a in out] == [400, 200]
    assert out[1]["files"] == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "evil").read_bytes() == b"outside"


def test_ftp_session_refused_put_then_glued_request_answered(upload_root: Path) -> None:
    session = FtpSession(UploadDir(upload_root), max_size=10)
    out = answers(session.feed(put("big", 11) + LIST))
    assert [a["status"] for a in out] == [413, 200]
    assert os.listdir(upload_root) == []


@pytest.mark.parametrize("fields", [{"action": "delete", "filename": "a"}, {"verb": "list"}])
def test_ftp_session_unknown_action_keeps_connection(session, fields: dict) -> None:
    first, second = answers(session.feed(request(**fields) + LIST))
    assert 400 <= first["status"] < 500 and set(first["actions"]) == {"put", "get", "list"}
    assert second["status"] == 200
    (third,) = answers(session.feed(LIST))
    assert third["status"] == 200


def test_ftp_session_garbage_is_400_then_later_request_served(session) -> None:
    (bad,) = answers(session.feed(b"GET / HTTP/1.0\r\n\r\n"))
    assert bad["status"] == 400
    (good,) = answers(session.feed(LIST))
    assert good == {"status": 200, "files": []}


def test_ftp_session_close_mid_upload_leaves_nothing(session, upload_root: Path) -> None:
    answers(session.feed(put("cut.bin", 100) + b"x" * 50))
    assert len(partials(upload_root)) == 1
    session.close()
    assert os.listdir(upload_root) == []
    session.close()  # idempotent


# --- hardening ----------------------------------------------------------------------


def fill_disk(session: FtpSession) -> None:
    """Point the upload in progress at /dev/full: its next write fails with a real ENOSPC."""
    assert session.upload is not None
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, session.upload.fd)
    finally:
        os.close(full)


@pytest.mark.parametrize(("extra", "next_status"), [
    (LIST, 200), (b"garbage, not a request", 400), (put("next", 1) + b"n", 200)])
def test_ftp_session_bytes_after_filesize_are_next_request(session, upload_root: Path,
                                                           extra: bytes, next_status) -> None:
    body = os.urandom(1000)
    assert answers(session.feed(put("exact.bin", 1000) + body[:-1])) == [{"status": 200}]
    out = answers(session.feed(body[-1:] + extra))  # last data byte and more, one chunk
    assert out[0]["status"] == 201 and out[0]["filesize"] == 1000
    assert out[1]["status"] == next_status
    assert (upload_root / "exact.bin").read_bytes() == body
    assert partials(upload_root) == []


def test_ftp_session_enospc_mid_upload_is_507_after_body_and_next_served(
        session, upload_root: Path) -> None:
    (upload_root / "earlier").write_bytes(b"kept")
    assert answers(session.feed(put("full.bin", 1000))) == [{"status": 200}]
    fill_disk(session)
    assert answers(session.feed(b"x" * 400)) == []  # the client is still sending
    assert partials(upload_root) == []  # the temporary file is already gone
    out = answers(session.feed(b"x" * 600 + LIST))
    assert [a["status"] for a in out] == [507, 200]
    assert out[1]["files"] == [{"name": "earlier", "size": 4}]
    assert (upload_root / "earlier").read_bytes() == b"kept"


def test_ftp_session_put_beyond_free_space_is_507_before_200(upload_root: Path) -> None:
    info = os.statvfs(upload_root)
    too_big = info.f_bavail * info.f_frsize + (1 << 30)
    session = FtpSession(UploadDir(upload_root), max_size=too_big)
    out = answers(session.feed(put("huge", too_big) + LIST))
    assert [a["status"] for a in out] == [507, 200]
    assert os.listdir(upload_root) == []


@pytest.mark.parametrize("kind", ["symlink", "directory"])
def test_ftp_session_put_onto_non_file_is_409_and_nothing_written(
        session, tmp_path: Path, upload_root: Path, kind: str) -> None:
    victim = upload_root / "victim"
    victim.write_bytes(b"victim")
    if kind == "symlink":
        (upload_root / "taken").symlink_to(victim)
    else:
        (upload_root / "taken").mkdir()
    out = answers(session.feed(put("taken", 3) + LIST))
    assert [a["status"] for a in out] == [409, 200]
    assert victim.read_bytes() == b"victim"
    assert (upload_root / "taken").is_symlink() == (kind == "symlink")
    assert partials(upload_root) == []


def test_ftp_session_symlink_planted_mid_upload_is_409_at_end(session, upload_root: Path) -> None:
    victim = upload_root / "victim"
    victim.write_bytes(b"victim")
    assert answers(session.feed(put("late", 3) + b"ab")) == [{"status": 200}]
    (upload_root / "late").symlink_to(victim)
    (final,) = answers(session.feed(b"c"))
    assert final["status"] == 409
    assert (upload_root / "late").is_symlink() and victim.read_bytes() == b"victim"
    assert partials(upload_root) == []


def test_ftp_session_get_of_fifo_is_404(session, upload_root: Path) -> None:
    os.mkfifo(upload_root / "pipe")
    (reply,) = answers(session.feed(request(action="get", filename="pipe")))
    assert reply["status"] == 404


def test_ftp_session_digest_mismatch_keeps_earlier_upload(session, upload_root: Path) -> None:
    (upload_root / "c.txt").write_bytes(b"earlier")
    body = b"replacement"
    first, final = answers(session.feed(put("c.txt", len(body), sha256="ab" * 32) + body))
    assert (first["status"], final["status"]) == (200, 422)
    assert (upload_root / "c.txt").read_bytes() == b"earlier"
    assert partials(upload_root) == []


def test_ftp_session_same_name_from_two_clients_ends_whole(upload_root: Path) -> None:
    one, two = FtpSession(UploadDir(upload_root)), FtpSession(UploadDir(upload_root))
    body_one, body_two = os.urandom(50_000), os.urandom(50_000)
    answers(one.feed(put("same", 50_000)))
    answers(two.feed(put("same", 50_000)))
    for offset in range(0, 49_000, 1000):  # interleaved, as two threads would feed them
        assert answers(one.feed(body_one[offset : offset + 1000])) == []
        assert answers(two.feed(body_two[offset : offset + 1000])) == []
    assert len(partials(upload_root)) == 2
    (done_two,) = answers(two.feed(body_two[49_000:]))
    (done_one,) = answers(one.feed(body_one[49_000:]))
    assert done_one["status"] == done_two["status"] == 201
    assert (upload_root / "same").read_bytes() == body_one  # the last to finish, whole
    assert os.listdir(upload_root) == ["same"]


def test_ftp_session_farewell_mid_upload_is_408_and_drops_partial(session,
                                                                  upload_root: Path) -> None:
    answers(session.feed(put("stalled.bin", 100) + b"x" * 10))
    assert len(partials(upload_root)) == 1
    (reply,) = answers([session.farewell()])
    assert reply["status"] == 408 and reply["filename"] == "stalled.bin"
    assert os.listdir(upload_root) == []
    session.close()  # the loop closes afterwards: still harmless


def test_ftp_session_farewell_while_draining_failed_upload(session, upload_root: Path) -> None:
    answers(session.feed(put("full.bin", 100)))
    fill_disk(session)
    assert answers(session.feed(b"x" * 10)) == []
    (reply,) = answers([session.farewell()])
    assert reply["status"] == 408 and "filename" not in reply
    assert os.listdir(upload_root) == []


def test_ftp_session_farewell_between_requests_is_408(session) -> None:
    answers(session.feed(LIST))
    (reply,) = answers([session.farewell()])
    assert reply["status"] == 408 and "filename" not in reply


@pytest.mark.parametrize(("code", "status"), [
    (errno.ENOSPC, 507), (errno.EDQUOT, 507), (errno.EFBIG, 413), (errno.ENOENT, 404),
    (errno.ELOOP, 404), (errno.EISDIR, 404), (errno.EACCES, 500), (errno.EIO, 500)])
def test_ftp_storage_error_translation(code: int, status: int) -> None:
    error = storage_error(OSError(code, os.strerror(code)))
    assert error.status == status
    # whose fault: a 4xx is the client's, a 5xx ours
    assert isinstance(error, RequestRefused if status < 500 else ServerFailed)
