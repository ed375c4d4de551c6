"""The lab's lifecycle with each Compose tool: ``make up``, ``ps`` and ``down`` with ``LAB=``.

Compose v1 (``docker-compose``) is what Debian 12 ships; v2 (``docker
compose``, a Docker CLI plugin) is what most users have. ``.ci/compose-v2``
puts v2 in ``.tools/docker-config/cli-plugins/`` from Debian's next release,
used through ``DOCKER_CONFIG`` so that a user's own Docker setup is left
alone. Each test runs make as a user would, with ``COMPOSE=`` naming the
tool, and checks which tool made the containers (the label Compose writes
on them), that a client host reaches a server, and what ``make down``
leaves: nothing but the lab's uploads volume. Where a tool is missing the
test is skipped, unless ``SOCKLAB_COMPOSE_TOOLS=both`` (``.ci/run``) says
both must be there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from integration import harness
from socklab.registry import CLIENTS, VARIANTS

pytestmark = pytest.mark.integration

V2_CONFIG = Path(os.environ.get("SOCKLAB_COMPOSE_V2_CONFIG",
                                harness.ROOT / ".tools" / "docker-config"))
TOOLS = {"v1": ("docker-compose", {}), "v2": ("docker compose",
                                              {"DOCKER_CONFIG": str(V2_CONFIG)})}
VERSION_LABEL = "com.docker.compose.version"


def tool_env(tool: str, image: str) -> dict[str, str]:
    command, extra = TOOLS[tool]
    return {**os.environ, **extra, "COMPOSE": command, "SOCKLAB_IMAGE": image}


def available(tool: str, image: str) -> bool:
    command, _ = TOOLS[tool]
    found = subprocess.run([*command.split(), "version"], capture_output=True,
                           env=tool_env(tool, image), check=False)
    return found.returncode == 0


def make(target: str, lab: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-C", str(harness.ROOT), target,
                           f"LAB={lab}"], capture_output=True, text=True, env=env,
                          timeout=600, check=False)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_make_up_ps_down_with_each_compose_tool(tool: str, lab_image: str,
                                                docker_client: docker.DockerClient) -> None:
    if not available(tool, lab_image):
        message = f"Compose {tool} ({TOOLS[tool][0]}) is not installed"
        if os.environ.get("SOCKLAB_COMPOSE_TOOLS") == "both":
            pytest.fail(f"{message}, and SOCKLAB_COMPOSE_TOOLS=both: .ci/compose-v2 puts "
                        f"v2 in {V2_CONFIG}", pytrace=False)
        pytest.skip(message)
    lab = f"c{tool}-{os.getpid()}"
    project = f"socklab-{lab}"
    env = tool_env(tool, lab_image)
    selector = {"label": f"com.docker.compose.project={project}"}
    try:
        up = make("up", lab, env)
        assert up.returncode == 0, up.stderr + up.stdout
        assert f"({TOOLS[tool][0]})" in up.stderr  # make up says which tool it started with
        made = docker_client.containers.list(filters=selector)
        versions = {c.labels.get(VERSION_LABEL, "") for c in made}
        assert len(made) == 9 and {v.split(".")[0] for v in versions} == {tool[1]}, versions

        ps = make("ps", lab, env)
        assert ps.returncode == 0, ps.stderr
        assert VARIANTS["tcp"].host in ps.stdout and CLIENTS[0] in ps.stdout

        client = next(c for c in made if c.labels["com.docker.compose.service"] == CLIENTS[0])
        check = client.exec_run(["python3", "-m", "socklab.clients.scripted", "echo",
                                 json.dumps({"variant": "tcp"})])
        assert check.exit_code == 0 and json.loads(check.output)["intact"], check.output

        down = make("down", lab, env)
        assert down.returncode == 0, down.stderr
        assert docker_client.containers.list(all=True, filters=selector) == []
        volumes = [v.name for v in docker_client.volumes.list(filters=selector)]
        assert volumes == [f"{project}_uploads"], volumes  # make down keeps the uploads
    finally:
        subprocess.run([sys.executable, "-m", "socklab.host.hostctl", "remove", "--project",
                        project], env={**env, "PYTHONPATH": str(harness.ROOT / "services")},
                       capture_output=True, timeout=120, check=False)
