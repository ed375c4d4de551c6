"""Fixtures of the integration suite: the Docker client, the image, a lab per worker."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import docker
import pytest

from integration import harness
from integration.evidence import Evidence

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(f"the Docker engine is not reachable: {error}", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def lab_image(docker_client: docker.DockerClient) -> str:
    image = os.environ.get("SOCKLAB_IMAGE")
    if os.environ.get("SOCKLAB_SWARM"):
        return image or ""  # the stack's image, which every node has
    if image:
        return image
    from socklab.host.build import ensure_images

    # pytest run without make: workers build one at a time, the later ones find it built.
    with open(harness.ROOT / ".image-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return ensure_images(harness.ROOT)


@pytest.fixture(scope="session")
def lab(docker_client: docker.DockerClient, lab_image: str,
        worker_id: str) -> Iterator[harness.TestLab]:
    run_id = os.environ["SOCKLAB_TEST_RUN"]
    swarm = os.environ.get("SOCKLAB_SWARM")
    if swarm:  # a deployed stack (harness.SwarmLab): its own tasks, spares beside them
        test_lab: harness.TestLab = harness.SwarmLab(
            swarm, os.environ.get("SOCKLAB_STACK", "socklab"), run_id, worker_id)
    else:
        if worker_id in ("master", "gw0"):
            harness.sweep_orphans(docker_client)
        test_lab = harness.TestLab(docker_client, lab_image, run_id, worker_id)
    try:
        yield test_lab
    finally:
        test_lab.close()


@pytest.fixture(scope="session")
def client1(lab: harness.TestLab) -> harness.Host:
    return lab.host("client-1")



@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Iterator[Evidence]:
    collector = Evidence(request.node.name)
    yield collector
    collector.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failed scenario, save the evidence and name the files in the report."""
    outcome = yield
    report = outcome.get_result()
    collector = getattr(item, "funcargs", {}).get("evidence")
    if report.when == "call" and report.failed and collector is not None:
        files = collector.collect()
        listing = "\n".join(f"  {path.relative_to(harness.ROOT)}" for path in files)
        report.sections.append(("socklab evidence", f"evidence saved:\n{listing}"))
        report.longrepr = f"{report.longrepr}\n\nevidence saved:\n{listing}"

