"""The Docker SDK on the test VMs' engines over ssh:// (paramiko)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest


def engine_client(url: str, home: Path) -> docker.DockerClient:
    """The Docker SDK on the engine at ``url`` (ssh://user@address), logged in from ``home``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("SSH_AUTH_SOCK", raising=False)
        return docker.DockerClient(base_url=url, use_ssh_client=False, timeout=60)
