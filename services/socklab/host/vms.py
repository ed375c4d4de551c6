"""Test lab VMs: systemd-booted Debian containers with sshd, for the Ansible playbook.

An instructor's lab VM is a plain Debian host reachable over SSH. These
containers behave like one: systemd is PID 1, sshd lets the sudo user
``labadmin`` in with a key only, python3 is there for Ansible, and nothing of
socklab is installed (no Docker either), so ``ansible/site.yml`` does on them
exactly what it does on a real VM. Each VM has its own host name, its own
volume on ``/var/lib/docker`` (the nested engine's storage) and an address on
the VM set's own Docker network; nothing is published on the host. The
control node (this host) reaches them at those addresses.

The SSH key is made here, in the state directory (``.vms/``, git-ignored),
with the inventory, the VMs' host keys and an ssh_config::

    PYTHONPATH=services python3 -m socklab.host.vms up --count 2   # make vms
    PYTHONPATH=services python3 -m socklab.host.vms inventory      # rewrite, print its path
    PYTHONPATH=services python3 -m socklab.host.vms wait           # until each VM takes a login
    PYTHONPATH=services python3 -m socklab.host.vms down           # make vms-down
    ssh -F .vms/ssh_config vm-1

Like socklab.host.build, this runs on a bare host: standard library, Docker's CLI and ssh.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from socklab.host import vm_image
from socklab.host.paths import REPO_ROOT
from socklab.host.rootfs import BuildError, Log, log_stderr, run_quiet

PREFIX = "socklab-vm"  # container names socklab-vm-1, socklab-vm-2, ...
SET_LABEL = "socklab.vm-set"  # on every container, volume and network of a VM set
DEFAULT_COUNT = 2
DEFAULT_STATE_DIR = REPO_ROOT / ".vms"
GROUP = "lab_vms"  # the inventory group ansible/site.yml provisions
KEY_NAME = "id_ed25519"
# A cold boot (systemd, first ssh host keys) takes 2-5 s here; a loaded machine more.
BOOT_TIMEOUT = 180.0
POLL_INTERVAL = 0.5
# What lets systemd and a nested Docker engine run in a container on these
# machines (measured on them): --privileged is refused
# (the sandbox withholds CAP_SYS_RESOURCE), so every other capability, no
# seccomp or AppArmor profile, the host's cgroup tree writable, tmpfs for /run.
VM_RUN_OPTIONS: tuple[str, ...] = (
    "--cap-add", "ALL",
    "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host",
    "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "--stop-signal", "SIGRTMIN+3",  # systemd's clean shutdown (docker import sets none)
)
DOCKER_DATA = "/var/lib/docker"  # a volume: on the container's overlay it falls back to vfs
SYSTEM_STATES_UP = ("running", "degraded")  # systemctl is-system-running, boot finished


@dataclass(frozen=True)
class VmSet:
    """A set of test VMs: their name prefix, state directory and extra labels."""

    prefix: str = PREFIX
    state_dir: Path = DEFAULT_STATE_DIR
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    @property
    def all_labels(self) -> dict[str, str]:
        return {SET_LABEL: self.prefix, **self.labels}

    @property
    def key(self) -> Path:
        return self.state_dir / KEY_NAME

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.ini"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    def name(self, index: int) -> str:
        return f"{self.prefix}-{index}"


@dataclass(frozen=True)
class Vm:
    """One running VM: its host name (inventory name) and address on the VM network."""

    name: str
    container: str
    address: str


# --- Docker, through its CLI ---------------------------------------------------------


def docker(*args: str, step: str = "", stdin: str | None = None) -> str:
    """Run ``docker ARGS``; its stdout, or BuildError with the end of its stderr."""
    if stdin is None:
        return run_quiet(["docker", *args], step or f"docker {args[0]}")
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise BuildError(f"{step or 'docker ' + args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def label_args(labels: dict[str, str]) -> list[str]:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def label_filter(vmset: VmSet) -> list[str]:
    return ["--filter", f"label={SET_LABEL}={vmset.prefix}"]


def containers(vmset: VmSet) -> dict[str, str]:
    """The set's containers: name -> state (running, exited, ...)."""
    out = docker("ps", "-a", *label_filter(vmset), "--format", "{{.Names}} {{.State}}")
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def vm_index(vmset: VmSet, container: str) -> int:
    """1 for socklab-vm-1; 0 for a name that is not one of the set's."""
    suffix = container.removeprefix(f"{vmset.prefix}-")
    return int(suffix) if suffix.isdigit() else 0


def run_command(vmset: VmSet, index: int, image: str) -> list[str]:
    """``docker run`` of VM ``index``: systemd as PID 1 with the capability set above."""
    name = vmset.name(index)
    return ["docker", "run", "--detach", "--pull", "never", "--name", name,
            "--hostname", f"vm-{index}", "--network", vmset.network,
            *label_args(vmset.all_labels), *VM_RUN_OPTIONS,
            "--volume", f"{name}-docker:{DOCKER_DATA}", image]


