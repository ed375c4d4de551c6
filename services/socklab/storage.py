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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from socklab.protocol.ftp import CONFLICT, PARTIAL_PREFIX, RequestRefused, check_filename


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


class Upload:
    """One file arriving; ``commit`` makes it visible, ``abort`` removes it.

    Writes go straight to the descriptor, unbuffered: a full disk (ENOSPC)
    shows at the ``write`` that hit it, and ``abort`` has nothing left to flush.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.final_path = directory / name
        check_replaceable(self.final_path)
        self.fd, temp = tempfile.mkstemp(dir=directory, prefix=PARTIAL_PREFIX)
        self.temp_path = Path(temp)
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a short write precedes ENOSPC; the next call raises it
            view = view[os.write(self.fd, view):]
        self.sha256.update(data)
        self.size += len(data)

    def commit(self) -> str:
        """Flush to disk and rename into place; return the hex sha256."""
        os.fchmod(self.fd, 0o644)
        os.fsync(self.fd)
        self._close()
        check_replaceable(self.final_path)  # something may have been planted meanwhile
        os.replace(self.temp_path, self.final_path)
        _fsync_directory(self.directory)
        return self.sha256.hexdigest()

    def abort(self) -> None:
        """Remove the temporary file; harmless when repeated or after a failed commit."""
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):  # nothing to flush: writes were unbuffered
                os.close(self.fd)


class UploadDir:
    """The directory uploads are stored in (``/srv/uploads`` in the lab)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def begin(self, name: str, size: int = 0) -> Upload:
        """Start receiving ``size`` bytes for ``name``.

        An upload that cannot fit in the free space is refused at once
        (ENOSPC) rather than after the client has sent it all. Uploads running
        side by side can still fill the disk together: ``Upload.write`` then
        raises ENOSPC.
        """
        name = check_filename(name)
        self.check_free_space(size)
        return Upload(self.root, name)

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
