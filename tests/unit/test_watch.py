"""The watcher's parts without Docker: sock_diag's wire format and the kernel's answer in
this test's own namespace, the /proc parsers, the terminal text, the log stream, the page."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from socklab.protocol import netlink
from socklab.watch import collect, diag, engine, kernel, view, web


def diag_message(state: int, sport: int, rqueue: int, wqueue: int, dport: int = 0) -> bytes:
    body = diag.MESSAGE.pack(socket.AF_INET, state, 0, 0, sport.to_bytes(2, "big"),
                             dport.to_bytes(2, "big"), bytes(16), bytes(16), 0, 0, 0,
                             rqueue, wqueue, 0, 0)
    return netlink.message(diag.SOCK_DIAG_BY_FAMILY, 2, body, 1)


def test_a_dump_request_asks_for_every_tcp_socket_of_one_family() -> None:
    data = diag.request(socket.AF_INET6)
    length, kind, flags, _, _ = netlink.HEADER.unpack_from(data)
    assert (length, kind, flags) == (len(data), 20, 0x301) and len(data) == 16 + 56
    family, protocol, _, _, states = diag.REQUEST.unpack_from(data, netlink.HEADER.size)
    assert (family, protocol, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 0xFFFFFFFF)


def test_an_answer_is_read_as_sockets_until_done() -> None:
    done = netlink.message(netlink.NLMSG_DONE, 2, bytes(4), 1)
    sockets, finished = diag.parse(diag_message(10, 9000, 5, 6) +
                                   diag_message(12, 9000, 0, 0, 40000))
    assert not finished
    assert [(s.state, s.local_port, s.rqueue, s.wqueue) for s in sockets] == [
        ("LISTEN", 9000, 5, 6), ("SYN_RECV", 9000, 0, 0)]
    assert sockets[1].remote_port == 40000
    assert diag.parse(done) == ([], True)
    error = netlink.message(netlink.NLMSG_ERROR, 0, struct.pack("=i", -1) + bytes(16))
    with pytest.raises(netlink.NetlinkError, match="errno 1"):
        diag.parse(error)


def test_the_tail_of_an_earlier_dump_is_not_taken_for_this_one() -> None:
    """A dump cut short leaves its tail (sockets, its end, an error) queued: skipped."""
    stale = (diag_message(10, 7000, 1, 1) + netlink.message(netlink.NLMSG_DONE, 2, bytes(4), 1)
             + netlink.message(netlink.NLMSG_ERROR, 0, struct.pack("=i", -1) + bytes(16), 1))
    assert diag.parse(stale, sequence=2) == ([], False)
    mine = netlink.message(diag.SOCK_DIAG_BY_FAMILY, 2, diag_message(10, 9000, 5, 6)[16:], 2)
    sockets, finished = diag.parse(stale + mine, sequence=2)
    assert [s.local_port for s in sockets] == [9000] and not finished


def test_a_dump_cut_short_does_not_spoil_the_next() -> None:
    """Over a real sock_diag socket: a dump abandoned after its first socket, then a whole
    one on the same socket, which lists each listener once and ends at its own end."""
    listeners = []
    try:
        for _ in range(600):  # enough for the answer to span several reads
            listener = socket.socket()
            listeners.append(listener)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
        ports = {listener.getsockname()[1] for listener in listeners}
        with diag.open_socket() as sock:
            cut_short = diag.dump(sock, socket.AF_INET)
            next(cut_short)
            del cut_short  # its tail stays queued on the socket
            listed = [s.local_port for s in diag.all_sockets(sock, ipv6=False)
                      if s.state == "LISTEN" and s.local_port in ports]
        assert sorted(listed) == sorted(ports)
    finally:
        for listener in listeners:
            listener.close()


def test_the_kernel_reports_a_listeners_queue_and_its_limit() -> None:
    """In this test's own namespace: listen(3), two connections never accepted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(3)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.1)
        with diag.open_socket() as sock:
            every = diag.all_sockets(sock)
            found = kernel.listeners(every)
        assert [s.local_address for s in every if s.local_port == port and
                s.state == "LISTEN"] == ["127.0.0.1"]
        for client in clients:
            client.close()
    mine = [entry for entry in found if entry["port"] == port]
    assert mine == [{"port": port, "queued": 2, "limit": 3, "syn_recv": 0}]


SNMP = """Tcp: RtoAlgorithm RtoMin RetransSegs InErrs
Tcp: 1 200 17 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors
Udp: 10 0 3 10 2
"""
NETSTAT = """TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts TCPAbortOnOverflow
TcpExt: 0 7 9 1 0
IpExt: InNoRoutes
IpExt: 0
"""