def ensure_network(vmset: VmSet) -> None:
    """The set's bridge network, created with a subnet Docker picks (none hard-coded)."""
    found = docker("network", "ls", "-q", "--filter", f"name=^{vmset.network}$")
    if not found.strip():
        docker("network", "create", "--driver", "bridge", *label_args(vmset.all_labels),
               vmset.network)


def start_vm(vmset: VmSet, index: int, image: str, state: str | None) -> None:
    """Start VM ``index``: as it is if it exists, else a new container and volume."""
    name = vmset.name(index)
    if state == "running":
        return
    if state is not None:
        docker("start", name)
        return
    docker("volume", "create", *label_args(vmset.all_labels), f"{name}-docker")
    run_quiet(run_command(vmset, index, image), f"docker run {name}")


# --- Boot, key, host key ---------------------------------------------------------------


def exec_in(container: str, *argv: str, stdin: str | None = None) -> str:
    interactive = ["--interactive"] if stdin is not None else []
    return docker("exec", *interactive, container, *argv, step=f"{argv[0]} on {container}",
                  stdin=stdin)


def system_state(container: str) -> str:
    done = subprocess.run(["docker", "exec", container, "systemctl", "is-system-running"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def wait_booted(container: str, timeout: float = BOOT_TIMEOUT) -> None:
    """Until systemd has finished booting and sshd runs with its host keys."""
    deadline = time.monotonic() + timeout
    while (state := system_state(container)) not in SYSTEM_STATES_UP:
        if time.monotonic() > deadline:
            raise BuildError(f"{container}: systemd not up after {timeout:.0f} s "
                                   f"(is-system-running: {state})")
        time.sleep(POLL_INTERVAL)
    done = subprocess.run(["docker", "exec", container, "systemctl", "is-active", "ssh"],
                          capture_output=True, text=True, check=False)
    if done.stdout.strip() != "active":
        raise BuildError(f"{container}: sshd is {done.stdout.strip() or 'not running'}")


def ensure_key(vmset: VmSet) -> str:
    """The control node's ed25519 key pair (made once); its public half."""
    vmset.state_dir.mkdir(parents=True, exist_ok=True)
    if not vmset.key.exists():
        run_quiet(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                         f"socklab control node ({vmset.prefix})", "-f", str(vmset.key)],
                        "ssh-keygen")
    return vmset.key.with_suffix(".pub").read_text()


def install_key(container: str, public_key: str) -> None:
    user = vm_image.VM_USER
    script = (f"umask 077; cat > /home/{user}/.ssh/authorized_keys && "
              f"chown {user}:{user} /home/{user}/.ssh/authorized_keys")
    exec_in(container, "sh", "-c", script, stdin=public_key)


def host_key(container: str) -> str:
    """The VM's ed25519 host key, read through Docker (a channel we already trust)."""
    key_type, key = exec_in(container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    return f"{key_type} {key}"


def address(vmset: VmSet, container: str) -> str:
    template = f'{{{{(index .NetworkSettings.Networks "{vmset.network}").IPAddress}}}}'
    return docker("inspect", "--format", template, container).strip()


# --- Inventory, known_hosts, ssh_config ----------------------------------------------


def running_vms(vmset: VmSet) -> list[Vm]:
    names = sorted((vm_index(vmset, c), c) for c, s in containers(vmset).items()
                   if s == "running" and vm_index(vmset, c))
    return [Vm(f"vm-{i}", c, address(vmset, c)) for i, c in names]


def swarm_groups(names: list[str]) -> dict[str, list[str]]:
    """The swarm the test VMs form: the first is the manager and runs the clients,
    the others are workers and run the servers (a lone VM does both)."""
    first, rest = names[:1], names[1:]
    return {"swarm_managers": first, "swarm_workers": rest,
            "lab_clients": first, "lab_servers": rest or first}


def inventory_text(vmset: VmSet, vms: Iterable[Vm]) -> str:
    vms = list(vms)
    ssh_args = (f"-o UserKnownHostsFile={vmset.known_hosts.resolve()} "
                "-o StrictHostKeyChecking=yes")
    hosts = "".join(f"{vm.name} ansible_host={vm.address}\n" for vm in vms)
    groups = "".join(f"[{group}]\n" + "".join(f"{name}\n" for name in names) + "\n"
                     for group, names in swarm_groups([vm.name for vm in vms]).items())
    return (f"# The local test VMs (containers {vmset.prefix}-N), written by "
            "python3 -m socklab.host.vms.\n"
            "# They form a Docker Swarm (ansible/roles/swarm); the lab runs on each\n"
            "# with Compose, and across them as the stack \"socklab\".\n"
            f"[{GROUP}]\n{hosts}\n{groups}[{GROUP}:vars]\n"
            f"ansible_user={vm_image.VM_USER}\n"
            f"ansible_ssh_private_key_file={vmset.key.resolve()}\n"
            f"ansible_ssh_common_args='{ssh_args}'\n"
            # Own control sockets: a removed VM's address reused by a new one
            # must not meet a stale ssh master of the old one.
            f"ansible_control_path_dir={(vmset.state_dir / 'cp').resolve()}\n")


def ssh_config_text(vmset: VmSet, vms: Iterable[Vm]) -> str:
    return "".join(
        f"Host {vm.name} {vm.address}\n  HostName {vm.address}\n  User {vm_image.VM_USER}\n"
        f"  IdentityFile {vmset.key.resolve()}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {vmset.known_hosts.resolve()}\n"
        "  StrictHostKeyChecking yes\n\n" for vm in vms)


def write_inventory(vmset: VmSet) -> list[Vm]:
    """Write inventory.ini, known_hosts and ssh_config for the running VMs."""
    vms = running_vms(vmset)
    vmset.state_dir.mkdir(parents=True, exist_ok=True)
    known = "".join(f"{vm.address} {host_key(vm.container)}\n" for vm in vms)
    vmset.known_hosts.write_text(known)
    vmset.ssh_config.write_text(ssh_config_text(vmset, vms))
    vmset.inventory.write_text(inventory_text(vmset, vms))
    return vms


def ssh_login(vmset: VmSet, vm: Vm) -> subprocess.CompletedProcess[str]:
    """``ssh VM true`` with the set's key and known hosts, no prompt."""
    return subprocess.run(["ssh", "-F", str(vmset.ssh_config), "-o", "BatchMode=yes",
                           "-o", "ConnectTimeout=5", vm.name, "true"],
                          capture_output=True, text=True, check=False)


def wait_for_logins(vmset: VmSet, timeout: float = BOOT_TIMEOUT) -> list[Vm]:
    """Until each running VM takes an SSH login with the key; the VMs."""
    vms = running_vms(vmset)
    if not vms:
        raise BuildError(f"no VM of set {vmset.prefix} is running (make vms)")
    deadline = time.monotonic() + timeout
    for vm in vms:
        while (done := ssh_login(vmset, vm)).returncode != 0:
            if time.monotonic() > deadline:
                raise BuildError(f"{vm.name} ({vm.address}): no SSH login after "
                                       f"{timeout:.0f} s: {done.stderr.strip()}")
            time.sleep(POLL_INTERVAL)
    return vms


# --- The commands --------------------------------------------------------------------


def up(vmset: VmSet, count: int = DEFAULT_COUNT, log: Log = log_stderr) -> list[Vm]:
    """Have VMs 1..count running and reachable (more are left alone); all running VMs."""
    image = vm_image.ensure_vm_image(log=log)
    public_key = ensure_key(vmset)
    ensure_network(vmset)
    present = containers(vmset)
    for index in range(1, count + 1):
        start_vm(vmset, index, image, present.get(vmset.name(index)))
    for index in range(1, count + 1):
        wait_booted(vmset.name(index))
        install_key(vmset.name(index), public_key)
    write_inventory(vmset)
    vms = wait_for_logins(vmset)
    log(f"{len(vms)} VMs up: " + ", ".join(f"{vm.name} {vm.address}" for vm in vms))
    log(f"inventory: {vmset.inventory}   ssh: ssh -F {vmset.ssh_config} vm-1")
    return vms


def remove_containers(names: Iterable[str]) -> None:
    """Remove containers with their volumes (the nested engine's data)."""
    names = list(names)
    if not names:
        return
    mounts = docker("inspect", "--format",
                    "{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}", *names).split()
    docker("rm", "--force", "--volumes", *names)
    if mounts:
        subprocess.run(["docker", "volume", "rm", "--force", *mounts], capture_output=True,
                       check=False)


def down(vmset: VmSet, log: Log = log_stderr) -> int:
    """Remove the set's containers, volumes and network, and the files naming them."""
    names = list(containers(vmset))
    remove_containers(names)
    filters = label_filter(vmset)
    volumes = docker("volume", "ls", "-q", *filters).split()
    if volumes:
        docker("volume", "rm", "--force", *volumes)
    networks = docker("network", "ls", "-q", *filters).split()
    if networks:
        docker("network", "rm", *networks)
    for path in (vmset.inventory, vmset.known_hosts, vmset.ssh_config):
        path.unlink(missing_ok=True)
    log(f"removed {len(names)} VMs, {len(volumes)} more volumes, {len(networks)} networks "
        f"of set {vmset.prefix} (the key stays in {vmset.state_dir})")
    return len(names)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m socklab.host.vms",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "inventory", "wait"))
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="VMs to have (up)")
    parser.add_argument("--prefix", default=PREFIX, help="container name prefix of the set")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="key, inventory, known_hosts, ssh_config")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra label on everything the set creates")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    labels = dict(item.split("=", 1) for item in args.label)
    vmset = VmSet(args.prefix, args.state_dir, labels)
    try:
        if args.command == "up":
            up(vmset, args.count)
        elif args.command == "down":
            down(vmset)
        elif args.command == "wait":
            wait_for_logins(vmset)
        else:
            write_inventory(vmset)
        if args.command in ("up", "inventory"):
            print(vmset.inventory)
    except BuildError as error:
        log_stderr(f"error: {error}")
        return error.status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
