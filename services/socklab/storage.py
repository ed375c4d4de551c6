"""The ftp-server's upload directory: atomic uploads, safe reads, a listing.

An upload is written to a hidden temporary file in the same directory,
fsync'd, then renamed to its final name, so a file is visible under its name
only when all of it has arrived, and a crash leaves at worst a temporary file
(swept at start). Two uploads of one name each have their own temporary file
and ``rename`` is atomic: the name ends up holding one of them, whole.

Names reaching this module were already checked by
``socklab.protocol.ftp.check_filename``. The final name is never opened for
writing, only renamed onto, and ``rename`` replaces a directory entry without
following it: a symlink or hard link under the name cannot lead a write
elsewhere. A name held by anything but a regular file (a planted symlink, a
directory) is refused all the same (409), when the upload begins and again
just before the rename. Reads open with ``O_NOFOLLOW``.

A large upload is written past the page cache (``DirectWriter``): the
connection's thread copies and hashes, a writer thread of the upload's own
waits on the disk, so the two overlap even on one CPU.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import stat
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from socklab.buffers import BufferPool
from socklab.protocol.ftp import CONFLICT, PARTIAL_PREFIX, RequestRefused, check_filename

# An upload of at least this many bytes is written with O_DIRECT, a block at
# a time, by a thread of its own. Through the page cache, a 1 GiB upload's
# write() calls cost the server about as much CPU as its recv() calls and its
# sha256 together, and the final fsync waited for all of it (docs/bench.md);
# a small upload is done before a block would fill.
DIRECT_MIN_SIZE = 8 << 20

# The unit of an O_DIRECT write, a multiple of any device's block size, and
# how many an upload has: one filling while the others are on their way to disk.
DIRECT_BLOCK = 1 << 20
DIRECT_DEPTH = 4

# Blocks for at most 8 such uploads at once (32 MiB); another one finds none
# free and goes through the page cache, as a small one does.
STAGING_POOL = BufferPool(8 * DIRECT_DEPTH, DIRECT_BLOCK)


def check_replaceable(path: Path) -> None:
    """Raise a 409 ``RequestRefused`` unless ``path`` is absent or a regular file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "symlink" if stat.S_ISLNK(info.st_mode) else "directory or special file"
        raise RequestRefused(CONFLICT, f"{path.name!r} is held by a {kind}, not a regular file; "
                                 "nothing written")


def hold_replaced(path: Path) -> int | None:
    """A descriptor that keeps the file about to be replaced at ``path`` alive, or None.

    Renaming onto a large file frees its blocks inside ``rename`` (166 ms for
    1 GiB on ext4, measured): with the file held open, they are freed at the
    descriptor's close instead, which ``release_replaced`` does after the reply.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # absent, or not a file to hold (check_replaceable refuses those)
        return None
    if os.fstat(fd).st_size < DIRECT_MIN_SIZE:
        os.close(fd)  # a small file is freed at once
        return None
    return fd


def release_replaced(fd: int | None) -> None:
    """Close a ``hold_replaced`` descriptor on a thread of its own: the blocks are freed there."""
    if fd is not None:
        threading.Thread(target=os.close, args=(fd,), name="free replaced file",
                         daemon=True).start()


def write_fully(fd: int, data: bytes | memoryview, offset: int | None = None) -> None:
    """Write all of ``data`` (at ``offset``, else at the file position).

    A short write precedes ENOSPC; the next call raises it.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[written:]
        if offset is not None:
            offset += written


class DirectWriter:
    """An upload's bytes, written to disk past the page cache by a thread of its own.

    ``write`` copies the bytes into page-aligned blocks of ``DIRECT_BLOCK``;
    each full block goes to the writer thread, which writes it with O_DIRECT
    at its offset while the caller receives the next. With every block on
    its way, ``write`` waits for one to come back. The bytes short of a last
    full block are not written here: ``finish`` hands them to the caller.

    A failed block write (ENOSPC, EIO) is raised by the next ``write`` or by
    ``finish``; the blocks after it are not written.
    """

    def __init__(self, path: Path, blocks: list[memoryview]) -> None:
        # EINVAL where the file system has no O_DIRECT (tmpfs on older kernels, some FUSE).
        self.fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        self.blocks = blocks
        self.error: OSError | None = None
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        for block in blocks[1:]:
            self._free.put(block)
        self.block, self.fill, self.offset = blocks[0], 0, 0
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"direct-writer {path.name}", daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> None:
        self._raise()
        view = memoryview(data).cast("B")
        while view:
            taken = min(len(self.block) - self.fill, len(view))
            self.block[self.fill:self.fill + taken] = view[:taken]
            self.fill += taken
            view = view[taken:]
            if self.fill == len(self.block):
                self._full.put((self.block, self.offset))
                self.offset += self.fill
                self.block, self.fill = self._free.get(), 0
                self._raise()

    def finish(self) -> tuple[memoryview, int]:
        """Wait for every full block to be written; ``(tail, its offset)``.

        The tail is valid until ``close``.
        """
        self._stop()
        self._raise()
        return self.block[:self.fill], self.offset

    def close(self) -> None:
        """Stop the thread (after the block it is writing), close, give the blocks back."""
        self._stop()
        os.close(self.fd)
        for block in self.blocks:
            STAGING_POOL.give(block)
        self.blocks = []

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            block, offset = item
            if self.error is None:
                try:
                    write_fully(self.fd, block, offset)
                except OSError as error:
                    self.error = error
            self._free.put(block)

    def _stop(self) -> None:
        if self._thread is not None:
            self._full.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


