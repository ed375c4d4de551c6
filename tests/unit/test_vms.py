"""Unit tests of socklab.host.vms and the VM image recipe, socklab.host.vm_image (no Docker)."""

from __future__ import annotations

import itertools
import shlex
import subprocess
from pathlib import Path

import pytest

from socklab.host import build, vm_image, vms

MIRROR = "http://mirror.example/debian"


@pytest.fixture
def vmset(tmp_path: Path) -> vms.VmSet:
    return vms.VmSet(prefix="socklab-vmt-1", state_dir=tmp_path / "state",
                     labels={"socklab.test-run": "run-1"})


@pytest.fixture
def two_vms() -> list[vms.Vm]:
    return [vms.Vm("vm-1", "socklab-vmt-1-1", "10.9.0.2"),
            vms.Vm("vm-2", "socklab-vmt-1-2", "10.9.0.3")]


# --- docker run ----------------------------------------------------------------------


def _option_pairs(cmd: list[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in itertools.pairwise(cmd) if a.startswith("--")}


def test_run_command_has_the_capability_set_that_runs_systemd_and_docker(
        vmset: vms.VmSet) -> None:
    cmd = vms.run_command(vmset, 2, "socklab-vm:abc")
    pairs = _option_pairs(cmd)
    assert {("--cap-add", "ALL"), ("--cap-drop", "SYS_RESOURCE"),
            ("--security-opt", "seccomp=unconfined"), ("--security-opt", "apparmor=unconfined"),
            ("--cgroupns", "host"), ("--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw"),
            ("--tmpfs", "/run"), ("--tmpfs", "/run/lock")} <= pairs
    assert "--privileged" not in cmd  # refused on these machines


def test_run_command_names_host_network_volume_and_image(vmset: vms.VmSet) -> None:
    cmd = vms.run_command(vmset, 2, "socklab-vm:abc")
    pairs = _option_pairs(cmd)
    assert {("--name", "socklab-vmt-1-2"), ("--hostname", "vm-2"),
            ("--network", "socklab-vmt-1-net"), ("--pull", "never"),
            ("--volume", "socklab-vmt-1-2-docker:/var/lib/docker")} <= pairs
    assert cmd[-1] == "socklab-vm:abc"
    assert not any(arg.startswith(("--publish", "-p")) for arg in cmd)  # no port on the host


def test_run_command_labels_the_vm_with_its_set_and_extra_labels(vmset: vms.VmSet) -> None:
    pairs = _option_pairs(vms.run_command(vmset, 1, "socklab-vm:abc"))
    assert ("--label", "socklab.vm-set=socklab-vmt-1") in pairs
    assert ("--label", "socklab.test-run=run-1") in pairs


@pytest.mark.parametrize(("name", "index"), [("socklab-vmt-1-3", 3), ("socklab-vmt-1-x", 0),
                                              ("other-3", 0), ("socklab-vmt-1-12", 12)])
def test_vm_index_reads_only_the_sets_names(vmset: vms.VmSet, name: str, index: int) -> None:
    assert vms.vm_index(vmset, name) == index


# --- inventory and ssh_config --------------------------------------------------------


def test_inventory_lists_each_vm_by_address_in_the_provisioned_group(
        vmset: vms.VmSet, two_vms: list[vms.Vm]) -> None:
    lines = vms.inventory_text(vmset, two_vms).splitlines()
    group = lines.index(f"[{vms.GROUP}]")
    assert lines[group + 1:group + 3] == ["vm-1 ansible_host=10.9.0.2",
                                          "vm-2 ansible_host=10.9.0.3"]


def test_inventory_logs_in_with_the_key_and_checks_host_keys(
        vmset: vms.VmSet, two_vms: list[vms.Vm]) -> None:
    text = vms.inventory_text(vmset, two_vms)
    variables = dict(line.split("=", 1) for line in
                     text.split(f"[{vms.GROUP}:vars]\n", 1)[1].splitlines() if "=" in line)
    assert variables["ansible_user"] == vm_image.VM_USER
    assert Path(variables["ansible_ssh_private_key_file"]) == vmset.key.resolve()
    ssh_args = shlex.split(variables["ansible_ssh_common_args"])[0].split()
    assert ssh_args == ["-o", f"UserKnownHostsFile={vmset.known_hosts.resolve()}",
                        "-o", "StrictHostKeyChecking=yes"]
    assert variables["ansible_control_path_dir"].startswith(str(vmset.state_dir.resolve()))


@pytest.mark.parametrize(("names", "expected"), [
    (["vm-1"], {"swarm_managers": ["vm-1"], "swarm_workers": [],
                "lab_clients": ["vm-1"], "lab_servers": ["vm-1"]}),
    (["vm-1", "vm-2", "vm-3"], {"swarm_managers": ["vm-1"], "swarm_workers": ["vm-2", "vm-3"],
                                "lab_clients": ["vm-1"], "lab_servers": ["vm-2", "vm-3"]}),
])
def test_test_vms_form_a_swarm_with_clients_and_servers_apart(
        names: list[str], expected: dict[str, list[str]]) -> None:
    assert vms.swarm_groups(names) == expected


def test_inventory_puts_the_vms_in_the_swarm_groups(vmset: vms.VmSet,
                                                    two_vms: list[vms.Vm]) -> None:
    lines = vms.inventory_text(vmset, two_vms).splitlines()
    for group, members in {"swarm_managers": ["vm-1"], "swarm_workers": ["vm-2"],
                           "lab_clients": ["vm-1"], "lab_servers": ["vm-2"]}.items():
        start = lines.index(f"[{group}]")
        assert lines[start + 1:start + 1 + len(members)] == members
        assert lines[start + 1 + len(members)] == ""


def test_ssh_config_has_one_host_block_per_vm(vmset: vms.VmSet,
                                              two_vms: list[vms.Vm]) -> None:
    blocks = [b for b in vms.ssh_config_text(vmset, two_vms).split("\n\n") if b.strip()]
    assert [b.splitlines()[0] for b in blocks] == ["Host vm-1 10.9.0.2", "Host vm-2 10.9.0.3"]
    for block in blocks:
        assert f"  IdentityFile {vmset.key.resolve()}" in block.splitlines()
        assert "  StrictHostKeyChecking yes" in block.splitlines()


def test_state_files_live_in_the_state_dir(vmset: vms.VmSet) -> None:
    paths = (vmset.key, vmset.inventory, vmset.known_hosts, vmset.ssh_config)
    assert {p.parent for p in paths} == {vmset.state_dir}


# --- the VM image recipe -------------------------------------------------------------


def test_vm_image_has_what_a_plain_vm_has_and_nothing_of_ours() -> None:
    assert {"systemd", "systemd-sysv", "openssh-server", "sudo", "python3"} <= set(
        vm_image.VM_PACKAGES)
    assert not {p for p in vm_image.VM_PACKAGES if "docker" in p or "twisted" in p}


def test_vm_tag_is_stable_and_depends_on_suite_and_mirror() -> None:
    tag = vm_image.vm_tag("bookworm", MIRROR)
    assert tag == vm_image.vm_tag("bookworm", MIRROR)
    assert tag.startswith(f"{vm_image.VM_REPO}:")
    assert tag != vm_image.vm_tag("trixie", MIRROR)
    assert tag != vm_image.vm_tag("bookworm", "http://other.example/debian")
    assert tag != build.base_tag("bookworm", MIRROR)


def test_vm_mmdebstrap_command_runs_every_hook_and_writes_the_tarball(tmp_path: Path) -> None:
    cmd = vm_image.VM_IMAGE.mmdebstrap_command("bookworm", MIRROR, tmp_path / "rootfs.tar")
    assert cmd[-3:] == ["bookworm", str(tmp_path / "rootfs.tar"), MIRROR]
    assert f"--include={','.join(vm_image.VM_PACKAGES)}" in cmd
    hooks = [arg.removeprefix("--customize-hook=") for arg in cmd
             if arg.startswith("--customize-hook=")]
    assert hooks == list(vm_image.VM_HOOKS)


def test_vm_image_ships_no_ssh_host_keys_and_no_password_login() -> None:
    hooks = "\n".join(vm_image.VM_HOOKS)
    assert 'rm -f "$1"/etc/ssh/ssh_host_*' in vm_image.VM_HOOKS  # each VM makes its own
    assert "PasswordAuthentication no" in vm_image.VM_SSHD_CONFIG
    assert "ssh-keygen -A" in vm_image.VM_SSH_KEYS_DROPIN
    assert f"{vm_image.VM_USER} ALL=(ALL:ALL) NOPASSWD: ALL" in hooks


def test_write_hook_survives_single_quotes(tmp_path: Path) -> None:
    content = "it's a 'quoted' line\nand $HOME stays literal\n"
    (tmp_path / "etc").mkdir()
    hook = vm_image.write_hook("/etc/file", content, "0640")
    subprocess.run(["sh", "-c", hook, "exec", str(tmp_path)], check=True)
    written = tmp_path / "etc" / "file"
    assert written.read_text() == content
    assert written.stat().st_mode & 0o777 == 0o640


def test_vm_import_command_boots_systemd_in_a_container(tmp_path: Path) -> None:
    cmd = vm_image.VM_IMAGE.import_command(tmp_path / "rootfs.tar", "socklab-vm:x")
    assert cmd[:2] == ["docker", "import"] and cmd[-1] == "socklab-vm:x"
    assert 'CMD ["/sbin/init"]' in cmd and "ENV container=docker" in cmd
