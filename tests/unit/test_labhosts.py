"""labhosts: a service's health check run by hand until it passes (the bench's hosts)."""

from __future__ import annotations

from typing import Any

import pytest

from socklab.host import labhosts


@pytest.mark.parametrize(("test", "argv"), [
    (["CMD", "socklab-listening", "9000"], ["socklab-listening", "9000"]),
    (["CMD-SHELL", "nc -z localhost 9000"], ["/bin/sh", "-c", "nc -z localhost 9000"]),
    ("nc -z localhost 9000", ["/bin/sh", "-c", "nc -z localhost 9000"]),
    (["NONE"], None),
])
def test_check_command_of_each_compose_form(test: Any, argv: list[str] | None) -> None:
    assert labhosts.check_command({"healthcheck": {"test": test}}) == argv


def test_check_command_of_a_service_without_a_check() -> None:
    assert labhosts.check_command({}) is None


def test_every_lab_service_check_runs_by_hand() -> None:
    """The bench starts every service this way: each check is a command it can run."""
    for name, spec in labhosts.compose_services().items():
        if "healthcheck" in spec:
            argv = labhosts.check_command(spec)
            assert argv and argv[0] != "CMD", name


class FakeContainer:
    """Running from the start; its check fails ``failures`` times, then passes."""

    def __init__(self, statuses: list[str], failures: int) -> None:
        self.statuses = statuses
        self.failures = failures
        self.execs: list[list[str]] = []
        self.attrs: dict[str, Any] = {}

    def reload(self) -> None:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        self.attrs = {"State": {"Status": status, "ExitCode": 3 if status == "exited" else 0}}

    def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
        self.execs.append(argv)
        if self.failures:
            self.failures -= 1
            return 1, b""
        return 0, b""

    def logs(self) -> bytes:
        return b"Traceback: bind failed"


def test_wait_answering_runs_the_check_until_it_first_passes() -> None:
    container = FakeContainer(["created", "running"], failures=2)
    labhosts.wait_answering(container, "ftp-server", ["socklab-listening", "9000"], timeout=10)
    assert container.execs == [["socklab-listening", "9000"]] * 3  # not one more


def test_wait_answering_without_a_check_needs_only_running() -> None:
    container = FakeContainer(["running"], failures=0)
    labhosts.wait_answering(container, "client-1", None, timeout=10)
    assert container.execs == []


def test_wait_answering_raises_with_the_log_when_the_server_exits() -> None:
    container = FakeContainer(["running", "exited"], failures=5)
    with pytest.raises(RuntimeError, match=r"ftp-server exited \(3\):\nTraceback: bind failed"):
        labhosts.wait_answering(container, "ftp-server", ["socklab-listening", "9000"],
                                timeout=10)


def test_wait_answering_times_out_with_the_log() -> None:
    container = FakeContainer(["running"], failures=1000)
    with pytest.raises(TimeoutError, match="not answering its health check after 0 s"):
        labhosts.wait_answering(container, "ftp-server", ["false"], timeout=0.3)
