"""What every server does around its connections: the log lines and a clean stop."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from integration.harness import Host, TestLab, wait_until
from socklab.registry import ECHO_VARIANTS, VARIANTS

# The variants with connections to log and to drop (udp has none).
TCP_VARIANTS = [name for name, variant in VARIANTS.items() if variant.transport == "tcp"]

# One exchange with each TCP variant, on its main port or the one named here.
CONNECT_CHECKS = {
    **{name: ("echo", {}) for name in ECHO_VARIANTS},
    "exec": ("exec_framed", {"framing": "framed", "command": "true"}),
    "ftp": ("ftp_requests", {"requests": [{"action": "list"}]}),
}

# docker stop sends SIGTERM, waits this long, then SIGKILL (exit status 137).
STOP_GRACE_SECONDS = 2


def wait_for_log(server: Host, text: str, timeout: float = 10) -> list[str]:
    """The server's log lines once one contains ``text`` (or the timeout passed).

    A server logs a close after it has closed, so the client may be done a
    moment before the line is written.
    """
    wait_until(lambda: text in server.logs(), timeout)
    return server.logs().splitlines()


@pytest.mark.parametrize("variant", TCP_VARIANTS)
def test_server_logs_accept_and_close_of_a_client(lab: TestLab, client1: Host,
                                                  variant: str) -> None:
    server = lab.host(VARIANTS[variant].host)
    check, kwargs = CONNECT_CHECKS[variant]
    client1.check(check, variant=variant, **kwargs)
    peer = client1.address()
    lines = wait_for_log(server, f" close peer={peer}:")
    assert any(f" accept peer={peer}:" in line for line in lines), server.logs()
    assert any(f" close peer={peer}:" in line for line in lines), server.logs()


# What a client is doing when the server is told to stop: holding a quiet
# connection open, or (exec) waiting for a command that would run for 20 s.
BUSY_CLIENTS = {
    **{name: ("silent_client", {"wait": 15}) for name in ECHO_VARIANTS},
    "ftp": ("ftp_stalled_put", {"filename": "cut.bin", "size": 10_000, "send": 100}),
    "exec": ("exec_framed", {"framing": "framed", "command": "sleep 20"}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_server_stops_cleanly_on_sigterm(lab: TestLab, client1: Host, variant: str) -> None:
    """SIGTERM with a client connected: closed, and exit 0 within the grace period.

    ``docker stop`` sends SIGTERM and kills with SIGKILL (exit 137) after
    STOP_GRACE_SECONDS, so exit status 0 proves the server stopped in time.
    """
    service = VARIANTS[variant].host
    alias = f"stop-{service}"
    server = lab.start(service, alias=alias)
    try:
        busy = None
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            if variant in BUSY_CLIENTS:
                check, kwargs = BUSY_CLIENTS[variant]
                busy = pool.submit(_tolerant_check, client1, check, variant=variant,
                                   host=alias, **kwargs)
                assert wait_until(lambda: " accept peer=" in server.logs(), 10), server.logs()
                time.sleep(0.5)  # the client is now mid-conversation
            server.container.stop(timeout=STOP_GRACE_SECONDS)
            server.container.reload()
            state = server.container.attrs["State"]
            assert state["ExitCode"] == 0, \
                f"exit {state['ExitCode']} (137 = killed):\n{server.logs()}"
            lines = server.logs().splitlines()
            assert any(f" {service} stop" in line for line in lines), lines
            if busy is not None:  # the client was let go, not left hanging
                outcome = busy.result(timeout=60)
                assert isinstance(outcome, str) or outcome.get("closed_after", 0) is not None, \
                    (outcome, lines)
        if variant == "ftp":
            lab.remove(server)  # the cut upload left no file and no partial on the volume
            server = lab.start(service, alias=alias)
            assert server.run("ls", "-A", "/srv/uploads").stdout == ""
    finally:
        lab.remove(server)


def _tolerant_check(client: Host, name: str, **kwargs: object) -> dict[str, object] | str:
    """A check whose server is stopped under it: its result, or how it failed."""
    try:
        return client.check(name, **kwargs)
    except AssertionError as error:  # e.g. the exec reply never came: the server is gone
        return str(error)


IDLE_SECONDS = 1


@pytest.mark.parametrize("variant", TCP_VARIANTS)
def test_server_drops_a_silent_client_and_serves_the_next(lab: TestLab, client1: Host,
                                                          variant: str) -> None:
    service = VARIANTS[variant].host
    alias = f"idle-{service}"
    command = [*lab.services[service]["command"], "--idle-timeout", str(IDLE_SECONDS)]
    server = lab.start(service, alias=alias, command=command)
    check, kwargs = CONNECT_CHECKS[variant]
    framing = kwargs.get("framing", VARIANTS[variant].framing)
    try:
        silent = client1.check("silent_client", variant=variant, framing=framing, host=alias,
                               wait=15)
        assert silent["closed_after"] is not None, "the server never hung up"
        assert IDLE_SECONDS <= silent["closed_after"] < IDLE_SECONDS + 5
        assert any("reason=idle-timeout" in line for line in wait_for_log(server, "idle-timeout"))
        client1.check(check, variant=variant, host=alias, **kwargs)  # and the next is served
    finally:
        lab.remove(server)


def test_ftp_stalled_upload_times_out_and_leaves_nothing(lab: TestLab, client1: Host) -> None:
    ftp = VARIANTS["ftp"].host
    command = [*lab.services[ftp]["command"], "--idle-timeout", str(IDLE_SECONDS)]
    server = lab.start(ftp, alias="idle-ftp-upload", command=command)
    try:
        stalled = client1.check("ftp_stalled_put", variant="ftp", host="idle-ftp-upload",
                                filename="stalled.bin", size=1_000_000, send=1000)
        assert stalled["answer"]["status"] == 200  # the upload had begun...
        assert stalled["closed_after"] is not None  # ...then the server gave up on it
        wait_for_log(server, "idle-timeout")
        assert server.run("ls", "-A", "/srv/uploads").stdout == ""  # no file, no partial
    finally:
        lab.remove(server)
