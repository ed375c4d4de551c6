"""The upload directory: atomic uploads, the partial-file sweep, safe reads, the listing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from socklab.protocol.ftp import PARTIAL_PREFIX, FtpError
from socklab.sessions import FILE_READ_CHUNK, FileSpan
from socklab.storage import UploadDir


@pytest.fixture
def uploads(tmp_path: Path) -> UploadDir:
    root = tmp_path / "uploads"
    root.mkdir()
    return UploadDir(root)


def names(uploads: UploadDir) -> list[str]:
    return sorted(os.listdir(uploads.root))


def test_storage_upload_commit_renames_into_place(uploads: UploadDir) -> None:
    upload = uploads.begin("a.txt")
    upload.write(b"hello ")
    upload.write(b"world")
    assert names(uploads) == [upload.temp_path.name]
    assert upload.temp_path.name.startswith(PARTIAL_PREFIX)
    assert upload.commit() == hashlib.sha256(b"hello world").hexdigest()
    assert names(uploads) == ["a.txt"] and upload.size == 11
    assert (uploads.root / "a.txt").read_bytes() == b"hello world"
    assert stat.S_IMODE((uploads.root / "a.txt").stat().st_mode) == 0o644


def test_storage_upload_abort_removes_temp(uploads: UploadDir) -> None:
    upload = uploads.begin("a.txt")
    upload.write(b"half")
    upload.abort()
    assert names(uploads) == []
    upload.abort()  # a second abort is harmless


@pytest.mark.parametrize("name", ["../x", "a/b", PARTIAL_PREFIX + "x", ""])
def test_storage_begin_refuses_bad_names(uploads: UploadDir, name: str) -> None:
    with pytest.raises(FtpError):
        uploads.begin(name)
    assert names(uploads) == []


def test_storage_sweep_partials_removes_only_partials(uploads: UploadDir) -> None:
    pending = [uploads.begin("one"), uploads.begin("two")]
    (uploads.root / "kept").write_bytes(b"k")
    assert uploads.sweep_partials() == 2
    for upload in pending:
        upload.abort()
    assert names(uploads) == ["kept"]
    assert uploads.sweep_partials() == 0


def test_storage_sweep_partials_skips_a_directory_under_the_prefix(uploads: UploadDir) -> None:
    (uploads.root / (PARTIAL_PREFIX + "dir")).mkdir()
    (uploads.root / (PARTIAL_PREFIX + "file")).write_bytes(b"half")
    assert uploads.sweep_partials() == 1
    assert names(uploads) == [PARTIAL_PREFIX + "dir"]


def test_storage_open_read_returns_file_and_size(uploads: UploadDir) -> None:
    (uploads.root / "r").write_bytes(b"12345")
    file, size = uploads.open_read("r")
    assert size == 5
    with file:
        assert file.read() == b"12345"


def test_storage_open_read_refuses_symlink_outside(uploads: UploadDir, tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"secret")
    (uploads.root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError) as caught:
        uploads.open_read("link")
    assert caught.value.errno == errno.ELOOP


def test_storage_open_read_refuses_directory(uploads: UploadDir) -> None:
    (uploads.root / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        uploads.open_read("d")


def test_storage_open_read_missing_is_enoent(uploads: UploadDir) -> None:
    with pytest.raises(FileNotFoundError):
        uploads.open_read("nothing")


def test_storage_listing_sorted_hides_partials_links_and_dirs(uploads: UploadDir) -> None:
    for name, size in [("b", 2), ("a", 1), ("é", 3), ("C", 0)]:
        (uploads.root / name).write_bytes(b"x" * size)
    pending = uploads.begin("pending")
    pending.write(b"xx")
    (uploads.root / "link").symlink_to(uploads.root / "a")
    (uploads.root / "dir").mkdir()
    assert uploads.listing() == [{"name": "C", "size": 0}, {"name": "a", "size": 1},
                                 {"name": "b", "size": 2}, {"name": "é", "size": 3}]
    pending.abort()


def test_file_span_pieces_span_chunk_boundary(uploads: UploadDir) -> None:
    data = os.urandom(FILE_READ_CHUNK + 1)
    (uploads.root / "big").write_bytes(data)
    file, size = uploads.open_read("big")
    with file:
        chunks = list(FileSpan(file, size).pieces())
    assert [len(c) for c in chunks] == [FILE_READ_CHUNK, 1]
    assert b"".join(chunks) == data


def test_file_span_shorter_than_announced_raises(uploads: UploadDir) -> None:
    """A file cut short under a download ends the connection, never a client's wait."""
    (uploads.root / "f").write_bytes(b"12345")
    file, _ = uploads.open_read("f")
    with file, pytest.raises(EOFError, match="3 bytes short of the 8"):
        list(FileSpan(file, 8).pieces(size=2))