def test_counters_are_read_from_snmp_and_netstat() -> None:
    totals = kernel.counters({"snmp": SNMP, "netstat": NETSTAT})
    assert totals == {"ListenOverflows": 7, "ListenDrops": 9, "RetransSegs": 17,
                      "TCPTimeouts": 1, "TCPAbortOnOverflow": 0, "UdpInErrors": 3,
                      "UdpRcvbufErrors": 2}
    later = {**totals, "ListenOverflows": 12}
    assert kernel.rates(later, totals, 0.5)["ListenOverflows"] == 10.0
    assert kernel.rates(later, None, 0.5)["ListenOverflows"] == 0.0
    assert kernel.counters({"snmp": None, "netstat": ""})["RetransSegs"] == 0


def sock(state: str, port: int, remote: int = 0, rq: int = 0, wq: int = 0) -> diag.Socket:
    return diag.Socket(state, port, remote, rq, wq, socket.AF_INET)


def test_states_listeners_and_ports_in_use() -> None:
    dns = diag.Socket("LISTEN", 37001, 0, 0, 4096, socket.AF_INET, "127.0.0.11")
    sockets = [dns, sock("LISTEN", 9000, rq=6, wq=6), sock("SYN_RECV", 9000, 41000),
               sock("SYN_RECV", 9000, 41001), sock("ESTABLISHED", 9000, 41002),
               sock("TIME_WAIT", 40000, 9000), sock("TIME_WAIT", 40001, 9000),
               sock("ESTABLISHED", 40001, 9001), sock("LISTEN", 40002)]
    assert kernel.listeners(sockets) == [  # not the engine's DNS
        {"port": 9000, "queued": 6, "limit": 6, "syn_recv": 2},
        {"port": 40002, "queued": 0, "limit": 0, "syn_recv": 0}]
    states = kernel.states(sockets)
    assert list(states) == list(kernel.STATES)
    assert (states["TIME_WAIT"], states["SYN_RECV"], states["CLOSING"]) == (2, 2, 0)
    ports = kernel.ports_in_use(sockets, kernel.port_range("40000\t40009"))
    assert ports == {"in_use": 2, "first": 40000, "last": 40009, "size": 10}
    assert kernel.port_range("garbage") is None


def test_a_half_open_connection_is_counted_once_at_its_listener() -> None:
    """Port 9000 over IPv4 and IPv6: an IPv4 client's SYN_RECV is the IPv4 listener's,
    an IPv6 client's the IPv6 one's; with only an IPv6 (dual-stack) listener, both its."""
    v4 = diag.Socket("LISTEN", 9000, 0, 0, 5, socket.AF_INET, "0.0.0.0")
    v6 = diag.Socket("LISTEN", 9000, 0, 0, 5, socket.AF_INET6, "::")
    from_v4 = diag.Socket("SYN_RECV", 9000, 41000, 0, 0, socket.AF_INET, "172.18.0.2")
    from_v6 = diag.Socket("SYN_RECV", 9000, 41001, 0, 0, socket.AF_INET6, "fd00::2")
    both = kernel.listeners([v4, v6, from_v4, from_v4, from_v6])
    assert [entry["syn_recv"] for entry in both] == [2, 1]  # not 3 and 3
    assert [entry["syn_recv"] for entry in kernel.listeners([v6, from_v4, from_v6])] == [2]
    assert kernel.listeners([from_v4]) == []
    loopback = diag.Socket("LISTEN", 9000, 0, 0, 5, socket.AF_INET, "127.0.0.1")
    # a loopback listener cannot take a client of 172.18.0.2: the IPv6 wildcard one does
    assert [entry["syn_recv"] for entry in kernel.listeners([loopback, v6, from_v4])] == [0, 1]


def test_process_files() -> None:
    name, ticks = kernel.stat_fields("42 (my (odd) server) S 1 42 42 0 -1 4194560 1 0 0 0 "
                                     "150 25 0 0 20 0 3 0 100 0 0")
    assert (name, ticks) == ("my (odd) server", 175)
    status = "Name:\tpython3\nThreads:\t3\nVmRSS:\t  2048 kB\n"
    assert kernel.status_value(status, "Threads") == 3
    assert kernel.status_value(status, "VmRSS") == 2 << 20
    limits = ("Limit                     Soft Limit           Hard Limit           Units\n"
              "Max open files            1024                 4096                 files\n")
    assert kernel.nofile_limit(limits) == 1024
    tini = kernel.Process(1, "tini", 4, 1024, 1, 1, 0)
    server = kernel.Process(7, "python3", 1030, 1024, 1, 1, 0)
    assert kernel.main_process([tini, server]) is server


