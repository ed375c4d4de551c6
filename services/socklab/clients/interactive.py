"""The learner's clients: type a line, see what the server sent back.

They behave like the tutorial's clients (``>>>`` prompt, ``exit`` to leave)
but never hang: every read has a time limit and framed replies are read to
their end.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from socklab.clients.core import (
    TUTORIAL_RECV,
    FramedClient,
    FtpClient,
    HandshakeClient,
    file_chunks,
    open_connection,
    read_token,
    recv_some,
    sha256_of,
)
from socklab.protocol.auth import TokenError
from socklab.protocol.errors import ProtocolError
from socklab.protocol.handshake import TIMED_OUT, TRUNCATED

PROMPT = ">>> "
QUIT = "exit"

# After a reply starts, how long the echo clients wait for more of it.
TRAILING_WAIT = 0.2


def lines(prompt: str = PROMPT) -> Iterator[str]:
    """Input lines until ``exit`` or end of input; blank lines skipped."""
    while True:
        try:
            line = input(prompt)
        except EOFError:
            return
        if line.strip() == QUIT:
            return
        if line.strip():
            yield line


def _drain(sock: socket.socket) -> bytes:
    """One reply of unknown length: the first chunk plus what follows at once."""
    data = recv_some(sock, 65536)
    sock.settimeout(TRAILING_WAIT)
    try:
        while True:
            data += recv_some(sock, 65536)
    except TimeoutError:
        return data
    finally:
        sock.settimeout(30)


def echo_repl(host: str, port: int, greeting: bool) -> int:
    with open_connection(host, port) as sock:
        if greeting:
            print(recv_some(sock, TUTORIAL_RECV).decode("utf-8", "replace"))
        for line in lines():
            sock.sendall(line.encode())
            print(_drain(sock).decode("utf-8", "replace"))
    return 0


def udp_repl(host: str, port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for line in lines("data: "):
            sock.sendto(line.encode(), (host, port))
            try:
                print(sock.recvfrom(65535))
            except TimeoutError:
                print("(no answer within 5 s: UDP does not retransmit)")
    return 0


def exec_repl(host: str, port: int, mode: str, commands: list[str],
              token_file: str | None = None) -> int:
    try:
        token = read_token(token_file)
    except (OSError, TokenError) as error:
        print(f"socklab client: cannot read the token: {error}", file=sys.stderr)
        return 2
    if token is not None and mode == "naive":
        print("socklab client: the naive port has no authentication; a server with a token "
              "does not open it (use --mode handshake or framed)", file=sys.stderr)
        return 2
    with open_connection(host, port) as sock:
        run = _exec_runner(sock, mode, token)
        source = iter(commands) if commands else lines()
        status = 0
        for command in source:
            status = run(command)
    return status


def _notes(truncated: bool, timed_out: bool) -> str:
    """What the server said about an output it cut short, for the learner."""
    notes = [note for note, raised in (("output truncated at the server's cap", truncated),
                                       ("time limit reached, command killed", timed_out)) if raised]
    return "".join(f"[{note}]\n" for note in notes)


def _exec_runner(sock: socket.socket, mode: str, token: bytes | None) -> Callable[[str], int]:
    if mode == "naive":
        print(recv_some(sock, TUTORIAL_RECV).decode("utf-8", "replace"), end="")

        def naive(command: str) -> int:
            sock.sendall(command.encode())
            sys.stdout.write(recv_some(sock, TUTORIAL_RECV).decode("utf-8", "replace"))
            return 0
        return naive
    if mode == "handshake":
        client = HandshakeClient(sock, token=token)

        def handshake(command: str) -> int:
            header, output = client.run(command)
            print(f"message size {header.size} recv size {len(output)}")
            sys.stdout.write(output.decode("utf-8", "replace"))
            sys.stderr.write(_notes(TRUNCATED in header.flags, TIMED_OUT in header.flags))
            return header.status or 0
        return handshake
    framed_client = FramedClient(sock, token=token)

    def framed(command: str) -> int:
        reply = framed_client.run(command)
        sys.stdout.write(reply.stdout.decode("utf-8", "replace"))
        sys.stderr.write(reply.stderr.decode("utf-8", "replace"))
        sys.stderr.write(_notes(reply.truncated, reply.timed_out))
        if reply.error:
            print(f"error: {reply.error}", file=sys.stderr)
        print(f"[exit status {reply.exit_status}]", file=sys.stderr)
        return reply.exit_status if reply.exit_status is not None else 1
    return framed


FTP_USAGE = "commands: put PATH…, get NAME…, ls, exit"


def ftp_command(host: str, port: int, action: str | None, names: list[str],
                output: str | None) -> int:
    with open_connection(host, port) as sock:
        client = FtpClient(sock)
        print(client.banner)
        if action is not None:
            return _ftp_action(client, action, names, output)
        print(FTP_USAGE)
        status = 0
        for line in lines():
            verb, *args = line.split()
            if verb not in ("put", "get", "ls") or (verb != "ls" and not args):
                print(FTP_USAGE)
                continue
            status = _ftp_action(client, verb, args, None)
        return status


def _ftp_action(client: FtpClient, action: str, names: list[str], output: str | None) -> int:
    if action == "put":
        return max((_ftp_put(client, Path(name)) for name in names), default=0)
    if action == "get":
        return max((_ftp_get(client, name, output) for name in names), default=0)
    answer = client.list()
    files = answer.get("files", [])
    for entry in files:
        print(f"{entry['size']:>12}  {entry['name']}")
    if answer["status"] != 200:
        print(answer)
        return 1
    if not files:
        print("(no file on the server yet: put one)")
    return 0


def _ftp_put(client: FtpClient, path: Path) -> int:
    if not path.is_file():
        print(f"file [{path}] does not exist", file=sys.stderr)
        return 1
    size = path.stat().st_size
    with path.open("rb") as file:
        digest = sha256_of(file)
        file.seek(0)
        print(f"file: {path} size: {size}")
        answer = client.put(path.name, size, file_chunks(file), digest)
    print(answer)
    return 0 if answer["status"] == 201 else 1


def _ftp_get(client: FtpClient, name: str, output: str | None) -> int:
    target = Path(output or os.path.basename(name))
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as sink:
            answer = client.get(name, sink)
    except BaseException:
        partial.unlink(missing_ok=True)  # never leave half a download behind
        raise
    if answer["status"] != 200:
        partial.unlink()
        print(answer, file=sys.stderr)
        return 1
    partial.replace(target)
    print(f"saved {target} ({answer['filesize']} bytes)")
    return 0


def run_safely(action: Callable[[], int]) -> int:
    """Turn network failures into one clear line and exit status 1."""
    try:
        return action()
    except KeyboardInterrupt:
        return 130
    except (OSError, ProtocolError) as error:
        print(f"socklab client: {error}", file=sys.stderr)
        return 1
