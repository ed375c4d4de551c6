"""What site.yml left on each VM, measured from the control node.

Over SSH with paramiko, as the lab user: the kernel settings live in
/proc/sys, the login's open-files limit, and a client container reaching every
server's port. With the Docker SDK over ssh:// (paramiko): the lab's
containers are up and healthy, on a network from the engine's address pool.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import paramiko
import pytest
import yaml
from ansible_run import ANSIBLE_DIR, ROOT, Run
from remote import engine_client

from integration.harness import wait_until
from socklab.host import vm_image, vms
from socklab.registry import CLIENTS, ECHO_VARIANTS, VARIANTS

PROJECT = "socklab"  # the socklab role's socklab_project
CLIENT = CLIENTS[0]
SSH_TIMEOUT = 30.0
HEALTH_WAIT = 180.0  # health checks flap under a loaded machine's 2 s timeouts


def role_defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml").read_text())


class Shell:
    """One SSH session to a VM as the lab user (paramiko, key only, known host key)."""

    def __init__(self, vm_set: vms.VmSet, vm: vms.Vm) -> None:
        self.vm = vm
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(str(vm_set.known_hosts))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(vm.address, username=vm_image.VM_USER, key_filename=str(vm_set.key),
                            look_for_keys=False, allow_agent=False, timeout=SSH_TIMEOUT)

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
        out, err = stdout.read().decode(), stderr.read().decode()
        return stdout.channel.recv_exit_status(), out, err

    def check(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """A scripted client check run in the lab's client container (docker, no sudo)."""
        container = self.lab_container(CLIENT)
        command = shlex.join(["docker", "exec", container, "python3", "-m",
                              "socklab.clients.scripted", name, json.dumps(kwargs)])
        status, out, err = self.run(command)
        assert status == 0, f"{name} {kwargs} on {self.vm.name}: {status}\n{err}{out}"
        return json.loads(out)

    def lab_container(self, service: str) -> str:
        command = shlex.join(["docker", "ps", "-q", "--filter",
                              f"label=com.docker.compose.project={PROJECT}", "--filter",
                              f"label=com.docker.compose.service={service}"])
        status, out, err = self.run(command)
        assert status == 0 and out.strip(), f"no {service} on {self.vm.name}: {err}"
        return out.split()[0]


@pytest.fixture(scope="session")
def shells(converged: Run, vm_set: vms.VmSet,
           vm_list: list[vms.Vm]) -> Iterator[list[Shell]]:
    opened = [Shell(vm_set, vm) for vm in vm_list]
    yield opened
    for shell in opened:
        shell.client.close()


def test_sysctls_are_live_in_proc_sys(shells: list[Shell]) -> None:
    wanted = role_defaults("host_tuning")["host_tuning_sysctls"]
    for shell in shells:
        for key, value in wanted.items():
            status, out, err = shell.run(f"cat /proc/sys/{key.replace('.', '/')}")
            assert status == 0, err
            assert out.split() == str(value).split(), (shell.vm.name, key, out)


def test_sysctls_are_written_under_sysctl_d(shells: list[Shell]) -> None:
    defaults = role_defaults("host_tuning")
    for shell in shells:
        status, out, err = shell.run(f"cat {defaults['host_tuning_sysctl_file']}")
        assert status == 0, err
        written = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        written = {key.strip(): value.split() for key, value in written.items()}
        assert written == {key: str(value).split()
                           for key, value in defaults["host_tuning_sysctls"].items()}


def test_a_login_gets_the_open_files_limit(shells: list[Shell]) -> None:
    wanted = role_defaults("host_tuning")["host_tuning_nofile"]
    for shell in shells:
        _, limits, _ = shell.run("cat /proc/1/limits")
        ceiling = next(line.split()[4] for line in limits.splitlines()
                       if line.startswith("Max open files"))
        expected = wanted if ceiling == "unlimited" else min(wanted, int(ceiling))
        status, out, err = shell.run("ulimit -Sn; ulimit -Hn")
        assert status == 0, err
        assert out.split() == [str(expected)] * 2, (shell.vm.name, out)


def _echo(variant: str) -> Callable[[Shell], None]:
    def check(shell: Shell) -> None:
        result = shell.check("echo", variant=variant, size=4096)
        assert result["greeting"] == VARIANTS[variant].greeting.decode()
        assert result["received"] == 4096 and result["intact"], result
    return check


def _udp(shell: Shell) -> None:
    result = shell.check("udp", variant="udp", count=10, size=64)
    answer = VARIANTS["udp"].transform(b"").decode()
    assert result == {"sent": 10, "answered": 10, "distinct_replies": [answer]}


def _exec_naive(shell: Shell) -> None:
    result = shell.check("exec_naive", variant="exec", framing="naive",
                         commands=["echo one", "echo two"])
    assert "".join(result["chunks"]) == "one\ntwo\n", result


def _exec_handshake(shell: Shell) -> None:
    result = shell.check("exec_handshake", variant="exec", framing="handshake",
                         command="echo hi")
    assert (result["status"], result["size"], result["text"]) == (0, 3, "hi\n"), result


def _exec_framed(shell: Shell) -> None:
    result = shell.check("exec_framed", variant="exec", framing="framed",
                         command="id -un; echo err >&2; exit 3")
    assert (result["exit_status"], result["stdout"], result["stderr"]) == (3, "runner\n",
                                                                          "err\n")


