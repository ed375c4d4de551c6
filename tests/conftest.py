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
