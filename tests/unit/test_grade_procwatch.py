"""procwatch: the /proc reader that follows a server on another engine's machine.

The pure parts (the log stream's parsing, a snapshot's readers, the reader
container's settings) are checked on made-up data. WATCH_SCRIPT itself is run
here for real, with no Docker: a ``sh`` stands in for the container's init and
a Python listener on this machine for the server, and what the script prints
is read by procfs exactly as the grader reads a worker's snapshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from socklab.host.grade import procfs, procwatch
from socklab.host.grade.procwatch import Snapshot, parse_lines, reader_spec, watched_paths

# A test that waits on a process fails after this long instead of hanging the suite.
WAIT = 10.0


def line(seq: int, files: dict[str, str | None] | None = None,
         counts: dict[str, int | None] | None = None) -> bytes:
    """One line as WATCH_SCRIPT prints it."""
    return json.dumps({"seq": seq, "files": files or {}, "counts": counts or {}}).encode() + b"\n"


# --- parse_lines -------------------------------------------------------------------------


def test_a_line_split_over_three_chunks_is_one_snapshot_and_junk_is_skipped() -> None:
    first = line(1, {"/proc/7/status": "Threads:\t1\n", "/proc/7/net/tcp6": None},
                 {"/proc/7/fd": 4})
    second = line(2, counts={"/proc/7/fd": 5})
    cut1, cut2 = len(first) // 3, 2 * len(first) // 3
    chunks = [first[:cut1], first[cut1:cut2],
              first[cut2:] + b"Traceback (most recent call last):\n" + b'{"seq": 9}\n'
              + b"[1, 2]\n" + second + b'{"seq": 3, "files": {}, "coun']
    snapshots = list(parse_lines(iter(chunks)))
    assert snapshots == [
        Snapshot(1, {"/proc/7/status": "Threads:\t1\n", "/proc/7/net/tcp6": None},
                 {"/proc/7/fd": 4}),
        Snapshot(2, {}, {"/proc/7/fd": 5}),
    ]


def test_snapshots_come_as_their_lines_end_not_when_the_stream_does() -> None:
    stream = parse_lines(iter([line(1)[:-1], b"\n" + line(2)[:5], line(2)[5:]]))
    assert next(stream).seq == 1
    assert next(stream).seq == 2
    assert next(stream, None) is None


def test_a_trailing_incomplete_line_is_not_yielded() -> None:
    assert list(parse_lines(iter([line(5)[:-1]]))) == []
    assert [s.seq for s in parse_lines(iter([line(5), line(6)[:-1]]))] == [5]


# --- Snapshot ----------------------------------------------------------------------------


def test_a_snapshot_reads_and_counts_what_it_holds_and_nothing_else() -> None:
    snapshot = Snapshot(3, {"/proc/9/status": "Threads:\t2\n", "/proc/9/net/udp6": None},
                        {"/proc/9/fd": 6, "/proc/10/fd": None})
    assert snapshot.read("/proc/9/status") == "Threads:\t2\n"
    assert snapshot.read("/proc/9/net/udp6") is None
    assert snapshot.read("/proc/9/net/udp") is None
    assert snapshot.count("/proc/9/fd") == 6
    assert snapshot.count("/proc/10/fd") is None
    assert snapshot.count("/proc/9/status") is None
    assert Snapshot().read("/proc/9/status") is None and Snapshot().count("/proc/9/fd") is None


def test_procfs_reads_a_made_up_snapshot() -> None:
    tcp = ("  sl  local_address rem_address   st\n"
           "   0: 00000000:1F40 00000000:0000 0A\n")
    snapshot = Snapshot(1, {"/proc/5/task/5/children": "6 ",
                            "/proc/6/net/tcp": tcp, "/proc/6/net/tcp6": None,
                            "/proc/6/status": "Threads:\t3\nVmRSS:\t 100 kB\nVmHWM:\t 200 kB\n"},
                        {"/proc/6/fd": 7})
    assert procfs.listening(6, 8000, "tcp", snapshot.read).addresses == ("0.0.0.0",)
    assert procfs.sample(5, snapshot.read, snapshot.count) == procfs.Sample(
        6, 3, 7, 100 * 1024, 200 * 1024)
    assert procfs.sample(5, Snapshot().read, Snapshot().count) is None


# --- watched_paths and reader_spec -------------------------------------------------------


def test_the_watched_paths_are_the_ones_procfs_reads() -> None:
    assert watched_paths("tcp") == ["/proc/{server}/net/tcp", "/proc/{server}/net/tcp6",
                                    "/proc/{server}/status", "/proc/{server}/fd"]
    assert watched_paths("udp")[:2] == ["/proc/{server}/net/udp", "/proc/{server}/net/udp6"]


def test_the_reader_container_sees_the_hosts_pids_and_nothing_more() -> None:
    spec = reader_spec(4321, "udp")
    assert spec["pid_mode"] == "host"
    assert spec["network_mode"] == "none"
    assert spec["cap_drop"] == ["ALL"]
    assert sorted(spec["cap_add"]) == ["DAC_READ_SEARCH", "SYS_PTRACE"]
    assert spec["read_only"] is True
    assert "no-new-privileges" in spec["security_opt"]
    assert isinstance(spec["pids_limit"], int) and 0 < spec["pids_limit"] <= 16
    assert spec["detach"] is True
    command = spec["command"]
    assert command[:3] == ["python3", "-c", procwatch.WATCH_SCRIPT]
    assert command[3:5] == ["4321", str(procwatch.INTERVAL)]
    assert command[5:] == watched_paths("udp")


# --- WATCH_SCRIPT, run for real ----------------------------------------------------------

# The "server": listens on every address of this machine, says where, and waits.
LISTENER = ("import os, socket, time\n"
            "s = socket.socket()\n"
            "s.bind(('0.0.0.0', 0))\n"
            "s.listen(8)\n"
            "print(s.getsockname()[1], os.getpid(), flush=True)\n"
            "time.sleep(30)\n")


def chunks_of(stream: int, deadline: float) -> Iterator[bytes]:
    """What a pipe's descriptor gives, failing the test once ``deadline`` has passed."""
    while True:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(0.0, remaining))
        if not ready:
            pytest.fail("no output from the process in time")
        chunk = os.read(stream, 65536)
        if not chunk:
            return
        yield chunk


