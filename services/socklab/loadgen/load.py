"""The load generator: runs on a client host and prints one JSON object of what it measured.

    python3 -m socklab.loadgen.load echo --host H --port P --size N --concurrency C ...
    python3 -m socklab.loadgen.load hold --host H --port P --count K --state FILE
    python3 -m socklab.loadgen.load ftp --host H --port P --size N --runs R
    python3 -m socklab.loadgen.load exec --host H --mode framed --duration D --runs R
    python3 -m socklab.loadgen.load udp --host H --port P --rate R --duration D --runs R

Echo load is closed-loop, as vmbench's: each connection sends one message,
reads the whole reply, and sends the next. The connections are spread over a
few processes, each an epoll loop over non-blocking sockets (no threads, no
framework: the cheapest Python client, so the server saturates first). Each
process reports its CPU time over the measured window, so a report can show
the load generator was not the bottleneck. Times are ``time.monotonic``
(CLOCK_MONOTONIC, shared with the host: Docker gives containers no time
namespace), so the host can line the window up with the server's CPU counter.

Only the standard library and socklab: this module runs in the lab image.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import select
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from socklab.clients.core import recv_exact
from socklab.loadgen.stats import Histogram
from socklab.registry import VARIANTS

RECV_BUFFER = 256 << 10
CONNECT_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
# A connection waiting longer than this for its reply means a broken server, not a slow one.
STALL_LIMIT = 30.0
FTP_BLOCK = 1 << 20  # upload bodies repeat one random block of this size
EXEC_COMMAND = "echo ok"  # the same 3-byte output on every framing
EXEC_OUTPUT = b"ok\n"


def split(total: int, parts: int) -> list[int]:
    """``total`` connections over ``parts`` processes, as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def payload(size: int) -> bytes:
    """Lower-case letters, so an upper-casing server changes every byte."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    return (alphabet * (size // len(alphabet) + 1))[:size]


def _open_echo(host: str, port: int, greeting: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if greeting:
        recv_exact(sock, greeting)
    sock.setblocking(False)
    return sock


class EchoConn:
    """One closed-loop connection: the message in flight and how much of its reply came."""

    __slots__ = ("checked", "expected", "received", "sent", "sock", "started", "view",
                 "writing")

    def __init__(self, sock: socket.socket, message: bytes, expected: bytes) -> None:
        self.sock = sock
        self.view = memoryview(message)
        self.expected = expected
        self.sent = len(message)
        self.received = 0
        self.started = 0.0
        self.checked = False
        self.writing = False  # registered for EPOLLOUT: part of the message is still unsent


def run_queue_wait() -> float:
    """Seconds this process has been runnable but waiting for a CPU (/proc/self/schedstat).

    On a shared machine it tells a load generator starved of CPU from one
    waiting for the server; 0 where the kernel does not keep schedstats.
    """
    try:
        with open("/proc/self/schedstat") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _echo_loop(conns: list[EchoConn], size: int, warmup: float, duration: float,
               start: float, tail: float) -> dict[str, Any]:
    """Drive every connection from ``start`` until ``tail`` after the window; counts, CPU.

    Only the window (after ``warmup``, for ``duration``) is measured; the load
    runs on ``tail`` seconds past it so that the host, which samples the
    server's CPU counter every 50 ms, finds the server equally busy on both
    sides of each edge of the window (``loaded`` is that span).
    """
    poller = select.epoll()
    by_fd = {c.sock.fileno(): c for c in conns}
    buf = bytearray(RECV_BUFFER)
    histogram, done, cpu_start, wait_start = Histogram(), 0, 0.0, 0.0
    window_open, window_close = start + warmup, start + warmup + duration
    recording, closed = False, False
    cpu, waited = 0.0, 0.0
    for conn in conns:
        poller.register(conn.sock.fileno(), select.EPOLLIN)
        conn.started = time.monotonic()
        conn.sent = 0
        _send_more(conn, poller, size)
    while True:
        now = time.monotonic()
        if not recording and not closed and now >= window_open:
            recording, cpu_start, done = True, time.process_time(), 0
            wait_start = run_queue_wait()
            histogram = Histogram()
        if now >= window_close and not closed:
            closed, recording = True, False
            cpu, waited = time.process_time() - cpu_start, run_queue_wait() - wait_start
        if now >= window_close + tail:
            break
        for fd, events in poller.poll(POLL_INTERVAL):
            conn = by_fd[fd]
            if events & select.EPOLLOUT:
                _send_more(conn, poller, size)
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                n = conn.sock.recv_into(buf)
                if n == 0:
                    raise ConnectionError("the server closed the connection")
                if not conn.checked:
                    _check(conn, buf, n)
                conn.received += n
                if conn.received >= size:
                    finished = time.monotonic()
                    if recording:
                        histogram.add(finished - conn.started)
                        done += 1
                    conn.received, conn.sent, conn.started = 0, 0, finished
                    _send_more(conn, poller, size)
    stopped = time.monotonic()
    stalled = [time.monotonic() - c.started for c in conns]
    if max(stalled) > STALL_LIMIT:
        raise TimeoutError(f"a reply took over {STALL_LIMIT:.0f} s")
    poller.close()
    return {"requests": done, "histogram": histogram.to_json(), "cpu_seconds": cpu,
            "wait_seconds": waited, "window": [window_open, window_close],
            "loaded": [start, stopped]}


def _send_more(conn: EchoConn, poller: select.epoll, size: int) -> None:
    """Send what the socket takes; watch for writability only while something is left."""
    try:  # noqa: SIM105 (the hot path: try is cheaper than entering a context manager)
        conn.sent += conn.sock.send(conn.view[conn.sent:])
    except BlockingIOError:
        pass
    writing = conn.sent < size
    if writing != conn.writing:
        conn.writing = writing
        poller.modify(conn.sock.fileno(), select.EPOLLIN | (select.EPOLLOUT if writing else 0))


def _check(conn: EchoConn, buf: bytearray, n: int) -> None:
    """The first reply of each connection is compared byte for byte with what it must be."""
    want = conn.expected[conn.received:conn.received + n]
    if bytes(buf[:n]) != want:
        raise ValueError(f"wrong echo: got {bytes(buf[:min(n, 20)])!r}…, "
                         f"want {want[:20]!r}…")
    if conn.received + n >= len(conn.expected):
        conn.checked = True


def _echo_worker(args: argparse.Namespace, count: int, barrier: Any, out: Connection) -> None:
    try:
        message = payload(args.size)
        expected = message.upper() if args.upper else message
        socks = [_open_echo(args.host, args.port, args.greeting) for _ in range(count)]
        conns = [EchoConn(s, message, expected) for s in socks]
        barrier.wait(timeout=60)
        start = time.monotonic()
        result = _echo_loop(conns, args.size, args.warmup, args.duration, start, args.tail)
        for sock in socks:
            sock.close()
        out.send(result)
    except BaseException as error:  # reported to the parent, which fails the run
        out.send({"error": f"{type(error).__name__}: {error}"})


def echo_run(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run: every process connects, then all start together."""
    counts = split(args.concurrency, max(1, min(args.processes, args.concurrency)))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(counts))
    pipes, workers = [], []
    for count in counts:
        parent, child = context.Pipe(duplex=False)
        worker = context.Process(target=_echo_worker, args=(args, count, barrier, child))
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    results = [pipe.recv() for pipe in pipes]
    for worker in workers:
        worker.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError("; ".join(errors))
    histogram = Histogram()
    for r in results:
        histogram.merge(Histogram.from_json(r["histogram"]))
    requests = sum(r["requests"] for r in results)
    return {"requests": requests, "rps": requests / args.duration,
            "mib_s": requests * args.size / args.duration / (1 << 20),
            "latency_ms": histogram.summary(),
            "client_cpu": [r["cpu_seconds"] / args.duration for r in results],
            "client_wait": [r["wait_seconds"] / args.duration for r in results],
            "window": [min(r["window"][0] for r in results),
                       max(r["window"][1] for r in results)],
            "loaded": [max(r["loaded"][0] for r in results),
                       min(r["loaded"][1] for r in results)]}


