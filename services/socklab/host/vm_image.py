"""The test VM image: a stand-in for an instructor's lab VM, for the Ansible suite.

Plain Debian booting systemd, with sshd, sudo and python3 (for Ansible) and
nothing of ours, no Docker: the Ansible playbook must install everything
itself. ``socklab.host.vms`` runs containers of it. Made like the lab's base
image (``socklab.host.rootfs``: mmdebstrap, then ``docker import``); its tag
is a hash of the recipe below.
"""

from __future__ import annotations

from socklab.host.rootfs import (
    Log,
    RootfsImage,
    check_docker,
    debian_mirror,
    debian_suite,
    ensure_rootfs_image,
    log_stderr,
)

VM_REPO = "socklab-vm"
VM_USER = "labadmin"  # the sudo user Ansible logs in as (key only, no password)
VM_PACKAGES: tuple[str, ...] = (
    "systemd",  # PID 1, as on a VM
    "systemd-sysv",  # /sbin/init
    "openssh-server",  # Ansible's way in
    "sudo",  # become
    "python3",  # Ansible's modules run with it
    "iproute2",  # priority "important", on every real VM; Ansible's network facts use ip
)
VM_RECIPE_VERSION = 1
# Make /proc/sys/net writable at boot. Docker mounts /proc/sys read-only; the
# network namespace is the VM's own, so its net.* values are the VM's to set, as
# on a real VM. The rest of /proc/sys is the host's kernel and stays read-only
# (systemd-sysctl skips itself then: ConditionPathIsReadWrite=/proc/sys/).
VM_SYSCTL_NET_UNIT = """[Unit]
Description=Make /proc/sys/net writable (this container's network namespace is its own)
DefaultDependencies=no
Before=sysinit.target systemd-sysctl.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /proc/sys/net /proc/sys/net
ExecStart=/bin/mount -o remount,bind,rw /proc/sys/net

[Install]
WantedBy=sysinit.target
"""
# Every VM makes its own host keys on first boot (the image ships none).
VM_SSH_KEYS_DROPIN = """[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""
VM_SSHD_CONFIG = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
VM_SUDOERS = f"{VM_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"
VM_SYSCTL_NET_NAME = "socklab-vm-sysctl-net.service"


def write_hook(path: str, content: str, mode: str = "0644") -> str:
    """A customize hook writing ``content`` to ``path`` inside the new root ("$1")."""
    quoted = "'" + content.replace("'", "'\\''") + "'"
    return f"printf '%s' {quoted} > \"$1{path}\" && chmod {mode} \"$1{path}\""


# mmdebstrap --customize-hook commands, run on the host with the new root as "$1".
VM_HOOKS: tuple[str, ...] = (
    f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo {VM_USER}',
    f"chroot \"$1\" usermod --password '*' {VM_USER}",  # no password, yet not locked
    f'chroot "$1" install -d -m 0700 -o {VM_USER} -g {VM_USER} /home/{VM_USER}/.ssh',
    write_hook(f"/etc/sudoers.d/{VM_USER}", VM_SUDOERS, "0440"),
    write_hook("/etc/ssh/sshd_config.d/socklab-vm.conf", VM_SSHD_CONFIG),
    'rm -f "$1"/etc/ssh/ssh_host_*',
    'mkdir -p "$1/etc/systemd/system/ssh.service.d"',
    write_hook("/etc/systemd/system/ssh.service.d/host-keys.conf", VM_SSH_KEYS_DROPIN),
    write_hook(f"/etc/systemd/system/{VM_SYSCTL_NET_NAME}", VM_SYSCTL_NET_UNIT),
    'mkdir -p "$1/etc/systemd/system/sysinit.target.wants"',
    f'ln -sf ../{VM_SYSCTL_NET_NAME} "$1/etc/systemd/system/sysinit.target.wants/"',
    # No console in a container: a getty would only restart forever.
    'ln -sf /dev/null "$1/etc/systemd/system/getty@tty1.service"',
    'ln -sf /dev/null "$1/etc/systemd/system/console-getty.service"',
    ': > "$1/etc/machine-id"',  # empty: systemd makes one per VM at boot
)
VM_IMPORT_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV container=docker",  # tells systemd it runs in a container
    # (docker import takes no STOPSIGNAL: socklab.host.vms passes --stop-signal SIGRTMIN+3.)
    'CMD ["/sbin/init"]',
)

VM_IMAGE = RootfsImage(VM_REPO, "VM image", VM_PACKAGES, VM_IMPORT_CHANGES, VM_RECIPE_VERSION,
                       hooks=VM_HOOKS)


def vm_tag(suite: str, mirror: str) -> str:
    return VM_IMAGE.tag(suite, mirror)


def ensure_vm_image(*, force: bool = False, log: Log = log_stderr) -> str:
    """Build the test VM image unless it exists (or if ``force``); return its tag."""
    check_docker()
    suite = debian_suite()
    return ensure_rootfs_image(VM_IMAGE, suite, debian_mirror(suite), force=force, log=log)
