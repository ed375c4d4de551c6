"""The exec server hardened: unprivileged, time-limited, capped, bounded, and behind a token.

Commands run as uid 1001 on every port; the time limit kills a command's
whole process group; no zombie is left; a cut-short output says so on the
handshake and framed ports; with SOCKLAB_EXEC_TOKEN set, those two want a
proof of the token that never crosses the wire and the naive port is not
opened; big outputs, many at once or never read, keep the server's memory
bounded and it is never OOM-killed. The scripted clients are in
``socklab.clients.scripted_exec``; ports and caps come from socklab.registry.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from integration.harness import Host, TestLab, compose_services, wait_until
from socklab.registry import CLIENTS, VARIANTS

MODULE = "socklab.clients.scripted_exec"
EXEC = VARIANTS["exec"]
OUTPUT_CAP = EXEC.caps["output"]
MAX_COMMANDS = EXEC.caps["commands"]
MB = 1 << 20

# How long a test waits for a server-side effect before it fails.
EFFECT_TIMEOUT = 60

# More than the output cap.
BIG_OUTPUT = "yes | head -c 40000000"


def exec_command(*extra: str) -> list[str]:
    """The lab's exec server command line with ``extra`` options added."""
    return [*compose_services()[EXEC.host]["command"], *extra]


# The exec port each check of scripted_exec talks to; session and token_attempt
# talk to their mode's.
CHECK_FRAMINGS = {"naive": "naive", "handshake_raw": "handshake", "framed": "framed",
                  "concurrent_framed": "framed", "never_read": "framed"}


def on_exec(client: Host, check: str, host: str = EXEC.host, framing: str = "",
            **kwargs: Any) -> dict[str, Any]:
    """Run ``check`` of scripted_exec on ``client`` against ``host`` (a copy of the exec server)."""
    framing = framing or kwargs.get("mode") or CHECK_FRAMINGS[check]
    return client.check(check, module=MODULE, variant="exec", framing=framing, host=host,
                        **kwargs)


def state(host: Host) -> tuple[str, bool, int]:
    """The container's (status, OOMKilled, RestartCount), as Docker saw them."""
    host.container.reload()
    attrs = host.container.attrs
    return attrs["State"]["Status"], attrs["State"]["OOMKilled"], attrs["RestartCount"]


def runner_processes(server: Host) -> list[str]:
    """The processes of uid runner in the server container (``ps`` lines)."""
    return server.run("ps", "-o", "pid=,stat=,args=", "-u", "runner").stdout.splitlines()


def zombies(server: Host) -> list[str]:
    """Every process in state Z in the server container, from /proc."""
    script = ("for f in /proc/[0-9]*/stat; do read -r line < $f 2>/dev/null || continue; "
              "s=${line##*) }; [ \"${s%% *}\" = Z ] && echo \"$line\"; done; true")
    return server.run("sh", "-c", script).stdout.splitlines()


def put_file(host: Host, path: str, text: str) -> None:
    """Write ``text`` to ``path`` on ``host`` through the Docker API: no argv shows it."""
    directory, name = path.rsplit("/", 1)
    data = text.encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        tar.addfile(info, io.BytesIO(data))
    assert host.container.put_archive(directory, archive.getvalue())


def get_file(host: Host, path: str) -> bytes:
    stream, _ = host.container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        return member.read() if member else b""


# --- unprivileged, on every port ------------------------------------------------------


