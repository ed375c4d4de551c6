"""What every server does around its connections: the log lines and a clean stop."""

from __future__ import annotations

import pytest

from integration.harness import Host, TestLab, wait_until

SERVERS = ["tcp-server", "udp-server", "exec-server", "ftp-server", "select-server",
           "epoll-server", "twisted-server"]

CONNECT_CHECKS = {
    "tcp-server": ("echo", {"port": 9000}),
    "select-server": ("echo", {"port": 9000, "greeting": "hello"}),
    "epoll-server": ("echo", {"port": 9000, "greeting": "hello"}),
    "twisted-server": ("echo", {"port": 8000, "upper": False}),
    "exec-server": ("exec_framed", {"port": 9002, "command": "true"}),
    "ftp-server": ("ftp_requests", {"port": 9000, "requests": [{"action": "list"}]}),
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


@pytest.mark.parametrize("service", list(CONNECT_CHECKS))
def test_server_logs_accept_and_close_of_a_client(lab: TestLab, client1: Host,
                                                  service: str) -> None:
    server = lab.host(service)
    check, kwargs = CONNECT_CHECKS[service]
    client1.check(check, host=service, **kwargs)
    peer = client1.address()
    lines = wait_for_log(server, f" close peer={peer}:")
    assert any(f" accept peer={peer}:" in line for line in lines), server.logs()
    assert any(f" close peer={peer}:" in line for line in lines), server.logs()


@pytest.mark.parametrize("service", SERVERS)
def test_server_stops_cleanly_on_sigterm(lab: TestLab, client1: Host, service: str) -> None:
    alias = f"stop-{service}"
    server = lab.start(service, alias=alias)
    try:
        server.container.stop(timeout=STOP_GRACE_SECONDS)
        server.container.reload()
        state = server.container.attrs["State"]
        assert state["ExitCode"] == 0, f"exit {state['ExitCode']} (137 = killed):\n{server.logs()}"
        assert "stop" in server.logs().splitlines()[-1]
    finally:
        lab.remove(server)


IDLE_SECONDS = 1
IDLE_PORTS = {"tcp-server": 9000, "select-server": 9000, "epoll-server": 9000,
              "twisted-server": 8000, "ftp-server": 9000, "exec-server": 9002}


@pytest.mark.parametrize("service", list(IDLE_PORTS))
def test_server_drops_a_silent_client_and_serves_the_next(lab: TestLab, client1: Host,
                                                          service: str) -> None:
    alias = f"idle-{service}"
    command = [*lab.services[service]["command"], "--idle-timeout", str(IDLE_SECONDS)]
    server = lab.start(service, alias=alias, command=command)
    try:
        silent = client1.check("silent_client", host=alias, port=IDLE_PORTS[service], wait=15)
        assert silent["closed_after"] is not None, "the server never hung up"
        assert IDLE_SECONDS <= silent["closed_after"] < IDLE_SECONDS + 5
        assert any("reason=idle-timeout" in line for line in wait_for_log(server, "idle-timeout"))
        check, kwargs = CONNECT_CHECKS[service]
        client1.check(check, host=alias, **kwargs)  # and the next client is served
    finally:
        lab.remove(server)


def test_ftp_stalled_upload_times_out_and_leaves_nothing(lab: TestLab, client1: Host) -> None:
    command = [*lab.services["ftp-server"]["command"], "--idle-timeout", str(IDLE_SECONDS)]
    server = lab.start("ftp-server", alias="idle-ftp-upload", command=command)
    try:
        stalled = client1.check("ftp_stalled_put", host="idle-ftp-upload", port=9000,
                                filename="stalled.bin", size=1_000_000, send=1000)
        assert stalled["answer"]["status"] == 200  # the upload had begun...
        assert stalled["closed_after"] is not None  # ...then the server gave up on it
        wait_for_log(server, "idle-timeout")
        assert server.run("ls", "-A", "/srv/uploads").stdout == ""  # no file, no partial
    finally:
        lab.remove(server)
