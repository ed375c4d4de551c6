"""Every variant's protocol, as docs/protocols.md states it, from a client host.

Hosts, ports, greetings and reply transforms come from socklab.registry: a
check names its ``variant`` (and ``framing``) and the scripted client looks
them up; the tests parametrize over the registry's variants.
"""

from __future__ import annotations

import hashlib

import pytest

from integration.harness import Host, TestLab
from socklab.registry import ECHO_VARIANTS, VARIANTS

MB = 1 << 20

TCP, UDP, EXEC, FTP = VARIANTS["tcp"], VARIANTS["udp"], VARIANTS["exec"], VARIANTS["ftp"]

# The echo variants that greet and serve every client from one thread.
READINESS_VARIANTS = [name for name in ECHO_VARIANTS
                      if VARIANTS[name].greeting and VARIANTS[name].concurrent]


@pytest.mark.parametrize("size", [1, 1024, MB])
@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_echo_variant_returns_every_byte(lab: TestLab, client1: Host, variant: str,
                                         size: int) -> None:
    lab.host(VARIANTS[variant].host)
    result = client1.check("echo", variant=variant, size=size)
    assert result["greeting"] == VARIANTS[variant].greeting.decode()
    assert result["received"] == size
    assert result["sha256_received"] == result["sha256_expected"]


def test_tcp_serves_second_client_only_after_first_leaves(lab: TestLab, client1: Host) -> None:
    lab.host(TCP.host)
    result = client1.check("tcp_one_at_a_time", variant="tcp", wait=1.0)
    assert result["first_reply"] == TCP.transform(b"first").decode()
    assert result["second_reply_while_first_connected"] == ""
    assert result["second_reply_after_first_left"] == TCP.transform(b"second").decode()


def test_readiness_variants_are_the_select_and_epoll_loops() -> None:
    assert READINESS_VARIANTS == ["select", "epoll"]


@pytest.mark.parametrize("variant", READINESS_VARIANTS)
def test_readiness_server_serves_100_clients_from_one_thread(lab: TestLab, client1: Host,
                                                             variant: str) -> None:
    server = lab.host(VARIANTS[variant].host)
    result = client1.check("many_clients", variant=variant, count=100)
    assert (result["greeted"], result["correct"]) == (100, 100)
    threads = server.run("ps", "-o", "nlwp=", "-C", "python3")
    assert threads.stdout.split() == ["1"], threads


def test_udp_answers_one_ok_per_datagram(lab: TestLab, client1: Host) -> None:
    lab.host(UDP.host)
    result = client1.check("udp", variant="udp", count=50, size=512)
    assert result == {"sent": 50, "answered": 50,
                      "distinct_replies": [UDP.transform(b"").decode()]}


def test_exec_handshake_announces_zero_for_empty_output(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = client1.check("exec_handshake", variant="exec", framing="handshake",
                           command="true")
    assert (result["size"], result["received"], result["status"]) == (0, 0, 0)


def test_exec_handshake_delivers_one_megabyte_exactly(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    command = f"head -c {MB} /dev/zero | tr '\\0' a"
    result = client1.check("exec_handshake", variant="exec", framing="handshake",
                           command=command)
    assert result["size"] == result["received"] == MB
    assert result["sha256"] == hashlib.sha256(b"a" * MB).hexdigest()


def test_exec_commands_run_unprivileged(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = client1.check("exec_framed", variant="exec", framing="framed",
                           command="id -u; id -un")
    assert result["stdout"].split() == ["1001", "runner"]


def test_exec_naive_glues_replies_sent_back_to_back(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = client1.check("exec_naive", variant="exec", framing="naive",
                           commands=["echo one", "echo two"], pause=0.3)
    assert result["banner"] == EXEC.banner("naive").decode()
    assert result["chunks"][0] == "one\ntwo\n"  # two replies, one recv: glued


def test_exec_naive_splits_a_reply_longer_than_recv(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    expected = "".join(f"{n}\n" for n in range(1, 2001))
    result = client1.check("exec_naive", variant="exec", framing="naive",
                           commands=["seq 1 2000"], recv_size=1024)
    assert len(result["chunks"]) > 1 and len(result["chunks"][0]) <= 1024
    assert "".join(result["chunks"]) == expected


def test_exec_framed_keeps_status_stdout_stderr_apart(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = client1.check("exec_framed", variant="exec", framing="framed",
                           command="echo out; echo err >&2; exit 3")
    assert (result["exit_status"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")


@pytest.mark.parametrize("size", [0, 1, 50 * MB])
def test_ftp_put_stores_file_intact(lab: TestLab, client1: Host, size: int) -> None:
    server = lab.host(FTP.host)
    name = f"put-{size}.bin"
    result = client1.check("ftp_put", variant="ftp", filename=name, size=size, seed=size)
    assert result["banner"] == FTP.banner().decode().rstrip("\n")
    assert result["answer"]["status"] == 201
    stored = server.run("sha256sum", f"/srv/uploads/{name}")
    assert stored.stdout.split()[0] == result["sha256"]
    fetched = client1.check("ftp_get", variant="ftp", filename=name)
    assert (fetched["received"], fetched["sha256"]) == (size, result["sha256"])


TRAVERSAL_NAMES = ["../escape", "/etc/passwd", "a/b", "..", ".", "", "x" * 256, "nul\x00byte"]


def test_ftp_refuses_names_outside_uploads(lab: TestLab, client1: Host) -> None:
    server = lab.host(FTP.host)
    requests = [{"action": "put", "filename": n, "filesize": 1} for n in TRAVERSAL_NAMES]
    result = client1.check("ftp_requests", variant="ftp",
                           requests=[*requests, {"action": "list"}])
    statuses = [answer["status"] for answer in result["answers"]]
    assert all(400 <= status < 500 for status in statuses[:-1]), statuses
    assert statuses[-1] == 200  # the connection stayed usable
    assert server.run("ls", "-A", "/srv").stdout.split() == ["exec", "uploads"]
    assert server.run("test", "-e", "/escape").exit_code == 1


def test_ftp_unknown_action_gets_4xx_and_connection_stays(lab: TestLab, client1: Host) -> None:
    lab.host(FTP.host)
    result = client1.check("ftp_requests", variant="ftp",
                           requests=[{"action": "dance"}, "not json", {"action": "list"}])
    assert [a["status"] for a in result["answers"]] == [400, 400, 200]