def test_exec_commands_run_as_runner_on_every_port(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    naive = on_exec(client1, "naive", command="id -u")
    handshake = on_exec(client1, "handshake_raw", command="id -u")
    framed = on_exec(client1, "framed", command="id -u; id -G")
    assert naive["reply"] == handshake["output"] == "1001\n"
    assert framed["stdout"].split() == ["1001", "1001"]  # no root group either


# --- time limit, process groups, zombies -----------------------------------------------


@pytest.fixture(scope="module")
def short_server(lab: TestLab) -> Iterator[Host]:
    """An exec server whose commands get 2 s."""
    server = lab.start(EXEC.host, alias="exec-short", command=exec_command("--timeout", "2"))
    yield server
    lab.remove(server)


@pytest.mark.parametrize("mode", ["framed", "handshake"])
def test_exec_time_limit_kills_the_whole_process_group(
        client1: Host, short_server: Host, mode: str) -> None:
    command = "sleep 100 & sleep 100 & echo started; sleep 100"
    if mode == "framed":
        result = on_exec(client1, "framed", host="exec-short", command=command)
        assert (result["exit_status"], result["timed_out"], result["stdout"]) == (
            -9, True, "started\n")
    else:
        result = on_exec(client1, "handshake_raw", host="exec-short", command=command)
        assert result["header"] == "Ready|8|-9|timed-out" and result["output"] == "started\n"
    # Both background sleeps were in the command's group: nothing of runner is left.
    assert wait_until(lambda: runner_processes(short_server) == [], EFFECT_TIMEOUT), \
        runner_processes(short_server)


def test_exec_leaves_no_zombie_after_many_commands(lab: TestLab, client1: Host) -> None:
    server = lab.host(EXEC.host)
    commands = ["true", "sleep 0.2 &", "sh -c 'sleep 0.1 &' ; echo x", "exit 3",
                "(sleep 0.1 &) ; false"] * 6
    for mode in ("handshake", "framed"):
        result = on_exec(client1, "session", mode=mode, commands=commands)
        assert len(result["outputs"]) == len(commands)
    # Orphans of killed groups go to tini, which reaps them; the server waits for its own.
    assert wait_until(lambda: zombies(server) == [] and runner_processes(server) == [],
                      EFFECT_TIMEOUT), (zombies(server), runner_processes(server))


# --- truncation reported ---------------------------------------------------------------


def test_exec_truncation_reported_on_the_framed_port(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = on_exec(client1, "framed", command=BIG_OUTPUT)
    assert (result["truncated"], result["timed_out"], result["exit_status"]) == (True, False, -9)
    assert result["stdout_bytes"] == OUTPUT_CAP and result["stderr_bytes"] == 0


def test_exec_truncation_reported_on_the_handshake_port(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = on_exec(client1, "handshake_raw", command=BIG_OUTPUT)
    assert result["header"] == f"Ready|{OUTPUT_CAP}|-9|truncated"
    assert result["received"] == OUTPUT_CAP and result["flags"] == ["truncated"]
    # What was sent is the start of the output, whole: yes prints "y\n" lines.
    assert result["output"] == "y\n" * 2048


def test_exec_cap_counts_stdout_and_stderr_together(lab: TestLab, client1: Host) -> None:
    lab.host(EXEC.host)
    result = on_exec(client1, "framed", command="yes out & yes err >&2; wait")
    assert result["truncated"] and result["stdout_bytes"] + result["stderr_bytes"] == OUTPUT_CAP


# --- the token ---------------------------------------------------------------------------

TOKEN = secrets.token_hex(16)
TOKEN_FILE = "/root/exec-token"
WRONG_TOKEN_FILE = "/root/wrong-exec-token"


@pytest.fixture(scope="module")
def token_lab(lab: TestLab) -> Iterator[tuple[Host, Host]]:
    """(server, client): an exec server with a token, and a client host holding it in a file."""
    server, client = lab.start(EXEC.host, alias="exec-token",
                               environment={"SOCKLAB_EXEC_TOKEN": TOKEN}), \
        lab.start(CLIENTS[0], alias="client-token")
    put_file(client, TOKEN_FILE, TOKEN + "\n")
    put_file(client, WRONG_TOKEN_FILE, secrets.token_hex(16) + "\n")
    yield server, client
    lab.remove(client)
    lab.remove(server)


def marker_exists(server: Host, name: str) -> bool:
    return server.run("test", "-e", f"/srv/exec/{name}").exit_code == 0


@pytest.mark.parametrize("mode", ["handshake", "framed"])
def test_exec_token_right_proof_runs_commands(token_lab: tuple[Host, Host], mode: str) -> None:
    server, client = token_lab
    result = on_exec(client, "session", host="exec-token",
                     mode=mode, commands=["id -u", f"touch marker-right-{mode}"],
                     token_file=TOKEN_FILE)
    assert result["outputs"][0] == "1001\n"
    assert marker_exists(server, f"marker-right-{mode}")


@pytest.mark.parametrize("mode", ["handshake", "framed"])
@pytest.mark.parametrize("proof", ["wrong-token", "no-proof"])
def test_exec_token_refusal_is_clear_and_runs_nothing(token_lab: tuple[Host, Host], mode: str,
                                                      proof: str) -> None:
    server, client = token_lab
    marker = f"marker-{proof}-{mode}"
    result = on_exec(client, "token_attempt", host="exec-token",
                     mode=mode, command=f"touch {marker}",
                     token_file=WRONG_TOKEN_FILE if proof == "wrong-token" else None)
    verdicts = [m for m in result["messages"] if "denied" in m]
    assert result["closed_by_server"] and len(verdicts) == 1, result
    reason = ("the proof does not match the server's token" if proof == "wrong-token"
              else "expected Proof|" if mode == "handshake" else 'expected {"proof"')
    assert reason in (verdicts[0] if mode == "handshake" else json.loads(verdicts[0])["error"])
    assert not marker_exists(server, marker)  # the command sent with (or as) the proof


def test_exec_token_closes_the_naive_port(token_lab: tuple[Host, Host]) -> None:
    server, client = token_lab
    assert on_exec(client, "connect", framing="naive", host="exec-token") == {
        "connected": False, "error": "ECONNREFUSED"}
    assert on_exec(client, "connect", framing="framed", host="exec-token")["connected"]
    assert f"{EXEC.port('naive')} (naive) is not opened" in server.logs()


def test_exec_token_never_crosses_the_wire(token_lab: tuple[Host, Host]) -> None:
    _, client = token_lab
    capture = "/tmp/exec-token.pcap"
    client.container.exec_run(
        # --immediate-mode: without it the kernel hands packets over in blocks, and
        # those of the last second are lost when tcpdump is stopped. A ring slot is
        # snaplen bytes: with -s 0 (256 KiB) a 2 MiB ring holds 8 packets and drops
        # under load; 2 KiB holds any packet here (MTU 1500) and the ring thousands.
        ["sh", "-c", f"echo $$ > {capture}.pid; exec tcpdump -i any --immediate-mode -U "
                     f"-s 2048 -B 8192 -w {capture} "
                     f"tcp port {EXEC.port('handshake')} or tcp port {EXEC.port('framed')} "
                     f"2> {capture}.log"], detach=True, user="root")
    assert wait_until(lambda: "listening on" in client.read(f"{capture}.log"), EFFECT_TIMEOUT)
    for mode in ("handshake", "framed"):
        on_exec(client, "session", host="exec-token", mode=mode,
                commands=[f"echo capture-{mode}"], token_file=TOKEN_FILE)
    client.run("sh", "-c", f"kill -INT $(cat {capture}.pid)", user="root")
    assert wait_until(lambda: client.run("pgrep", "-x", "tcpdump").exit_code != 0,
                      EFFECT_TIMEOUT)
    packets = get_file(client, capture)
    tcpdump_said = client.read(f"{capture}.log")  # counts of captured and dropped packets
    # The capture saw both exchanges, proofs included...
    assert b"echo capture-handshake" in packets and b"capture-framed" in packets, tcpdump_said
    assert b"Proof|" in packets and b'{"proof": "' in packets
    # ...and the token in no form.
    assert TOKEN.encode() not in packets and TOKEN.encode().hex().encode() not in packets


def test_exec_token_is_not_visible_to_commands(token_lab: tuple[Host, Host]) -> None:
    _, client = token_lab
    result = on_exec(client, "framed", host="exec-token",
                     command="env; cat /proc/[0-9]*/environ", token_file=TOKEN_FILE)
    assert "PATH=" in result["stdout"]  # the command did print environments
    assert TOKEN not in result["stdout"] + result["stderr"]


def test_exec_short_token_refused_at_start(lab: TestLab) -> None:
    with pytest.raises(RuntimeError, match=r"exited \(1\)[\s\S]*use at least 16"):
        lab.start(EXEC.host, alias="exec-short-token",
                  environment={"SOCKLAB_EXEC_TOKEN": "only-8-b"})


# --- memory: many big outputs, an unread one, a greedy command --------------------------


# What the server may hold: MAX_COMMANDS outputs at the cap, each with the
# eighth a growing buffer over-allocates, plus the server itself (about 25 MiB
# idle) and room for the socket buffers' share. The lab gives it 256 MiB.
MEMORY_BOUND = MAX_COMMANDS * OUTPUT_CAP * 9 // 8 + 64 * MB


def assert_alive_and_serving(server: Host, client: Host, alias: str, pid: int) -> None:
    assert state(server) == ("running", False, 0)
    assert server.resources()["server_pid"] == pid  # the same server process, never restarted
    after = on_exec(client, "framed", host=alias, command="echo alive")
    assert after["stdout"] == "alive\n"


def test_exec_concurrent_big_outputs_keep_memory_bounded(lab: TestLab, client1: Host) -> None:
    server = lab.start(EXEC.host, alias="exec-mem")
    pid = server.resources()["server_pid"]
    result = on_exec(client1, "concurrent_framed", host="exec-mem",
                     command=BIG_OUTPUT, clients=MAX_COMMANDS + 1)
    used = server.resources()
    print(f"{MAX_COMMANDS + 1} clients x {BIG_OUTPUT}: {used}; replies {result['replies']}")
    served = [r for r in result["replies"] if r.get("stdout_bytes") == OUTPUT_CAP]
    busy = [r for r in result["replies"] if r.get("busy")]
    assert len(served) + len(busy) == MAX_COMMANDS + 1, result
    assert len(served) >= MAX_COMMANDS and all(r["truncated"] for r in served)
    assert all(r["error"].startswith("server busy") for r in busy)
    assert used["server_hwm"] < MEMORY_BOUND, used
    assert used["limit_hits"] == 0, used  # the container never even reached its limit
    assert_alive_and_serving(server, client1, "exec-mem", pid)
    lab.remove(server)


def test_exec_never_reading_client_is_dropped_and_frees_its_slot(
        lab: TestLab, client1: Host) -> None:
    # One slot, so the second client must wait for the silent one to be dropped.
    server = lab.start(EXEC.host, alias="exec-idle", command=exec_command(
        "--idle-timeout", "3", "--max-commands", "1", "--slot-wait", "120"))
    pid = server.resources()["server_pid"]
    result = on_exec(client1, "never_read", host="exec-idle",
                     command=f"head -c {OUTPUT_CAP} /dev/zero", then="echo served")
    used = server.resources()
    print(f"never-reading client: {result}; memory {used}")
    assert result["server_was_sending"]  # the silent client's command held the slot...
    assert result["other"]["stdout"] == "served\n"  # ...until it was dropped: the slot came back
    assert not result["other"].get("busy")
    assert result["closed_by_server"] and result["unread_reply_received"] < OUTPUT_CAP
    dropped = [line for line in server.logs().splitlines() if "reason=idle-timeout" in line]
    assert len(dropped) == 1, server.logs()
    assert int(dropped[0].rsplit("bytes_out=", 1)[1]) < OUTPUT_CAP
    assert used["server_hwm"] < MEMORY_BOUND and used["limit_hits"] == 0, used
    assert_alive_and_serving(server, client1, "exec-idle", pid)
    lab.remove(server)


def test_exec_greedy_command_is_killed_not_the_server(lab: TestLab, client1: Host) -> None:
    server = lab.start(EXEC.host, alias="exec-oom")
    pid = server.resources()["server_pid"]
    started = time.monotonic()
    result = on_exec(client1, "framed", host="exec-oom",
                     command="python3 -c 'x = b\"x\" * (512 << 20); print(len(x))'")
    print(f"greedy command after {time.monotonic() - started:.1f}s: {result}")
    # The OOM killer took it (SIGKILL: -9 for the shell, 137 when the shell reports its child).
    assert result["exit_status"] in (-9, 128 + 9) and result["stdout"] == ""
    assert state(server)[0::2] == ("running", 0)  # OOMKilled is set: a command was killed
    assert server.resources()["server_pid"] == pid
    after = on_exec(client1, "framed", host="exec-oom", command="echo alive")
    assert after["stdout"] == "alive\n"
    lab.remove(server)