def open_direct(path: Path, size: int) -> DirectWriter | None:
    """A DirectWriter for an upload of ``size`` bytes to ``path``, or None.

    None for a small upload, with every staging block lent, or on a file
    system without O_DIRECT: the upload then goes through the page cache.
    """
    if size < DIRECT_MIN_SIZE:
        return None
    blocks = STAGING_POOL.take_many(DIRECT_DEPTH)
    if not blocks:
        return None
    try:
        return DirectWriter(path, blocks)
    except OSError:
        for block in blocks:
            STAGING_POOL.give(block)
        return None


class Upload:
    """One file arriving; ``commit`` makes it visible, ``abort`` removes it.

    A small upload's writes go straight to the descriptor, unbuffered: a full
    disk (ENOSPC) shows at the ``write`` that hit it, and ``abort`` has nothing
    left to flush. A large one's go through a DirectWriter, whose errors show
    at a later ``write`` or at ``commit``.
    """

    def __init__(self, directory: Path, name: str, size: int = 0, direct: bool = True) -> None:
        self.directory = directory
        self.name = name
        self.final_path = directory / name
        check_replaceable(self.final_path)
        self.fd, temp = tempfile.mkstemp(dir=directory, prefix=PARTIAL_PREFIX)
        self.temp_path = Path(temp)
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False
        self.direct = open_direct(self.temp_path, size) if direct else None

    def write(self, data: bytes | memoryview) -> None:
        if self.direct is not None:
            self.direct.write(data)
        else:
            write_fully(self.fd, data)
        self.sha256.update(data)
        self.size += len(data)

    def commit(self) -> str:
        """Flush to disk and rename into place; return the hex sha256."""
        os.fchmod(self.fd, 0o644)
        if self.direct is not None:
            tail, offset = self.direct.finish()
            write_fully(self.fd, tail, offset)
        os.fsync(self.fd)
        self._close()
        check_replaceable(self.final_path)  # something may have been planted meanwhile
        replaced = hold_replaced(self.final_path)
        try:
            os.replace(self.temp_path, self.final_path)
            _fsync_directory(self.directory)
        finally:
            release_replaced(replaced)
        return self.sha256.hexdigest()

    def abort(self) -> None:
        """Remove the temporary file; harmless when repeated or after a failed commit."""
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def _close(self) -> None:
        if self.direct is not None:
            self.direct.close()
            self.direct = None
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):  # nothing to flush: writes were unbuffered
                os.close(self.fd)


class UploadDir:
    """The directory uploads are stored in (``/srv/uploads`` in the lab)."""

    def __init__(self, root: Path, direct: bool = True) -> None:
        self.root = root
        self.direct = direct  # False: every upload through the page cache

    def begin(self, name: str, size: int = 0) -> Upload:
        """Start receiving ``size`` bytes for ``name``.

        An upload that cannot fit in the free space is refused at once
        (ENOSPC) rather than after the client has sent it all. Uploads running
        side by side can still fill the disk together: ``Upload.write`` then
        raises ENOSPC.
        """
        name = check_filename(name)
        self.check_free_space(size)
        return Upload(self.root, name, size, self.direct)

    def check_free_space(self, size: int) -> None:
        """Raise ENOSPC when fewer than ``size`` bytes are free for an unprivileged writer."""
        info = os.statvfs(self.root)
        free = info.f_bavail * info.f_frsize
        if size > free:
            raise OSError(errno.ENOSPC, f"{size} bytes announced, {free} free")

    def sweep_partials(self) -> int:
        """Remove temporary files left by a crash; return how many.

        Only files (and links) are removed: a directory someone made under
        the prefix is left alone rather than stop the server from starting.
        """
        removed = 0
        for path in self.root.glob(PARTIAL_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                path.unlink()
                removed += 1
        return removed

    def open_read(self, name: str) -> tuple[BinaryIO, int]:
        """Open a stored regular file without following links: ``(file, size)``.

        A symlink fails with ELOOP. ``O_NONBLOCK``: opening a FIFO planted
        under the name would otherwise wait for a writer for ever; it has no
        effect on the regular files served.
        """
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(self.root / check_filename(name), flags)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise IsADirectoryError(errno.EISDIR, "not a regular file", name)
        return os.fdopen(fd, "rb"), info.st_size

    def listing(self) -> list[dict[str, object]]:
        files = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(PARTIAL_PREFIX) or not entry.is_file(follow_symlinks=False):
                continue
            files.append({"name": entry.name, "size": entry.stat(follow_symlinks=False).st_size})
        return files


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