def tcp_row_state(table: str, local_port: int) -> list[str]:
    """The states of a /proc/net/tcp table's rows whose local port is ``local_port``."""
    states = []
    for row in table.splitlines()[1:]:
        fields = row.split()
        if len(fields) > 3 and int(fields[1].split(":")[1], 16) == local_port:
            states.append(fields[3])
    return states


def parse_port(chunks: Iterator[bytes]) -> Iterator[tuple[int, int]]:
    """The listener's ``PORT PID`` line."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        if b"\n" in pending:
            port, pid = pending.split(b"\n")[0].split()
            yield int(port), int(pid)
            return


@dataclass
class Run:
    """A watched listener: the sh standing for its init, the listener, the script."""

    init: subprocess.Popen[bytes]
    server_pid: int
    port: int
    client_port: int
    raw_tcp: str
    watch: subprocess.Popen[bytes]
    snapshots: list[Snapshot]


def _proc_children_readable() -> bool:
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").is_file()


needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _proc_children_readable(),
    reason="needs Linux's /proc/PID/task/PID/children")


@pytest.fixture
def run() -> Iterator[Run]:
    """The script following a real listener with one connected client; all killed after."""
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(LISTENER)} & wait"
    init = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE,
                            start_new_session=True)
    watch: subprocess.Popen[bytes] | None = None
    client = socket.socket()
    try:
        assert init.stdout is not None
        port, server_pid = next(
            parse_port(chunks_of(init.stdout.fileno(), time.monotonic() + WAIT)))
        client.settimeout(WAIT)
        client.connect(("127.0.0.1", port))
        client_port = client.getsockname()[1]
        raw_tcp = Path(f"/proc/{server_pid}/net/tcp").read_text()
        watch = subprocess.Popen(
            [sys.executable, "-c", procwatch.WATCH_SCRIPT, str(init.pid), "0.05",
             *watched_paths("tcp")], stdout=subprocess.PIPE)
        assert watch.stdout is not None
        stream = parse_lines(chunks_of(watch.stdout.fileno(), time.monotonic() + WAIT))
        snapshots = [next(stream), next(stream)]
        yield Run(init, server_pid, port, client_port, raw_tcp, watch, snapshots)
    finally:
        client.close()
        if watch is not None and watch.poll() is None:
            watch.kill()
        if watch is not None:
            watch.wait(WAIT)
        with contextlib.suppress(ProcessLookupError):  # killed by the test itself
            os.killpg(init.pid, signal.SIGKILL)
        init.wait(WAIT)
        for pipe in (init.stdout, watch.stdout if watch is not None else None):
            if pipe is not None:
                pipe.close()


@needs_proc
def test_the_script_reads_the_inits_first_child(run: Run) -> None:
    latest = run.snapshots[-1]
    assert [s.seq for s in run.snapshots] == [1, 2]
    children = latest.read(f"/proc/{run.init.pid}/task/{run.init.pid}/children")
    assert children is not None and children.split() == [str(run.server_pid)]
    assert procfs.first_child(run.init.pid, latest.read) == str(run.server_pid)
    listening = procfs.listening(run.server_pid, run.port, "tcp", latest.read)
    assert "0.0.0.0" in listening.addresses
    assert listening.ready
    sample = procfs.sample(run.init.pid, latest.read, latest.count)
    assert sample is not None
    assert sample.pid == run.server_pid
    assert sample.threads == 1
    assert sample.fds >= 3
    assert sample.rss > 0 and sample.hwm >= sample.rss


@needs_proc
def test_status_is_cut_to_threads_and_memory(run: Run) -> None:
    status = run.snapshots[-1].read(f"/proc/{run.server_pid}/status")
    assert status is not None
    assert "VmRSS" in status and "Threads" in status and "VmHWM" in status
    assert "Name:" not in status and "Pid:" not in status
    assert len(status.splitlines()) == 3


@needs_proc
def test_net_tables_keep_the_header_and_listeners_only(run: Run) -> None:
    # The connection is in the kernel's table (both ends), but not in the snapshot's.
    assert "01" in tcp_row_state(run.raw_tcp, run.client_port)
    table = run.snapshots[-1].read(f"/proc/{run.server_pid}/net/tcp")
    assert table is not None
    rows = table.splitlines()
    assert rows[0].split()[:4] == ["sl", "local_address", "rem_address", "st"]
    assert tcp_row_state(table, run.client_port) == []
    assert tcp_row_state(table, run.port) == ["0A"]
    assert {row.split()[3] for row in rows[1:]} <= {"0A", "07"}
    assert run.snapshots[-1].count(f"/proc/{run.server_pid}/fd") is not None


@needs_proc
def test_the_script_ends_once_its_init_is_gone(run: Run) -> None:
    assert run.watch.poll() is None
    os.killpg(run.init.pid, signal.SIGKILL)
    run.init.wait(WAIT)  # reaped: a zombie would keep /proc/PID
    assert run.watch.wait(5.0) == 0  # TimeoutExpired if it kept going