def _ftp(shell: Shell) -> None:
    name = f"verify-{shell.vm.name}.bin"
    put = shell.check("ftp_put", variant="ftp", filename=name, size=100_000)
    assert put["answer"]["status"] in (201, 409), put  # 409: a rerun finds it stored
    got = shell.check("ftp_get", variant="ftp", filename=name)
    assert (got["received"], got["sha256"]) == (100_000, put["sha256"]), got


# Every (variant, framing) of the registry, and how a client proves its port answers.
SERVER_CHECKS: dict[tuple[str, str], Callable[[Shell], None]] = {
    **{(name, VARIANTS[name].framing): _echo(name) for name in ECHO_VARIANTS},
    ("udp", VARIANTS["udp"].framing): _udp,
    ("exec", "naive"): _exec_naive,
    ("exec", "handshake"): _exec_handshake,
    ("exec", "framed"): _exec_framed,
    ("ftp", VARIANTS["ftp"].framing): _ftp,
}


def test_checks_cover_every_server_port() -> None:
    endpoints = {(v.name, framing) for v in VARIANTS.values() for framing in v.ports}
    assert set(SERVER_CHECKS) == endpoints


@pytest.mark.parametrize(("variant", "framing"), list(SERVER_CHECKS))
def test_client_container_reaches_server(shells: list[Shell], variant: str,
                                         framing: str) -> None:
    for shell in shells:
        SERVER_CHECKS[(variant, framing)](shell)


@pytest.fixture
def remote_engines(shells: list[Shell], ssh_home: Path) -> Iterator[list[docker.DockerClient]]:
    """The Docker SDK on each VM's engine over ssh:// (paramiko, our key and known hosts)."""
    clients = [engine_client(f"ssh://{vm_image.VM_USER}@{shell.vm.address}", ssh_home)
               for shell in shells]
    yield clients
    for client in clients:
        client.close()


def _lab_states(client: docker.DockerClient) -> dict[str, tuple[str, str]]:
    """service -> (status, health) of the lab's containers on one engine."""
    found = client.containers.list(all=True, filters={
        "label": f"com.docker.compose.project={PROJECT}"})
    return {c.labels["com.docker.compose.service"]:
            (c.attrs["State"]["Status"], c.attrs["State"].get("Health", {}).get("Status", ""))
            for c in found}


def test_lab_containers_are_healthy_over_docker_sdk(remote_engines: list[docker.DockerClient]
                                                    ) -> None:
    compose = yaml.safe_load((ROOT / "compose" / "lab.yml").read_text())["services"]
    servers = {name for name, spec in compose.items()
               if spec.get("labels", {}).get("socklab.role") == "server"}
    expected = {name: ("running", "healthy" if name in servers else "") for name in compose}
    for client in remote_engines:
        wait_until(lambda c=client: _lab_states(c) == expected, HEALTH_WAIT, interval=2.0)
        assert _lab_states(client) == expected


def test_lab_network_comes_from_the_engine_address_pool(
        remote_engines: list[docker.DockerClient]) -> None:
    pools = [ipaddress.ip_network(pool["base"]) for pool in
             role_defaults("docker_engine")["docker_engine_address_pools"]]
    for client in remote_engines:
        network = client.networks.get(PROJECT)
        subnets = [ipaddress.ip_network(c["Subnet"]) for c in network.attrs["IPAM"]["Config"]]
        assert subnets and all(any(s.subnet_of(p) for p in pools) for s in subnets), subnets


def test_make_watch_runs_on_a_vm_from_the_lab_image(shells: list[Shell], lab_tag: str,
                                                    remote_engines: list[docker.DockerClient]
                                                    ) -> None:
    """docs/watch.md's command for a lab VM, run there by its login user (no socklab
    installed, only the image): every host of the VM's lab, read from the VM's kernel."""
    compose = yaml.safe_load((ROOT / "compose" / "lab.yml").read_text())["services"]
    shell, engine = shells[0], remote_engines[0]
    wait_until(lambda: len(_lab_states(engine)) == len(compose), HEALTH_WAIT, interval=2.0)
    command = shlex.join([
        "docker", "run", "--rm", "--pull", "never", "--pid", "host", "--cap-drop", "ALL",
        "--cap-add", "SYS_ADMIN",
        "--cap-add", "SYS_PTRACE", "--cap-add", "DAC_READ_SEARCH",
        "-v", "/var/run/docker.sock:/var/run/docker.sock:ro", "--network", "none", lab_tag,
        "python3", "-m", "socklab.watch", "--once", "--format", "json"])
    status, out, err = shell.run(command)
    assert status == 0, f"{command} on {shell.vm.name}: {status}\n{err}{out}"
    hosts = json.loads(out)["hosts"]
    assert set(hosts) == {spec.get("hostname", name) for name, spec in compose.items()}
    tcp = hosts[VARIANTS["tcp"].host]
    assert [(entry["port"], entry["limit"]) for entry in tcp["listeners"]] == [
        (VARIANTS["tcp"].main_port, 5)]  # listen(5), read from the VM's kernel
    assert hosts[CLIENT]["role"] == "client" and hosts[CLIENT]["ports"]["size"]
    assert all(view["fds"] for view in hosts.values()), hosts
