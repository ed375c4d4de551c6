# variant: ftp
# kind: correct
# mistake: one thread, asyncio streams (an event loop where socklab's own server runs a thread
#   per client); answers carry no filename and errors no message, only what the spec makes
#   exact; a 1 GiB size limit instead of 4 GiB; uploads in a mkstemp file, renamed
# expect-fail:
"""ftp-server for socklab on asyncio: every client a coroutine of one event loop."""

import asyncio
import hashlib
import json
import os
import stat
import tempfile

UPLOADS = "/srv/uploads"
LIMIT = 1 << 30
HIDDEN = ".in-"
decoder = json.JSONDecoder()


class Bad(Exception):
    pass


def parse(buf):
    """(request, bytes used) for the first request in buf; None if it is not all there."""
    text = buf.decode("utf-8", "surrogateescape")
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return None
    try:
        request, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError as e:
        if e.pos >= len(text) or e.msg.startswith("Unterminated string"):
            if len(buf) > 8192:
                raise Bad() from None
            return None
        raise Bad() from None
    except RecursionError:  # [[[[...]]]] nested deeper than json can go
        raise Bad() from None
    if not isinstance(request, dict):
        raise Bad()
    return request, len(text[:end].encode("utf-8", "surrogateescape"))


def plain(name):
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\x00" not in name and not name.startswith(HIDDEN))


def regular_or_absent(path):
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.buf = reader, writer, bytearray()

    def answer(self, status, **fields):
        self.writer.write(json.dumps({"status": status, **fields}).encode() + b"\n")

    async def more(self):
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionResetError("client left")
        self.buf += data

    async def request(self):
        while True:
            try:
                found = parse(self.buf)
            except Bad:
                self.buf.clear()
                self.answer(400)
                await self.writer.drain()
                continue
            if found is not None:
                request, used = found
                del self.buf[:used]
                return request
            await self.more()

    async def put(self, request):
        name, size = request.get("filename"), request.get("filesize")
        if not plain(name) or type(size) is not int or size < 0:
            return self.answer(400)
        if size > LIMIT:
            return self.answer(413)
        path = os.path.join(UPLOADS, name)
        if not regular_or_absent(path):
            return self.answer(409)
        fd, temp = tempfile.mkstemp(prefix=HIDDEN, dir=UPLOADS)
        digest = hashlib.sha256()
        try:
            with open(fd, "wb") as f:
                self.answer(200)
                await self.writer.drain()
                left = size
                while left:
                    if not self.buf:
                        await self.more()
                    part = bytes(self.buf[:left])
                    del self.buf[:len(part)]
                    f.write(part)
                    digest.update(part)
                    left -= len(part)
            if not regular_or_absent(path):
                raise FileExistsError(path)
            os.replace(temp, path)
        except FileExistsError:
            os.unlink(temp)
            return self.answer(409)
        except BaseException:
            os.unlink(temp)
            raise
        self.answer(201, filesize=size, sha256=digest.hexdigest())

    async def get(self, request):
        name = request.get("filename")
        if not plain(name):
            return self.answer(400)
        try:
            fd = os.open(os.path.join(UPLOADS, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (OSError, ValueError):
            return self.answer(404)
        with open(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return self.answer(404)
            self.answer(200, filesize=info.st_size)
            left = info.st_size
            while left:
                chunk = f.read(min(left, 1 << 20)) or b"\0" * min(left, 1 << 20)
                self.writer.write(chunk)
                left -= len(chunk)
                await self.writer.drain()

    async def list(self, request):
        with os.scandir(UPLOADS) as entries:
            files = sorted(({"name": e.name, "size": e.stat(follow_symlinks=False).st_size}
                            for e in entries
                            if e.is_file(follow_symlinks=False) and not e.name.startswith(HIDDEN)),
                           key=lambda f: f["name"])
        self.answer(200, files=files)


async def client(reader, writer):
    conn = Conn(reader, writer)
    try:
        writer.write(b"asyncio ftp: put, get, list\n")
        while True:
            request = await conn.request()
            action = request.get("action")
            handler = {"put": conn.put, "get": conn.get, "list": conn.list}.get(
                action if isinstance(action, str) else "")
            if handler is None:
                conn.answer(400)
            else:
                await handler(request)
            await writer.drain()
    except (ConnectionError, OSError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(client, "0.0.0.0", 9000, backlog=128)
    print("asyncio ftp-server on 9000", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
