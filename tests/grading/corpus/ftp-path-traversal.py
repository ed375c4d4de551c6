# variant: ftp
# kind: buggy
# mistake: joins the client's filename to the upload directory without checking it, so
#   '../../etc/passwd' or '/etc/passwd' reads outside /srv/uploads and '../escape' is taken
#   for an upload (os.path.join drops the directory for an absolute name); everything else as
#   it should be (socketserver threads, json raw_decode, a temporary file renamed, O_NOFOLLOW)
# expect-fail: security.names
"""ftp-server for socklab, after the tutorial: socketserver with a thread per client.

Requests are JSON objects read with json.JSONDecoder.raw_decode; an upload goes
to a hidden temporary file that is renamed when all of it has arrived.
"""

import hashlib
import json
import os
import socketserver
import stat
import tempfile

UPLOAD_DIR = "/srv/uploads"
MAX_FILESIZE = 4 * 1024**3
MAX_REQUEST = 8 * 1024
PARTIAL = ".partial-"
decoder = json.JSONDecoder()


class Disconnected(Exception):
    pass


def incomplete(error, text):
    """Whether a JSONDecodeError only means that the rest has not arrived yet."""
    return error.pos >= len(text) or error.msg.startswith("Unterminated string")


class FtpHandler(socketserver.BaseRequestHandler):
    def setup(self):
        self.pending = b""

    def answer(self, status, **fields):
        self.request.sendall(json.dumps({"status": status, **fields}).encode() + b"\n")

    def more(self):
        data = self.request.recv(65536)
        if not data:
            raise Disconnected
        self.pending += data

    def read_request(self):
        """The next request (a dict), or None after answering a bad one with 400."""
        while True:
            text = self.pending.decode("utf-8", "surrogateescape").lstrip()
            if text:
                try:
                    request, end = decoder.raw_decode(text)
                except json.JSONDecodeError as error:
                    if not incomplete(error, text) or len(self.pending) > MAX_REQUEST:
                        self.pending = b""
                        self.answer(400, message="not a JSON request")
                        return None
                else:
                    rest = text[end:]
                    self.pending = rest.encode("utf-8", "surrogateescape")
                    if not isinstance(request, dict):
                        self.pending = b""
                        self.answer(400, message="a request is a JSON object")
                        return None
                    return request
            self.more()

    def read_body(self, size):
        while size > 0:
            if not self.pending:
                self.more()
            chunk = self.pending[:size]
            self.pending = self.pending[size:]
            size -= len(chunk)
            yield chunk

    def handle(self):
        self.request.sendall(b"Welcome! JSON requests please: put, get, list\n")
        try:
            while True:
                request = self.read_request()
                if request is None:
                    continue
                action = request.get("action")
                if action == "put":
                    self.put(request)
                elif action == "get":
                    self.get(request)
                elif action == "list":
                    self.list()
                else:
                    self.answer(400, message="unknown action", actions=["put", "get", "list"])
        except (Disconnected, ConnectionError):
            pass

    def put(self, request):
        filename, filesize = request.get("filename"), request.get("filesize")
        if not isinstance(filename, str):
            return self.answer(400, message="filename missing")
        if not isinstance(filesize, int) or isinstance(filesize, bool) or filesize < 0:
            return self.answer(400, message="bad filesize")
        if filesize > MAX_FILESIZE:
            return self.answer(413, message="too large")
        path = os.path.join(UPLOAD_DIR, filename)
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
            return self.answer(409, message="not a regular file")
        fd, partial = tempfile.mkstemp(prefix=PARTIAL, dir=UPLOAD_DIR)
        sha = hashlib.sha256()
        try:
            with open(fd, "wb") as out:
                self.answer(200)
                for chunk in self.read_body(filesize):
                    out.write(chunk)
                    sha.update(chunk)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        self.answer(201, filename=filename, filesize=filesize, sha256=sha.hexdigest())

    def get(self, request):
        filename = request.get("filename")
        if not isinstance(filename, str):
            return self.answer(400, message="filename missing")
        try:
            fd = os.open(os.path.join(UPLOAD_DIR, filename),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (OSError, ValueError):
            return self.answer(404, message="no such file")
        with open(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return self.answer(404, message="no such file")
            self.answer(200, filename=filename, filesize=info.st_size)
            left = info.st_size
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise Disconnected
                self.request.sendall(chunk)
                left -= len(chunk)

    def list(self):
        files = []
        for name in sorted(os.listdir(UPLOAD_DIR)):
            if name.startswith(PARTIAL):
                continue
            try:
                info = os.lstat(os.path.join(UPLOAD_DIR, name))
            except FileNotFoundError:  # removed since listdir (another client's thread)
                continue
            if stat.S_ISREG(info.st_mode):
                files.append({"name": name, "size": info.st_size})
        self.answer(200, files=files)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    with Server(("", 9000), FtpHandler) as server:
        print("ftp-server listening on 9000", flush=True)
        server.serve_forever()
