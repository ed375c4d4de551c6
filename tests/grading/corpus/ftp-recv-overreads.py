# variant: ftp
# kind: buggy
# mistake: reads an upload with recv(65536) until it has at least filesize bytes and writes
#   all of them: bytes of the next request that arrive in the same recv as the file's last
#   ones end up in the file (its sha256 is wrong) and the request is never answered
# expect-fail: conformance.glued
"""My ftp-server for socklab: put, get and list of files in /srv/uploads.

One thread per client, each reading JSON requests from its own socket.
"""

import hashlib
import json
import os
import socket
import stat
import tempfile
import threading

PORT = 9000
UPLOADS = "/srv/uploads"
BANNER = b"ftp-server here. Requests: put, get, list (JSON).\n"
MAX_SIZE = 4 * 1024 * 1024 * 1024
MAX_REQUEST = 8192
TEMP_PREFIX = ".upload-"


class BadRequest(Exception):
    pass


class ClientGone(Exception):
    pass


def object_end(buffer):
    """Where the first JSON object in buffer ends (None: not complete yet)."""
    text = buffer.lstrip()
    if not text:
        return None
    if text[0:1] != b"{":
        raise BadRequest("a request is a JSON object")
    start = len(buffer) - len(text)
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(buffer)):
        c = buffer[i:i + 1]
        if in_string:
            if escaped:
                escaped = False
            elif c == b"\\":
                escaped = True
            elif c == b'"':
                in_string = False
        elif c == b'"':
            in_string = True
        elif c == b"{":
            depth += 1
        elif c == b"}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


class Client:
    def __init__(self, conn):
        self.conn = conn
        self.buffer = b""

    def send(self, **fields):
        self.conn.sendall(json.dumps(fields).encode() + b"\n")

    def fill(self):
        data = self.conn.recv(65536)
        if not data:
            raise ClientGone()
        self.buffer += data

    def next_request(self):
        while True:
            try:
                end = object_end(self.buffer)
            except BadRequest:
                self.buffer = b""
                raise
            if end is not None:
                raw, self.buffer = self.buffer[:end], self.buffer[end:]
                try:
                    return json.loads(raw)
                except ValueError:
                    self.buffer = b""
                    raise BadRequest("not valid JSON") from None
            if len(self.buffer) > MAX_REQUEST:
                self.buffer = b""
                raise BadRequest("request too long")
            self.fill()

    def body(self, size):
        """Yield exactly size bytes from the client; what comes after stays buffered."""
        while size > 0:
            if not self.buffer:
                self.fill()
            part, self.buffer = self.buffer[:size], self.buffer[size:]
            size -= len(part)
            yield part


def plain_name(name):
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        return False
    try:
        return len(name.encode("utf-8")) <= 255 and not name.startswith(TEMP_PREFIX)
    except UnicodeEncodeError:
        return False


def is_taken_by_other(path):
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def do_put(client, request):
    name, size = request.get("filename"), request.get("filesize")
    if not plain_name(name):
        return client.send(status=400, message="bad file name")
    if type(size) is not int or size < 0:
        return client.send(status=400, message="filesize must be a whole number")
    if size > MAX_SIZE:
        return client.send(status=413, message="file too large")
    path = os.path.join(UPLOADS, name)
    if is_taken_by_other(path):
        return client.send(status=409, message="name taken by a link or directory")
    fd, temp = tempfile.mkstemp(dir=UPLOADS, prefix=TEMP_PREFIX)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            client.send(status=200)
            received = 0
            while received < size:
                # Whatever recv gives me is file data, until I have filesize bytes.
                part = client.buffer or client.conn.recv(65536)
                client.buffer = b""
                if not part:
                    raise ClientGone()
                f.write(part)
                digest.update(part)
                received += len(part)
        if is_taken_by_other(path):
            os.unlink(temp)
            return client.send(status=409, message="name taken by a link or directory")
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    client.send(status=201, filename=name, filesize=size, sha256=digest.hexdigest())


def do_get(client, request):
    name = request.get("filename")
    if not plain_name(name):
        return client.send(status=400, message="bad file name")
    try:
        fd = os.open(os.path.join(UPLOADS, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return client.send(status=404, message="no such file")
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            return client.send(status=404, message="no such file")
        client.send(status=200, filename=name, filesize=info.st_size)
        left = info.st_size
        while left > 0:
            chunk = f.read(min(left, 1024 * 1024))
            if not chunk:
                raise ClientGone()  # the file shrank: nothing sensible to send
            client.conn.sendall(chunk)
            left -= len(chunk)


def do_list(client, request):
    files = []
    for entry in os.scandir(UPLOADS):
        if entry.is_file(follow_symlinks=False) and not entry.name.startswith(TEMP_PREFIX):
            files.append({"name": entry.name, "size": entry.stat(follow_symlinks=False).st_size})
    files.sort(key=lambda f: f["name"])
    client.send(status=200, files=files)


ACTIONS = {"put": do_put, "get": do_get, "list": do_list}


def serve(conn, peer):
    client = Client(conn)
    try:
        conn.sendall(BANNER)
        while True:
            try:
                request = client.next_request()
            except BadRequest as e:
                client.send(status=400, message=str(e))
                continue
            name = request.get("action")
            action = ACTIONS.get(name) if isinstance(name, str) else None
            if action is None:
                client.send(status=400, message="unknown action",
                            actions=["put", "get", "list"])
                continue
            action(client, request)
    except ClientGone:
        pass
    except (OSError, ValueError) as e:
        print(f"client {peer}: {e!r}", flush=True)
    finally:
        conn.close()


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", PORT))
    server.listen(128)
    print(f"listening on {PORT}", flush=True)
    while True:
        try:
            conn, peer = server.accept()
        except OSError as e:
            print(f"accept: {e}", flush=True)
            continue
        conn.settimeout(600)
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
