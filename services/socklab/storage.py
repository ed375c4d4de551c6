"""The ftp-server's upload directory: atomic uploads, safe reads, a listing.

An upload is written to a hidden temporary file in the same directory,
fsync'd, then renamed to its final name, so a file is visible under its name
only when all of it has arrived, and a crash leaves at worst a temporary file
(swept at start). Names reaching this module were already checked by
``socklab.protocol.ftp.check_filename``; reads still refuse symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from socklab.protocol.ftp import PARTIAL_PREFIX, check_filename

# Read size when serving a download: big enough to keep a 10 Gbit/s bridge busy.
READ_CHUNK = 1 << 20


class Upload:
    """One file arriving; ``commit`` makes it visible, ``abort`` removes it."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        fd, temp = tempfile.mkstemp(dir=directory, prefix=PARTIAL_PREFIX)
        self.temp_path = Path(temp)
        self.file = os.fdopen(fd, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def commit(self) -> str:
        """Flush to disk and rename into place; return the hex sha256."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.chmod(self.temp_path, 0o644)
        os.replace(self.temp_path, self.directory / self.name)
        _fsync_directory(self.directory)
        return self.sha256.hexdigest()

    def abort(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()


class UploadDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def begin(self, name: str) -> Upload:
        return Upload(self.root, check_filename(name))

    def sweep_partials(self) -> int:
        """Remove temporary files left by a crash; return how many."""
        stale = list(self.root.glob(PARTIAL_PREFIX + "*"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def open_read(self, name: str) -> tuple[BinaryIO, int]:
        """Open a stored regular file without following links: ``(file, size)``."""
        fd = os.open(self.root / check_filename(name), os.O_RDONLY | os.O_NOFOLLOW)
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


def read_chunks(file: BinaryIO) -> Iterator[bytes]:
    """Yield a file's bytes in READ_CHUNK pieces (the caller closes the file)."""
    while chunk := file.read(READ_CHUNK):
        yield chunk


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
