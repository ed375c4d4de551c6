"""The ftp session over a real upload directory (tmp_path): put, get, list, refusals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from socklab.protocol.ftp import PARTIAL_PREFIX
from socklab.sessions.ftp import FTP_BANNER, FtpSession
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
    first, *rest = session.feed(request(action="get", filename="g.bin") + LIST)
    assert json.loads(first) == {"status": 200, "filename": "g.bin", "filesize": 3000}
    assert b"".join(rest[:-1]) == body
    assert json.loads(rest[-1])["status"] == 200


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
