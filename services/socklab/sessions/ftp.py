"""The ftp-server's conversation: put, get and list over JSON answers.

Every failure of an upload ends the same way: the temporary file is removed,
the rest of the announced body is read and dropped (so the next request is
parsed where it starts), and one answer follows the last byte. Bytes after
the announced ``filesize`` are never file data: they are the next request.
"""

from __future__ import annotations

import errno
import time
from collections import deque
from collections.abc import Iterator

from socklab.protocol import ftp
from socklab.registry import FTP_BANNER
from socklab.sessions import FLUSH, Chunk, FileSpan, Session
from socklab.storage import Upload, UploadDir

# An empty upload is complete as soon as it is announced, so the 201 would
# follow the 200 at once and the tutorial's client, which reads the 200 with a
# single recv(1024) and json.loads it, could get both glued ("Extra data").
# This pause lets the 200 be read alone first.
EMPTY_UPLOAD_PAUSE = 0.1


def storage_error(error: OSError) -> ftp.FtpError:
    """Translate a file system error into the answer the client gets."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ftp.ServerFailed(ftp.INSUFFICIENT_STORAGE,
                                "no space left on the server; nothing kept")
    if error.errno == errno.EFBIG:
        return ftp.RequestRefused(ftp.TOO_LARGE, "file larger than the server's file system "
                                                 "allows; nothing kept")
    if error.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR):
        return ftp.RequestRefused(ftp.NOT_FOUND, "no such file")
    return ftp.ServerFailed(ftp.SERVER_ERROR, f"storage error: {error.strerror}")


class FtpSession(Session):
    def __init__(self, uploads: UploadDir, max_size: int = ftp.DEFAULT_MAX_FILE_SIZE) -> None:
        self.uploads = uploads
        self.max_size = max_size
        self.connection = ftp.FtpServerConnection()
        self.upload: Upload | None = None
        self.upload_failure: ftp.FtpError | None = None
        self.expected_sha256: str | None = None
        self.pending: deque[ftp.Event] = deque()

    def greeting(self) -> bytes:
        return FTP_BANNER

    def feed(self, data: bytes | memoryview) -> Iterator[Chunk]:
        # A queue, not recursion: a thousand pipelined requests are a loop.
        self.pending.extend(self.connection.receive(data))
        while self.pending:
            yield from self._handle(self.pending.popleft())

    def body_expected(self) -> int:
        return self.connection.body_remaining

    def close(self) -> None:
        if self.upload is not None:
            self.upload.abort()
            self.upload = None

    def farewell(self) -> bytes:
        """The answer for a client dropped because it sent nothing for the idle timeout.

        For the loop to send, best effort, when its wait for the client's
        bytes timed out (never when a send did: the client is not reading,
        and a line in the middle of a download would corrupt it). A stalled
        upload is removed here; a client still there reads why.
        """
        if self.connection.state is ftp.State.RECEIVING_BODY:
            named = {"filename": self.upload.name} if self.upload is not None else {}
            self.close()
            return ftp.answer(ftp.REQUEST_TIMEOUT, **named, message=(
                "upload stalled: no data within the idle timeout; nothing kept"))
        return ftp.answer(ftp.REQUEST_TIMEOUT, message="idle for too long; connection closed")

    def _handle(self, event: ftp.Event) -> Iterator[Chunk]:
        if isinstance(event, ftp.Request):
            yield from self._request(event)
        elif isinstance(event, ftp.BodyData):
            self._write(event.data)
        elif isinstance(event, ftp.BodyEnd):
            yield self._finish_upload()
        else:
            yield event.error.answer()

    def _request(self, request: ftp.Request) -> Iterator[Chunk]:
        handler = {"put": self._put, "get": self._get, "list": self._list}.get(request.action)
        if handler is None:
            yield ftp.answer(ftp.BAD_REQUEST, message=f"unknown action {request.action!r}",
                             actions=["put", "get", "list"])
            return
        try:
            yield from handler(request.fields)
        except ftp.FtpError as error:
            yield error.answer()
            if request.action == "put":
                self.pending.extend(self.connection.resume())

    def _put(self, fields: dict[str, object]) -> Iterator[bytes]:
        put = ftp.parse_put(fields, self.max_size)
        try:
            self.upload = self.uploads.begin(put.filename, put.filesize)
        except OSError as error:
            raise storage_error(error) from error
        self.expected_sha256 = put.sha256
        self.upload_failure = None
        yield ftp.answer(ftp.OK)
        if put.filesize == 0:
            yield FLUSH  # the 200 goes out alone, now...
            time.sleep(EMPTY_UPLOAD_PAUSE)  # ...and the 201 a little later
        self.pending.extend(self.connection.expect_body(put.filesize))

    def _write(self, data: bytes | memoryview) -> None:
        if self.upload is None or self.upload_failure is not None:
            return  # a failed upload's remaining bytes are read and dropped
        try:
            self.upload.write(data)
        except OSError as error:
            self.upload_failure = storage_error(error)
            self.close()

    def _finish_upload(self) -> bytes:
        upload, self.upload = self.upload, None
        if upload is None:
            return (self.upload_failure or storage_error(OSError(errno.EIO, "lost"))).answer()
        if self.expected_sha256 and upload.sha256.hexdigest() != self.expected_sha256:
            upload.abort()
            return ftp.answer(ftp.DIGEST_MISMATCH, message="sha256 does not match; nothing kept",
                              sha256=upload.sha256.hexdigest())
        try:
            digest = upload.commit()
        except ftp.FtpError as error:  # the name was taken by a symlink meanwhile
            upload.abort()
            return error.answer()
        except OSError as error:
            upload.abort()
            return storage_error(error).answer()
        return ftp.answer(ftp.CREATED, filename=upload.name, filesize=upload.size, sha256=digest)

    def _get(self, fields: dict[str, object]) -> Iterator[Chunk]:
        name = ftp.check_filename(fields.get("filename"))
        try:
            file, size = self.uploads.open_read(name)
        except OSError as error:
            raise storage_error(error) from error
        with file:  # closed even when the client leaves before the first byte
            yield ftp.answer(ftp.OK, filename=name, filesize=size)
            # The loop sends it (sendfile where it can) before this generator goes on.
            yield FileSpan(file, size)

    def _list(self, fields: dict[str, object]) -> Iterator[bytes]:
        try:
            files = self.uploads.listing()
        except OSError as error:
            raise storage_error(error) from error
        yield ftp.answer(ftp.OK, files=files)
