"""The load generator: runs on a client host and prints one JSON object of what it measured.

    python3 -m socklab.loadgen.load echo --host H --port P --size N --concurrency C ...
    python3 -m socklab.loadgen.load echo --host H --versus R --port P --size N ...
    python3 -m socklab.loadgen.load hold --host H --port P --count K --state FILE
    python3 -m socklab.loadgen.load ftp --host H --port P --size N --runs R [--downloads D]
    python3 -m socklab.loadgen.load exec --host H --mode framed --duration D --runs R
    python3 -m socklab.loadgen.load udp --host H --port P --rate R --duration D --runs R

Echo load is closed-loop, as vmbench's: each connection sends one message,
reads the whole reply, and sends the next. The connections are spread over a
few processes, each an epoll loop over non-blocking sockets (no threads, no
framework: the cheapest Python client, so the server saturates first). Each
process reports its CPU time over the measured window, so a report can show
the load generator was not the bottleneck.

With ``--versus R`` one run measures two servers of the same protocol side by
side: each process holds ``C`` connections to each, and the load alternates
between them in turns of ``--turn`` seconds, in the order A B B A (so a rate
that drifts evenly weighs on both alike). Each turn's connections start
together; one that finishes a request after its turn ended waits for its
next turn. A side's rate is its requests over the time its connections were
busy (from a turn's first send to the reply of the last request begun in the
turn), so the turn's edges favour neither server. On a shared machine two
rates measured seconds apart differ by a third; measured this way, their
ratio moves little. Times are ``time.monotonic``
(CLOCK_MONOTONIC, shared with the host: Docker gives containers no time
namespace), so the host can line the window up with the server's CPU counter.

Only the standard library and socklab: this module runs in the lab image.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import mmap
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
READABLE = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
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

    __slots__ = ("activated", "checked", "expected", "received", "sent", "side", "sock",
                 "started", "turn", "view", "writing")

    def __init__(self, sock: socket.socket, message: bytes, expected: bytes,
                 side: int = 0) -> None:
        self.sock = sock
        self.view = memoryview(message)
        self.expected = expected
        self.sent = len(message)
        self.received = 0
        self.started = 0.0
        self.checked = False
        self.writing = False  # registered for EPOLLOUT: part of the message is still unsent
        self.side = side  # which server, in a run of two
        self.turn = -1  # the turn its requests belong to; -1 while it waits for one
        self.activated = 0.0  # when its turn's first request was sent


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
            if events & READABLE and _receive(conn, buf, size):
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


# The sides of a block's four turns: A B B A.
ORDER = (0, 1, 1, 0)
# After the last turn, how long requests still in flight may take to come back.
DRAIN_LIMIT = 2.0


class SideError(Exception):
    """What went wrong, and on which of the two servers."""

    def __init__(self, side: int, message: str) -> None:
        super().__init__(message)
        self.side = side


class Turns:
    """The turns of a run of two servers: which side each turn is, which are measured.

    Turn ``t`` spans ``start + t * length`` to the next; the first ``warmup``
    turns are not measured, then ``measured`` turns (whole A B B A blocks).
    """

    def __init__(self, start: float, length: float, warmup: int, measured: int) -> None:
        self.start, self.length = start, length
        self.warmup, self.end = warmup, warmup + measured

    def at(self, now: float) -> int:
        return int((now - self.start) / self.length)

    def side(self, turn: int) -> int:
        return ORDER[(turn - self.warmup) % len(ORDER)]

    def measured(self, turn: int) -> bool:
        return self.warmup <= turn < self.end

    def edge(self, turn: int) -> float:
        """When ``turn`` starts."""
        return self.start + turn * self.length


def _pair_loop(conns: list[EchoConn], size: int, turns: Turns) -> dict[str, Any]:
    """Drive two servers' connections turn by turn; per measured turn, requests and busy time.

    A connection's busy time in a turn runs from the turn's first send to the
    reply of the last request it began in the turn: a reply that comes after
    the turn ended is counted, and the time it took too.
    """
    poller = select.epoll()
    by_fd = {c.sock.fileno(): c for c in conns}
    buf = bytearray(RECV_BUFFER)
    histograms = [Histogram(), Histogram()]
    measured = turns.end - turns.warmup
    requests, busy = [0] * measured, [0.0] * measured
    waiting: list[list[EchoConn]] = [[], []]
    for conn in conns:
        poller.register(conn.sock.fileno(), select.EPOLLIN)
        waiting[conn.side].append(conn)
    active, current = 0, -1
    cpu = [0.0, 0.0]
    waited = [0.0, 0.0]

    def begin(conn: EchoConn, turn: int, now: float) -> None:
        conn.turn, conn.activated, conn.started, conn.sent = turn, now, now, 0
        _send_more(conn, poller, size)

    def end(conn: EchoConn, now: float) -> None:
        if turns.measured(conn.turn):
            busy[conn.turn - turns.warmup] += now - conn.activated
        conn.turn = -1

    while True:
        now = time.monotonic()
        turn = turns.at(now)
        if turn != current:
            for edge, slot in ((turns.warmup, 0), (turns.end, 1)):
                if current < edge <= turn:
                    cpu[slot], waited[slot] = time.process_time(), run_queue_wait()
            current = turn
            if turn < turns.end:
                side = turns.side(turn)
                for conn in waiting[side]:
                    begin(conn, turn, now)
                active += len(waiting[side])
                waiting[side] = []
        if turn >= turns.end and (not active or now > turns.edge(turns.end) + DRAIN_LIMIT):
            break
        timeout = min(POLL_INTERVAL, turns.edge(turn + 1) - now)
        for fd, events in poller.poll(max(timeout, 0.0)):
            conn = by_fd[fd]
            try:
                if conn.turn < 0:
                    raise ConnectionError("the server sent bytes nobody asked for, or "
                                          "closed the connection, between two requests")
                if events & select.EPOLLOUT:
                    _send_more(conn, poller, size)
                if not (events & READABLE and _receive(conn, buf, size)):
                    continue
            except (OSError, ValueError) as error:
                raise SideError(conn.side, f"{type(error).__name__}: {error}") from error
            finished = time.monotonic()
            if turns.measured(conn.turn):
                histograms[conn.side].add(finished - conn.started)
                requests[conn.turn - turns.warmup] += 1
            conn.received = 0
            turn_now = turns.at(finished)
            if turn_now == conn.turn and turn_now < turns.end:
                conn.started, conn.sent = finished, 0
                _send_more(conn, poller, size)
                continue
            end(conn, finished)
            if turn_now == current and turn_now < turns.end and turns.side(turn_now) == conn.side:
                begin(conn, turn_now, finished)  # its side's next turn has already begun
            else:
                active -= 1
                waiting[conn.side].append(conn)
    poller.close()
    stuck = [conn for conn in conns if conn.turn >= 0]
    if stuck:  # a request still unanswered DRAIN_LIMIT after the last turn ended
        raise SideError(stuck[0].side, f"{len(stuck)} of its connections got no reply to a "
                        f"request within {DRAIN_LIMIT:.0f} s after the last turn: the server "
                        "stopped answering")
    return {"requests": requests, "busy": busy,
            "histograms": [h.to_json() for h in histograms],
            "cpu_seconds": cpu[1] - cpu[0], "wait_seconds": waited[1] - waited[0],
            "window": [turns.edge(turns.warmup), turns.edge(turns.end)]}


def _receive(conn: EchoConn, buf: bytearray, size: int) -> bool:
    """Read what came for ``conn``; True once its whole reply is in."""
    n = conn.sock.recv_into(buf)
    if n == 0:
        raise ConnectionError("the server closed the connection")
    if not conn.checked:
        _check(conn, buf, n)
    conn.received += n
    return conn.received >= size


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


def _fork(target: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``target`` in each process with its share of the connections; their results."""
    counts = split(args.concurrency, max(1, min(args.processes, args.concurrency)))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(counts))
    pipes, workers = [], []
    for count in counts:
        parent, child = context.Pipe(duplex=False)
        worker = context.Process(target=target, args=(args, count, barrier, child))
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    results = [pipe.recv() for pipe in pipes]
    for worker in workers:
        worker.join()
    return results