def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    return {"runs": [echo_run(args) for _ in range(args.runs)], "processes":
            min(args.processes, args.concurrency)}


def run_hold(args: argparse.Namespace) -> dict[str, Any]:
    """Open ``count`` connections, write the state file, keep them open until SIGTERM."""
    socks, failures = [], {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    for _ in range(args.count):
        try:
            socks.append(socket.create_connection((args.host, args.port),
                                                  timeout=CONNECT_TIMEOUT))
        except OSError as error:
            name = type(error).__name__
            failures[name] = failures.get(name, 0) + 1
    state = {"pid": os.getpid(), "open": len(socks), "failures": failures}
    temp = args.state + ".tmp"
    with open(temp, "w") as file:
        json.dump(state, file)
    os.replace(temp, args.state)
    deadline = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    for sock in socks:
        sock.close()
    return state


def _ftp_put(host: str, port: int, size: int, digest: str, block: bytes) -> dict[str, Any]:
    from socklab.clients.core import FtpClient

    def chunks() -> Any:
        left = size
        while left > 0:
            yield block[:min(left, len(block))]
            left -= len(block)

    with socket.create_connection((host, port), timeout=120) as sock:
        client = FtpClient(sock)
        started = time.monotonic()
        answer = client.put(f"bench-{size}.bin", size, chunks(), sha256=digest)
        seconds = time.monotonic() - started
    ok = answer.get("status") == 201 and answer.get("sha256") == digest
    return {"seconds": seconds, "mib_s": size / seconds / (1 << 20), "verified": ok,
            "window": [started, started + seconds],
            "status": answer.get("status"), "server_sha256": answer.get("sha256")}


def run_ftp(args: argparse.Namespace) -> dict[str, Any]:
    """Upload ``size`` bytes ``runs`` times; the sha256 is computed before the clock starts."""
    block = os.urandom(FTP_BLOCK)
    digest = hashlib.sha256()
    left = args.size
    while left > 0:
        digest.update(block[:min(left, len(block))])
        left -= len(block)
    return {"size": args.size, "sha256": digest.hexdigest(),
            "runs": [_ftp_put(args.host, args.port, args.size, digest.hexdigest(), block)
                     for _ in range(args.runs)]}


def _exec_client(host: str, mode: str) -> tuple[socket.socket, Any]:
    from socklab.clients.core import FramedClient, HandshakeClient

    port = VARIANTS["exec"].port(mode)
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "naive":
        banner = b""
        while not banner.endswith(b"\n"):
            banner += sock.recv(4096)

        def naive(command: str) -> bytes:
            sock.sendall(command.encode())
            return recv_exact(sock, len(EXEC_OUTPUT))
        return sock, naive
    if mode == "handshake":
        client = HandshakeClient(sock)
        return sock, lambda command: client.run(command)[1]
    framed = FramedClient(sock)
    return sock, lambda command: framed.run(command).stdout


def exec_run(args: argparse.Namespace) -> dict[str, Any]:
    sock, run = _exec_client(args.host, args.mode)
    histogram, done = Histogram(), 0
    with sock:
        if run(EXEC_COMMAND) != EXEC_OUTPUT:
            raise ValueError(f"exec {args.mode}: unexpected output")
        cpu, waited, opened = time.process_time(), run_queue_wait(), time.monotonic()
        closes = opened + args.duration
        while (started := time.monotonic()) < closes:
            output = run(EXEC_COMMAND)
            histogram.add(time.monotonic() - started)
            done += 1 if output == EXEC_OUTPUT else 0
        seconds = time.monotonic() - opened
    return {"commands": done, "commands_s": done / seconds, "latency_ms": histogram.summary(),
            "client_cpu": [(time.process_time() - cpu) / seconds],
            "client_wait": [(run_queue_wait() - waited) / seconds],
            "window": [opened, opened + seconds]}


def run_exec(args: argparse.Namespace) -> dict[str, Any]:
    return {"mode": args.mode, "runs": [exec_run(args) for _ in range(args.runs)]}


def udp_run(args: argparse.Namespace) -> dict[str, Any]:
    """Send at ``rate`` datagrams/s (0: as fast as possible) for ``duration``; count the oks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect((args.host, args.port))
    sock.setblocking(False)
    datagram = payload(args.size)
    sent = answered = 0
    opened = time.monotonic()
    closes = opened + args.duration
    while (now := time.monotonic()) < closes:
        due = int((now - opened) * args.rate) + 1 if args.rate else sent + 16
        while sent < due:
            try:
                sock.send(datagram)
            except (BlockingIOError, ConnectionRefusedError):
                break
            sent += 1
        answered += _drain_udp(sock)
        if args.rate:
            time.sleep(0.0005)
    settle = time.monotonic() + 0.5  # answers still on the way
    while time.monotonic() < settle:
        answered += _drain_udp(sock)
        time.sleep(0.01)
    sock.close()
    return {"offered_rate": args.rate, "sent": sent, "answered": answered,
            "answered_s": answered / args.duration, "sent_s": sent / args.duration,
            "loss": 1 - answered / sent if sent else None, "window": [opened, closes]}


def _drain_udp(sock: socket.socket) -> int:
    count = 0
    with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
        while True:
            if sock.recv(64) == b"ok":
                count += 1
    return count


def run_udp(args: argparse.Namespace) -> dict[str, Any]:
    return {"rate": args.rate, "runs": [udp_run(args) for _ in range(args.runs)]}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python3 -m socklab.loadgen.load", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="closed-loop echo load")
    hold = commands.add_parser("hold", help="hold idle connections open")
    ftp = commands.add_parser("ftp", help="timed uploads, sha256 verified")
    exec_ = commands.add_parser("exec", help="commands/s on one framing")
    udp = commands.add_parser("udp", help="datagrams/s answered and loss")
    for sub in (echo, hold, ftp, exec_, udp):
        sub.add_argument("--host", required=True)
    for sub in (echo, hold, ftp, udp):
        sub.add_argument("--port", type=int, required=True)
    for sub in (echo, ftp, exec_, udp):
        sub.add_argument("--runs", type=int, default=1)
    for sub in (echo, exec_, udp):
        sub.add_argument("--duration", type=float, default=2.0)
    echo.add_argument("--size", type=int, required=True)
    echo.add_argument("--concurrency", type=int, default=1)
    echo.add_argument("--processes", type=int, default=2)
    echo.add_argument("--warmup", type=float, default=0.5)
    echo.add_argument("--tail", type=float, default=0.5,
                      help="seconds the load runs on, unmeasured, after the window")
    echo.add_argument("--greeting", type=int, default=0, help="greeting bytes to read first")
    echo.add_argument("--upper", action="store_true", help="the server upper-cases")
    hold.add_argument("--count", type=int, required=True)
    hold.add_argument("--state", required=True, help="JSON written once all are open")
    hold.add_argument("--max-seconds", type=float, default=900.0)
    ftp.add_argument("--size", type=int, required=True)
    exec_.add_argument("--mode", choices=("naive", "handshake", "framed"), required=True)
    udp.add_argument("--rate", type=int, default=0)
    udp.add_argument("--size", type=int, default=64)
    return top


COMMANDS = {"echo": run_echo, "hold": run_hold, "ftp": run_ftp, "exec": run_exec,
            "udp": run_udp}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except (OSError, RuntimeError, ValueError) as error:
        print(f"socklab.loadgen.load {args.command}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
