"""Fixtures of the Ansible suite: fresh test VMs, one converge run, one idempotence run.

The suite is run by ``make test-ansible`` (which ``make test`` calls), or by
naming this directory: ``pytest tests/ansible``. A plain ``pytest`` over
``tests/`` (the integration run of ``make test``) leaves it out, so the VMs
are converged once, not once per xdist worker.

Every VM carries the test run's labels (``socklab.test-run``, the owner's
pid): the VM set is removed when the session ends, however it ends, and
``make test``'s sweep or a later run's orphan sweep removes what a killed run left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from ansible_run import Run, run_playbook
from remote import engine_client

from integration import harness
from socklab.host import build, vm_image, vms

HERE = Path(__file__).resolve().parent
# Three VMs: the play converges them in parallel and each gets its own lab; they
# form a swarm (one manager for the clients, two workers for the servers), and
# losing one worker still leaves the servers a VM apart from the clients.
VM_COUNT = int(os.environ.get("SOCKLAB_TEST_VMS", "3"))
# The playbook runs take minutes: pyproject's 300 s per test is not enough.
SUITE_TIMEOUT = 3600


def _named_here(arg: str) -> bool:
    path = Path(arg.split("::", 1)[0]).resolve()
    return path == HERE or HERE in path.parents


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this suite only when asked for: its directory or files named on the command line."""
    if HERE not in collection_path.parents:
        return None
    if os.environ.get("SOCKLAB_ANSIBLE_TESTS") == "1":
        return None
    return True if not any(_named_here(arg) for arg in config.args) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.timeout(SUITE_TIMEOUT))


@pytest.fixture(scope="session")
def vm_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vms.VmSet]:
    """Fresh test VMs for this run (removed at the end, also on failure)."""
    run_id = os.environ["SOCKLAB_TEST_RUN"]
    client = docker.from_env()
    harness.sweep_orphans(client)  # VMs of killed runs, whose owner is gone
    labels = {harness.RUN_LABEL: run_id,
              harness.OWNER_LABEL: os.environ.get("SOCKLAB_TEST_OWNER_PID", str(os.getpid()))}
    vmset = vms.VmSet(prefix=f"socklab-vmt-{run_id}", labels=labels,
                      state_dir=tmp_path_factory.mktemp("vms"))
    try:
        vms.up(vmset, VM_COUNT)
        yield vmset
    finally:
        vms.down(vmset)
        client.close()


@pytest.fixture(scope="session")
def vm_list(vm_set: vms.VmSet) -> list[vms.Vm]:
    return vms.running_vms(vm_set)


@pytest.fixture(scope="session")
def lab_tag() -> str:
    """The lab image tag of the checkout, as the first run builds and ships it."""
    return build.lab_tag()


# Two learners' stacks on the swarm (socklab_stacks): each a lab of its own.
STACKS_ARG = '{"socklab_stacks": ["socklab", "socklab-b"]}'


@pytest.fixture(scope="session")
def converge(vm_set: vms.VmSet, lab_tag: str) -> Run:
    """The first run of site.yml against the fresh VMs (it builds the image if needed)."""
    return run_playbook(vm_set.inventory, "-e", STACKS_ARG, log_name="converge.log")


@pytest.fixture(scope="session")
def converged(converge: Run) -> Run:
    """The first run, which must have succeeded for the checks that follow it."""
    if converge.returncode != 0:
        pytest.fail(f"site.yml failed on the fresh VMs:\n{converge.tail()}", pytrace=False)
    return converge


@pytest.fixture(scope="session")
def second_run(converged: Run, vm_set: vms.VmSet, lab_tag: str) -> Run:
    """site.yml again, on the converged VMs, with the image the first run shipped.

    Naming the tag keeps the run about the playbook: a commit to services/
    made meanwhile in this checkout (other work goes on beside a test run)
    would otherwise be built and shipped, a change the playbook rightly reports.
    """
    return run_playbook(vm_set.inventory, "-e", f"socklab_image_tag={lab_tag}",
                        "-e", STACKS_ARG, log_name="second-run.log")


@pytest.fixture(scope="session")
def ssh_home(vm_set: vms.VmSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose ~/.ssh holds the VMs' ssh_config and known hosts.

    The Docker SDK's ssh:// (paramiko) reads the key from ~/.ssh/config and
    the host keys from ~/.ssh/known_hosts, when a client is created.
    """
    home = tmp_path_factory.mktemp("home")
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "config").write_text(vm_set.ssh_config.read_text())
    (ssh_dir / "known_hosts").write_text(vm_set.known_hosts.read_text())
    return home



@pytest.fixture(scope="session")
def manager_url(converged: Run, vm_list: list[vms.Vm]) -> str:
    """The swarm manager's engine (vm-1), for the Docker SDK over ssh://."""
    return f"ssh://{vm_image.VM_USER}@{vm_list[0].address}"


@pytest.fixture(scope="session")
def manager(manager_url: str, ssh_home: Path) -> Iterator[docker.DockerClient]:
    """The Docker SDK on the swarm manager's engine."""
    client = engine_client(manager_url, ssh_home)
    yield client
    client.close()