def echo_run(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run: every process connects, then all start together."""
    results = _fork(_echo_worker, args)
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


def _pair_worker(args: argparse.Namespace, count: int, barrier: Any, out: Connection) -> None:
    try:
        message = payload(args.size)
        expected = message.upper() if args.upper else message
        conns = []
        for side, (host, port) in enumerate(pair_targets(args)):
            try:
                conns += [EchoConn(_open_echo(host, port, args.greeting), message, expected,
                                   side) for _ in range(count)]
            except (OSError, ValueError) as error:
                raise SideError(side, f"{type(error).__name__}: {error}") from error
        barrier.wait(timeout=60)
        result = _pair_loop(conns, args.size, pair_turns(args, time.monotonic()))
        for conn in conns:
            conn.sock.close()
        out.send(result)
    except SideError as error:
        out.send({"error": str(error), "side": error.side})
    except BaseException as error:  # reported to the parent, which fails the run
        out.send({"error": f"{type(error).__name__}: {error}", "side": None})


def pair_targets(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [(args.host, args.port), (args.versus, args.versus_port or args.port)]


def pair_turns(args: argparse.Namespace, start: float) -> Turns:
    """Warm-up turns covering ``--warmup``, then whole blocks near ``--duration`` a side."""
    warmup = math.ceil(args.warmup / args.turn - 1e-9)
    blocks = max(1, round(2 * args.duration / (len(ORDER) * args.turn)))
    return Turns(start, args.turn, warmup, blocks * len(ORDER))


def side_rate(concurrency: int, requests: int, busy: float) -> float:
    """Requests per second of ``concurrency`` connections, from their summed busy time."""
    return concurrency * requests / busy if busy > 0 else 0.0


def echo_pair(args: argparse.Namespace) -> dict[str, Any]:
    """One run of two servers taking turns: each side's rate, their ratio, per block too."""
    results = _fork(_pair_worker, args)
    errors = sorted((r for r in results if "error" in r), key=lambda r: r["side"] is None)
    if errors:  # one that names its server first: another worker's then only echoes it
        if errors[0]["side"] is None:
            raise RuntimeError(errors[0]["error"])
        host, port = pair_targets(args)[errors[0]["side"]]
        raise RuntimeError(f"{host} port {port}: {errors[0]['error']}")
    turns = len(results[0]["requests"])
    requests = [sum(r["requests"][t] for r in results) for t in range(turns)]
    busy = [sum(r["busy"][t] for r in results) for t in range(turns)]
    sides = []
    for side, (host, port) in enumerate(pair_targets(args)):
        mine = [t for t in range(turns) if ORDER[t % len(ORDER)] == side]
        histogram = Histogram()
        for r in results:
            histogram.merge(Histogram.from_json(r["histograms"][side]))
        done, seconds = sum(requests[t] for t in mine), sum(busy[t] for t in mine)
        sides.append({"host": host, "port": port, "requests": done,
                      "busy_seconds": seconds, "rps": side_rate(args.concurrency, done, seconds),
                      "latency_ms": histogram.summary()})
    blocks = []
    for first in range(0, turns, len(ORDER)):
        rates = [side_rate(args.concurrency,
                           sum(requests[t] for t in range(first, first + len(ORDER))
                               if ORDER[t - first] == side),
                           sum(busy[t] for t in range(first, first + len(ORDER))
                               if ORDER[t - first] == side)) for side in (0, 1)]
        blocks.append(rates[0] / rates[1] if rates[1] else None)
    window = args.turn * turns / 2
    return {"sides": sides, "ratio": sides[0]["rps"] / sides[1]["rps"] if sides[1]["rps"]
            else None, "block_ratios": blocks, "turn": args.turn, "turns": turns,
            "client_cpu": [r["cpu_seconds"] / window / 2 for r in results],
            "client_wait": [r["wait_seconds"] / window / 2 for r in results],
            "window": [min(r["window"][0] for r in results),
                       max(r["window"][1] for r in results)]}


def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    run = echo_pair if args.versus else echo_run
    return {"runs": [run(args) for _ in range(args.runs)], "processes":
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


def _ftp_put(host: str, port: int, name: str, size: int, digest: str,
             block: bytes) -> dict[str, Any]:
    from socklab.clients.core import FtpClient

    def chunks() -> Any:
        left = size
        while left > 0:
            yield block[:min(left, len(block))]
            left -= len(block)

    with socket.create_connection((host, port), timeout=120) as sock:
        client = FtpClient(sock)
        started = time.monotonic()
        answer = client.put(name, size, chunks(), sha256=digest)
        seconds = time.monotonic() - started
    ok = answer.get("status") == 201 and answer.get("sha256") == digest
    return {"seconds": seconds, "mib_s": size / seconds / (1 << 20), "verified": ok,
            "window": [started, started + seconds],
            "status": answer.get("status"), "server_sha256": answer.get("sha256")}


def _ftp_get(host: str, port: int, name: str, size: int, digest: str) -> dict[str, Any]:
    """One timed download; its sha256 is checked after the clock stops.

    The bytes go straight from the socket into memory mapped and touched
    before the clock starts (``MAP_POPULATE``), as iperf3's do into its
    buffer: written to a file instead, the client's own disk writes, not the
    server, set the pace (about 500 MiB/s in a client container here).
    """
    from socklab.clients.core import FtpClient

    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    with socket.create_connection((host, port), timeout=120) as sock, \
            mmap.mmap(-1, max(size, 1), flags=flags) as memory, memoryview(memory) as view:
        client = FtpClient(sock)
        started = time.monotonic()
        answer = client.request({"action": "get", "filename": name})
        received = 0
        if answer.get("status") == 200 and answer.get("filesize") == size:
            early = client.reader.buffer[:size]
            view[:len(early)] = early
            received = len(early)
            while received < size:
                count = sock.recv_into(view[received:size])
                if not count:
                    break
                received += count
        seconds = time.monotonic() - started
        got = hashlib.sha256(view[:received]).hexdigest()
    ok = answer.get("status") == 200 and received == size and got == digest
    return {"seconds": seconds, "mib_s": received / seconds / (1 << 20), "verified": ok,
            "window": [started, started + seconds], "status": answer.get("status"),
            "received": received, "sha256": got}


def run_ftp(args: argparse.Namespace) -> dict[str, Any]:
    """Upload ``size`` bytes ``runs`` times, then download the last file ``downloads`` times.

    Every upload's sha256 is computed before the clock starts (the server
    checks it and answers its own); every download is received into memory
    (``size`` bytes of it) and hashed after the clock stops, so the client's
    hashing is in no window.
    """
    block = os.urandom(FTP_BLOCK)
    digest = hashlib.sha256()
    left = args.size
    while left > 0:
        digest.update(block[:min(left, len(block))])
        left -= len(block)
    # A name per run: replacing a file frees the old one's blocks, on the
    # server's disk, while the next upload runs (a 1 GiB file's took 166 ms
    # in rename() on an ext4 mounted with discard, and slowed the next run).
    names = [f"bench-{args.size}-{run}.bin" for run in range(args.runs)]
    uploads = [_ftp_put(args.host, args.port, name, args.size, digest.hexdigest(), block)
               for name in names]
    stored = [name for name, run in zip(names, uploads, strict=True) if run["verified"]]
    downloads = [_ftp_get(args.host, args.port, stored[-1], args.size, digest.hexdigest())
                 for _ in range(args.downloads if stored else 0)]
    return {"size": args.size, "sha256": digest.hexdigest(), "runs": uploads,
            "downloads": downloads}


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
    ftp = commands.add_parser("ftp", help="timed uploads and downloads, sha256 verified")
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
    echo.add_argument("--versus", metavar="HOST", help="a second server, measured in turns "
                      "with the first: each side's rate and their ratio")
    echo.add_argument("--versus-port", type=int, help="its port (default: --port)")
    echo.add_argument("--turn", type=float, default=0.2,
                      help="seconds of each turn, with --versus")
    hold.add_argument("--count", type=int, required=True)
    hold.add_argument("--state", required=True, help="JSON written once all are open")
    hold.add_argument("--max-seconds", type=float, default=900.0)
    ftp.add_argument("--size", type=int, required=True)
    ftp.add_argument("--downloads", type=int, default=0,
                     help="timed downloads of the uploaded file, after the uploads")
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