def snapshot() -> dict[str, Any]:
    host = kernel.host_view(
        role="server", sockets=[sock("LISTEN", 9000, rq=5, wq=6), sock("ESTABLISHED", 9000)],
        sysctls={"net/ipv4/ip_local_port_range": "32768\t60999", "net/core/somaxconn": "128"},
        totals={"ListenOverflows": 3}, per_second={"ListenOverflows": 2.0},
        processes=[kernel.Process(7, "socklab", 9, 1024, 1, 30 << 20, 10)], cpu=0.25,
        events=["2026-12-04T10:00:00.000Z tcp accept peer=10.0.0.3:40000"])
    client = kernel.host_view(
        role="client", sockets=[sock("TIME_WAIT", 40000, 9000)],
        sysctls={"net/ipv4/ip_local_port_range": "40000\t40099"}, totals={},
        per_second={}, processes=[], cpu=None, events=[])
    return {"lab": "default", "time": 0.0, "problem": None,
            "hosts": {"client-1": client, "tcp-server": host}}


def test_a_host_view_holds_the_schemas_fields() -> None:
    host = snapshot()["hosts"]["tcp-server"]
    assert host["listeners"] == [{"port": 9000, "queued": 5, "limit": 6, "syn_recv": 0}]
    assert (host["fds"], host["nofile"], host["threads"], host["cpu"]) == (9, 1024, 1, 0.25)
    assert host["somaxconn"] == 128
    assert host["counters"]["ListenOverflows"] == {"total": 3, "per_second": 2.0}
    assert json.loads(json.dumps(host)) == host


def test_the_terminal_view_lists_servers_first_with_their_queues() -> None:
    text = view.render(snapshot(), 120)
    assert text.index("tcp-server") < text.index("client-1")
    assert "accept queue 5/6" in text and "fds 9/1,024" in text
    assert "local ports 1/100 (40000-40099)" in text
    assert "ListenOverflows +2/s" in text and "accept peer=10.0.0.3:40000" in text
    assert "no running host" in view.render({**snapshot(), "hosts": {}})


def test_log_frames_become_lines_across_frame_edges() -> None:
    frames = [b"accept peer=a\nclo", b"se peer=a\n", b"partial"]
    stream = b"".join(struct.pack(">BxxxI", 1, len(f)) + f for f in frames)
    position = [0]

    def read(size: int) -> bytes:
        chunk = stream[position[0]:position[0] + size]
        position[0] += size
        return chunk

    lines = list(engine.frames_to_lines(iter(lambda: read(8), b""), read))
    assert lines == ["accept peer=a", "close peer=a"]


def test_connection_events_are_picked_from_a_servers_log() -> None:
    assert collect.is_event("2026-12-04T10:00:00.000Z tcp accept peer=10.0.0.3:40000")
    assert collect.is_event("2026-12-04T10:00:00.000Z tcp close peer=x reason=eof")
    assert not collect.is_event("2026-12-04T10:00:00.000Z ftp put name=a bytes=3")


