# variant: exec
# kind: buggy
# mistake: the handshake port sends the output right behind its Ready header instead of
#   waiting for start, in one sendall, and then runs the client's start as one more command
#   (sh: start: not found): the tutorial's client, reading the header with one recv, swallows
#   the output's first bytes and waits for them forever; naive and framed as they should be,
#   commands as runner
# expect-fail: conformance.handshake conformance.big-output conformance.tutorial-client
#   robustness.fuzz
"""My exec-server for socklab: three ports, a thread per client, /bin/sh -c per command.

9000 (naive): a banner line, then every chunk is a command and the reply is its
stdout, its stderr, or a line when both are empty. 9001 (handshake): Ready|n|status,
then the n bytes at once (the client knows how many to read). 9002 (framed): 4-byte
big-endian length frames, a JSON request, three frames back (header, stdout, stderr).
"""

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

NAIVE_PORT, HANDSHAKE_PORT, FRAMED_PORT = 9000, 9001, 9002
BANNER = b"exec-server ready: each chunk you send is run as a shell command\n"
WORKDIR = "/srv/exec"
RUNNER = 1001  # commands run as runner, never as root
TIMEOUT = 30.0
CAP = 32 * 1024 * 1024  # stdout and stderr together
MAX_REQUEST = 1024 * 1024
CHUNK = 65536
LENGTH = struct.Struct(">I")


class Result:
    def __init__(self, status, stdout, stderr, truncated=False, timed_out=False):
        self.status, self.stdout, self.stderr = status, stdout, stderr
        self.truncated, self.timed_out = truncated, timed_out


def kill_group(process):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def run(command):
    """Run ``command`` (bytes) with /bin/sh -c: at most CAP bytes kept, at most TIMEOUT s."""
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=WORKDIR, start_new_session=True,
            user=RUNNER, group=RUNNER, extra_groups=[],
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "LANG": "C.UTF-8"})
    except (OSError, ValueError) as error:  # a NUL byte in the command, for one
        return Result(126, b"", f"cannot run command: {error}\n".encode())
    outputs = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    deadline = time.monotonic() + TIMEOUT
    truncated = timed_out = False
    with selectors.DefaultSelector() as selector:
        for fd in outputs:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map() and not truncated:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = CAP - sum(len(b) for b in outputs.values())
                outputs[key.fd] += chunk[:room]
                if len(chunk) > room:
                    truncated = True
                    break
    if not truncated and not timed_out:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    kill_group(process)  # the limit, the cap, or whatever it left running
    process.stdout.close()
    process.stderr.close()
    status = process.wait()
    stdout, stderr = (bytes(b) for b in outputs.values())
    return Result(status, stdout, stderr, truncated, timed_out)


def serve_naive(conn):
    conn.sendall(BANNER)
    while True:
        command = conn.recv(CHUNK)
        if not command:
            return
        result = run(command)
        conn.sendall(result.stdout or result.stderr or f"current directory is {WORKDIR}\n".encode())


def serve_handshake(conn):
    while True:
        command = conn.recv(CHUNK)
        if not command:
            return
        result = run(command)
        output = result.stdout or result.stderr
        fields = [b"Ready", str(len(output)).encode(), str(result.status).encode()]
        if result.truncated:
            fields.append(b"truncated")
        if result.timed_out:
            fields.append(b"timed-out")
        # The header says how many bytes follow: no need to wait for the client's start.
        conn.sendall(b"|".join(fields) + output)


def recv_exact(conn, n):
    """Exactly n bytes, or None when the client closes first."""
    parts, got = [], 0
    while got < n:
        chunk = conn.recv(min(CHUNK, n - got))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def send_reply(conn, header, stdout=b"", stderr=b""):
    header = {**header, "stdout_bytes": len(stdout), "stderr_bytes": len(stderr)}
    data = json.dumps(header).encode()
    conn.sendall(LENGTH.pack(len(data)) + data)
    for output in (stdout, stderr):  # never copied into one buffer: it may be 32 MiB
        conn.sendall(LENGTH.pack(len(output)))
        if output:
            conn.sendall(output)


def send_error(conn, why):
    send_reply(conn, {"exit_status": None, "truncated": False, "timed_out": False,
                      "error": why})


def command_of(payload):
    """The command of a request, or raises ValueError saying what is wrong with it."""
    try:
        request = json.loads(payload.decode("utf-8"))
    except ValueError as error:
        raise ValueError(f"request is not valid UTF-8 JSON: {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ValueError('request must be a JSON object with a string "cmd"')
    return request["cmd"].encode("utf-8")  # a lone surrogate raises UnicodeEncodeError


def serve_framed(conn):
    while True:
        head = recv_exact(conn, LENGTH.size)
        if head is None:
            return
        (length,) = LENGTH.unpack(head)
        if length > MAX_REQUEST:
            send_error(conn, f"frame of {length} bytes exceeds the cap of {MAX_REQUEST}")
            return  # the stream cannot be resynchronised
        payload = recv_exact(conn, length)
        if payload is None:
            return
        try:
            command = command_of(payload)
        except ValueError as error:
            send_error(conn, str(error))
            continue
        result = run(command)
        send_reply(conn, {"exit_status": result.status, "truncated": result.truncated,
                          "timed_out": result.timed_out}, result.stdout, result.stderr)


def client(conn, serve):
    try:
        serve(conn)
    except OSError:  # reset, broken pipe: this client only
        pass
    finally:
        conn.close()


def listen(port, serve):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", port))
    server.listen(128)
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            time.sleep(0.1)
            continue
        threading.Thread(target=client, args=(conn, serve), daemon=True).start()


def main():
    for port, serve in ((NAIVE_PORT, serve_naive), (HANDSHAKE_PORT, serve_handshake)):
        threading.Thread(target=listen, args=(port, serve), daemon=True).start()
    listen(FRAMED_PORT, serve_framed)


if __name__ == "__main__":
    main()
