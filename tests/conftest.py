"""Shared pytest setup: one test run id for all workers, set before they start."""

from __future__ import annotations

import os
import time

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, before any worker exists
        os.environ.setdefault("SOCKLAB_TEST_RUN", time.strftime("%Y%m%d%H%M%S") +
                              f"-{os.getpid()}")
        os.environ.setdefault("SOCKLAB_TEST_OWNER_PID", str(os.getpid()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller sweeps the whole test run, whatever its workers left behind."""
    if hasattr(session.config, "workerinput") or "SOCKLAB_TEST_RUN" not in os.environ:
        return
    try:
        import docker

        from integration import harness

        harness.sweep(docker.from_env(), {harness.RUN_LABEL: os.environ["SOCKLAB_TEST_RUN"]})
    except Exception as error:  # a failed sweep must not mask the results
        print(f"socklab: sweeping test run failed: {error}")


# Figures a test measured, recorded with record_property("figures", line):
# gathered from every xdist worker and printed together at the end of the run.
# (Here, not in integration/conftest.py: the xdist controller never collects
# tests, so only this conftest, loaded at start-up, sees its reports.)
_FIGURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _FIGURES.extend(str(value) for key, value in report.user_properties if key == "figures")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("socklab figures")
        for line in sorted(_FIGURES):
            terminalreporter.write_line(line)