def test_a_containers_processes_are_found_by_its_id_in_their_cgroup(tmp_path: Path) -> None:
    for pid, path in ((1, "/"), (200, "/docker/abc123"), (201, "/docker/abc123"),
                      (300, "/docker/def456")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(f"4:memory:{path}\n0::{path}\n")
    (tmp_path / "self").mkdir()
    found = collect.container_pids(["abc123", "def456", "gone"], proc=str(tmp_path))
    assert {k: sorted(v) for k, v in found.items()} == {
        "abc123": [200, 201], "def456": [300], "gone": []}


@pytest.fixture
def page() -> Iterator[tuple[int, threading.Event]]:
    stop = threading.Event()
    ready: list[str] = []
    count = [0]

    def take() -> dict[str, Any]:
        count[0] += 1
        return {**snapshot(), "time": float(count[0])}

    thread = threading.Thread(target=web.serve, args=(take, 0, 0.05, ready.append, stop),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    yield int(ready[0].split(":")[-1].split("/")[0]), stop
    stop.set()
    thread.join(5)


def test_the_page_streams_snapshots_and_needs_nothing_from_elsewhere(
        page: tuple[int, threading.Event]) -> None:
    port, _ = page
    base = f"http://127.0.0.1:{port}"
    html = urllib.request.urlopen(base + "/", timeout=5).read().decode()
    assert "<script>" in html and "EventSource" in html
    assert "http://" not in html and "https://" not in html and " src=" not in html
    with urllib.request.urlopen(base + "/events", timeout=5) as events:
        seen = []
        while len(seen) < 2:
            line = events.readline().decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    assert seen[1]["time"] > seen[0]["time"] and "tcp-server" in seen[0]["hosts"]
    latest = json.loads(urllib.request.urlopen(base + "/snapshot.json", timeout=5).read())
    assert latest["lab"] == "default"


@pytest.mark.parametrize(("argv", "filters", "name"), [
    ([], {"network": ["socklab"]}, "default"),
    (["--lab", "alice"], {"network": ["socklab-alice"]}, "alice"),
    (["--grade", "20261204-abc"], {"label": ["socklab.grade=20261204-abc"]},
     "grade 20261204-abc"),
    (["--label", "a=1", "--label", "b"], {"label": ["a=1", "b"]}, "a=1,b"),
])
def test_which_containers_a_lab_is(argv: list[str], filters: dict[str, list[str]],
                                   name: str) -> None:
    from socklab.watch import __main__ as cli

    assert cli.target(cli.parser().parse_args(argv)) == (filters, name)


def test_bad_options_are_refused_before_anything_is_read(
        capsys: pytest.CaptureFixture[str]) -> None:
    from socklab.watch import __main__ as cli

    assert cli.main(["--every", "0"]) == 2
    assert "--every" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--lab", "a", "--grade", "b"])


def test_the_ipv6_dump_is_skipped_only_where_no_ipv6_socket_can_be() -> None:
    idle = "TCP: inuse 2 orphan 0 tw 0 alloc 3 mem 0\n", "TCP6: inuse 0\nUDP6: inuse 0\n"
    assert not kernel.may_hold_ipv6(*idle)
    assert kernel.may_hold_ipv6(idle[0], "TCP6: inuse 1\n")
    assert kernel.may_hold_ipv6("TCP: inuse 2 orphan 0 tw 4 alloc 3 mem 0\n", idle[1])
    assert kernel.may_hold_ipv6(None, idle[1])  # unreadable: look


class FakeSocket:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    """The engine's container list and inspections, as a dict of id -> (host name, pid)."""

    def __init__(self, containers: dict[str, tuple[str, int]]) -> None:
        self.containers_now = containers

    def containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [{"Id": cid, "Names": [f"/c-{cid}"], "Labels": {"socklab.role": "server"}}
                for cid in self.containers_now]

    def inspect(self, cid: str) -> dict[str, Any]:
        name, pid = self.containers_now[cid]
        return {"State": {"Pid": pid}, "Config": {"Hostname": name}, "Name": f"/c-{cid}"}


@pytest.fixture
def entered(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], set[int]]:
    """Every namespace the collector entered; the PIDs alive in theirs."""
    made: list[Any] = []
    alive: set[int] = set()

    def enter(pid: int) -> Any:
        namespace = collect.netns.Namespace(pid, FakeSocket(), {}, inode=pid)  # type: ignore[arg-type]
        made.append(namespace)
        return namespace

    monkeypatch.setattr(collect.netns, "enter", enter)
    monkeypatch.setattr(collect.netns, "still_in", lambda ns: ns.pid in alive)
    monkeypatch.setattr(collect, "container_pids", lambda ids: {i: [] for i in ids})
    return made, alive


def test_two_containers_of_one_host_name_are_both_shown_and_entered_once(
        entered: tuple[list[Any], set[int]]) -> None:
    made, alive = entered
    alive.update({10, 20})
    engine = FakeEngine({"b": ("server", 20), "a": ("server", 10)})
    collector = collect.Collector(engine, {}, "x", follow_logs=False)  # type: ignore[arg-type]
    for _ in range(3):
        collector.discover()
    assert sorted(collector.hosts) == ["c-a", "server"]
    assert len(made) == 2 and not any(n.diag.closed for n in made)


def test_a_restarted_container_is_entered_again_and_its_old_socket_closed(
        entered: tuple[list[Any], set[int]]) -> None:
    made, alive = entered
    alive.add(10)
    engine = FakeEngine({"a": ("tcp-server", 10)})
    collector = collect.Collector(engine, {}, "x", follow_logs=False)  # type: ignore[arg-type]
    collector.discover()
    engine.containers_now["a"] = ("tcp-server", 11)  # same container id, a new process
    alive.discard(10)
    alive.add(11)
    collector.discover()
    assert [n.pid for n in made] == [10, 11] and made[0].diag.closed
    assert collector.hosts["tcp-server"].namespace.pid == 11
    engine.containers_now.clear()  # the container is gone
    collector.discover()
    assert collector.hosts == {} and made[1].diag.closed


def test_a_failed_dump_shows_the_problem_and_the_next_refresh_has_a_new_socket(
        entered: tuple[list[Any], set[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    made, alive = entered
    alive.add(10)
    engine = FakeEngine({"a": ("tcp-server", 10)})
    collector = collect.Collector(engine, {}, "x", follow_logs=False)  # type: ignore[arg-type]
    collector.discover()
    host = collector.hosts["tcp-server"]

    def refused(sock: Any, ipv6: bool = True) -> list[Any]:
        raise netlink.NetlinkError(16, "netlink: the kernel refused the request, errno 16")

    monkeypatch.setattr(collect.diag, "all_sockets", refused)
    answer = collector.read_host(host, 1.0)
    assert "errno 16" in answer["problem"]
    assert [n.pid for n in made] == [10, 10] and made[0].diag.closed
    assert host.namespace is made[1] and not made[1].diag.closed