def test_ftp_get_closes_file_when_client_leaves_before_first_byte(uploads: UploadDir) -> None:
    from socklab.sessions.ftp import FtpSession

    (uploads.root / "f").write_bytes(b"x" * (FILE_READ_CHUNK + 1))
    open_before = len(os.listdir("/proc/self/fd"))
    replies = FtpSession(uploads).feed(b'{"action": "get", "filename": "f"}')
    assert next(replies).startswith(b'{"status": 200')
    replies.close()  # the send of the answer failed: the driver closes the generator
    assert len(os.listdir("/proc/self/fd")) == open_before


# --- hardening: full disk, planted names, same-name uploads, special files ----------


def fill_disk(upload) -> None:
    """Point ``upload``'s descriptor at /dev/full: every later write fails with a real ENOSPC."""
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, upload.fd)
    finally:
        os.close(full)


def test_storage_enospc_surfaces_at_write_and_abort_leaves_nothing(uploads: UploadDir) -> None:
    upload = uploads.begin("full.bin")
    fill_disk(upload)
    with pytest.raises(OSError) as caught:
        upload.write(b"x" * 100)
    assert caught.value.errno == errno.ENOSPC
    upload.abort()  # nothing buffered to flush again: abort cannot fail on the same ENOSPC
    assert names(uploads) == []


def test_storage_begin_refuses_more_than_free_space(uploads: UploadDir) -> None:
    info = os.statvfs(uploads.root)
    with pytest.raises(OSError) as caught:
        uploads.begin("huge", info.f_bavail * info.f_frsize + (1 << 30))
    assert caught.value.errno == errno.ENOSPC
    assert names(uploads) == []


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "directory", "fifo"])
def test_storage_begin_refuses_name_held_by_non_file(uploads: UploadDir, tmp_path: Path,
                                                     kind: str) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"victim")
    planted = uploads.root / "taken"
    if kind == "symlink":
        planted.symlink_to(target)
    elif kind == "dangling symlink":
        planted.symlink_to(tmp_path / "nowhere")
    elif kind == "directory":
        planted.mkdir()
    else:
        os.mkfifo(planted)
    with pytest.raises(FtpError) as caught:
        uploads.begin("taken")
    assert caught.value.status == 409
    assert names(uploads) == ["taken"] and target.read_bytes() == b"victim"
    assert not (tmp_path / "nowhere").exists()


def test_storage_symlink_planted_before_commit_refused_link_kept(uploads: UploadDir,
                                                                 tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"victim")
    upload = uploads.begin("late")
    upload.write(b"new data")
    (uploads.root / "late").symlink_to(target)
    with pytest.raises(FtpError) as caught:
        upload.commit()
    assert caught.value.status == 409
    upload.abort()
    assert names(uploads) == ["late"] and (uploads.root / "late").is_symlink()
    assert target.read_bytes() == b"victim"


def test_storage_commit_replaces_hard_link_never_writes_through(uploads: UploadDir,
                                                                tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"outside")
    os.link(outside, uploads.root / "linked")  # a regular file: replaceable
    upload = uploads.begin("linked")
    upload.write(b"uploaded")
    upload.commit()
    assert (uploads.root / "linked").read_bytes() == b"uploaded"
    assert outside.read_bytes() == b"outside"  # rename swapped the entry, not the inode


def test_storage_same_name_uploads_interleaved_end_whole(uploads: UploadDir) -> None:
    first, second = uploads.begin("same"), uploads.begin("same")
    assert first.temp_path != second.temp_path
    for index in range(100):  # interleaved writes, as two threads would do
        first.write(b"A" * 1000)
        second.write(bytes([index]) * 1000)
    second_digest = second.commit()
    assert (uploads.root / "same").read_bytes() == b"".join(bytes([i]) * 1000
                                                           for i in range(100))
    first.commit()
    assert (uploads.root / "same").read_bytes() == b"A" * 100_000  # the last rename wins, whole
    assert second_digest != first.sha256.hexdigest() and names(uploads) == ["same"]


def test_storage_open_read_of_fifo_does_not_wait_for_a_writer(uploads: UploadDir,
                                                              background) -> None:
    os.mkfifo(uploads.root / "pipe")
    outcome: list[BaseException] = []

    def read_pipe() -> None:
        try:
            uploads.open_read("pipe")
        except OSError as error:
            outcome.append(error)

    background.start(read_pipe)
    try:
        background.join()  # fails the test, rather than hanging it, if open() waits
    finally:
        with contextlib.suppress(OSError):  # a reader stuck in open() is let go
            os.close(os.open(uploads.root / "pipe", os.O_WRONLY | os.O_NONBLOCK))
    assert len(outcome) == 1 and isinstance(outcome[0], IsADirectoryError)
