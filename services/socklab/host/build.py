"""Build the socklab container images on the host, without any container registry.

Two images are made:

* ``socklab-base:<hash12>``: a Debian root filesystem made by ``mmdebstrap`` and
  loaded with ``docker import`` (no registry is reachable, so no ``FROM debian``);
* ``socklab-lab:<hash12>``: ``services/Dockerfile`` built on top of the base image,
  adding the socklab package, its users and its directories (no network used).

Both tags are content hashes of their inputs, so running this again with the same
inputs builds nothing. Usage (from the repository root)::

    PYTHONPATH=services python3 -m socklab.host.build [images] [--force]
    PYTHONPATH=services python3 -m socklab.host.build tag

``images`` prints only ``SOCKLAB_IMAGE=socklab-lab:<hash12>`` on stdout (for ``eval``);
all progress goes to stderr. ``tag`` prints the lab tag that would be built.

This module runs on a bare host: it uses the standard library only and imports no
other socklab module (they may need Twisted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from socklab.host.paths import REPO_ROOT

Log = Callable[[str], None]

# Packages of the base image (mmdebstrap --include), on top of the "apt" variant
# (Essential: yes packages + apt). Each one is there for the lab:
BASE_PACKAGES: tuple[str, ...] = (
    "python3",  # the socklab servers, clients and probes are Python
    "python3-twisted",  # their networking framework
    "iproute2",  # ip, ss, tc: inspect and shape the lab networks
    "iputils-ping",  # ping
    "procps",  # ps, top, pkill
    "tcpdump",  # packet capture
    "iperf3",  # throughput measurements
    "netcat-openbsd",  # nc: hand-made TCP/UDP clients and servers
    "nftables",  # nft: drop a share of a host's packets (the kernel has no netem here)
    "iptables",  # its NFQUEUE target hands packets to socklab delay (no netem either)
    "python3-uvloop",  # the benchmark's uvloop reference server (make bench)
)
# Bump when the recipe changes in a way the other hashed inputs do not show.
BASE_RECIPE_VERSION = 1
DEFAULT_SUITE = "bookworm"  # Debian 12; python3 is 3.11, like the project
DEFAULT_MIRROR = "http://deb.debian.org/debian"  # used when the host names none
# "apt" = Essential packages + apt, so apt works inside the containers.
MMDEBSTRAP_VARIANT = "apt"
# Documentation, manual pages and translations are dead weight in a lab image.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
# docker import makes an image with no configuration at all; these give it one.
IMPORT_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONUNBUFFERED=1",
    'CMD ["/bin/bash"]',
)

BASE_REPO = "socklab-base"
LAB_REPO = "socklab-lab"
LATEST = "latest"  # convenience tag also put on the newest images
HASH_LENGTH = 12  # hex digits of sha256 in a tag: ample for a handful of images
MIRROR_ENV = "SOCKLAB_DEBIAN_MIRROR"
SUITE_ENV = "SOCKLAB_DEBIAN_SUITE"
SERVICES_DIR = "services"  # docker build context, relative to the repository root
HASHED_DIRS = ("socklab", "bin")  # copied into the lab image, relative to services/
HASHED_FILES = ("Dockerfile", ".dockerignore")  # relative to services/
SKIPPED_DIR_NAMES = frozenset({"__pycache__"})  # also in services/.dockerignore
SKIPPED_SUFFIXES = (".pyc",)  # also in services/.dockerignore
# The host side never enters the image (services/.dockerignore), so editing it
# leaves the lab tag as it is: no rebuild, nothing new shipped to the VMs.
HOST_SIDE = Path("socklab", "host")  # relative to services/
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
URI_SCHEMES = ("http://", "https://")  # what mmdebstrap and the image can both fetch
BASE_BUILD_ESTIMATE = "about 40 s"  # measured: 38 s on a fast link to deb.debian.org
ERROR_TAIL_LINES = 15  # output lines of a failed command repeated in its error
PREFIX = "[socklab]"
DEFAULT_ROOT = REPO_ROOT


class BuildError(Exception):
    """A build step failed; ``status`` is the exit status the CLI should end with."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def log_stderr(message: str) -> None:
    """Default progress sink: one prefixed line on stderr."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


# --- Debian mirror: from the environment or the host's apt sources -----------------


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _one_line_entries(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """Yield ([uri], [suite]) for each ``deb [options] URI SUITE COMPONENTS...`` line."""
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not re.match(r"deb\s", line):
            continue  # deb-src, blank or malformed lines
        rest = line[3:].strip()
        if rest.startswith("["):  # options may contain spaces: [ arch=amd64 ]
            rest = rest.partition("]")[2].strip()
        words = rest.split()
        if len(words) >= 2:
            yield [words[0]], [words[1]]


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Yield each deb822 stanza as {lowercased field: value}; comments are dropped."""
    fields: dict[str, str] = {}
    last = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif raw[0].isspace() and last:  # continuation line
            fields[last] += " " + raw.strip()
        elif ":" in raw:
            name, _, value = raw.partition(":")
            last = name.strip().lower()
            fields[last] = value.strip()


def _deb822_entries(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """Yield (URIs, Suites) of each enabled ``Types: deb`` stanza."""
    for stanza in _deb822_stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        yield stanza.get("uris", "").split(), stanza.get("suites", "").split()


def _is_security(uri: str, suite: str) -> bool:
    return suite.endswith("-security") or uri.rstrip("/").endswith("-security")


def mirror_from_sources(texts: list[tuple[str, str]], suite: str = DEFAULT_SUITE) -> str | None:
    """First http(s) URI serving ``suite`` (not a security archive), or None.

    ``texts`` holds (filename, content) pairs in apt's reading order; files named
    ``*.sources`` are deb822, all others one-line ``sources.list`` format.
    """
    for filename, content in texts:
        parse = _deb822_entries if filename.endswith(".sources") else _one_line_entries
        for uris, suites in parse(content):
            if suite not in suites:
                continue
            for uri in uris:
                if uri.startswith(URI_SCHEMES) and not _is_security(uri, suite):
                    return uri.rstrip("/")
    return None


def host_apt_sources() -> list[tuple[str, str]]:
    """(filename, content) of the host's apt source files, in apt's reading order."""
    paths = [APT_SOURCES_LIST]
    if APT_SOURCES_DIR.is_dir():
        paths += sorted(p for p in APT_SOURCES_DIR.iterdir() if p.suffix in (".list", ".sources"))
    texts = []
    for path in paths:
        try:
            texts.append((path.name, path.read_text(errors="replace")))
        except OSError:
            continue  # absent or unreadable: apt would not use it either
    return texts


def debian_suite() -> str:
    return os.environ.get(SUITE_ENV) or DEFAULT_SUITE


def debian_mirror(suite: str) -> str:
    """The mirror to bootstrap from: $SOCKLAB_DEBIAN_MIRROR, the host's, or the default."""
    from_env = os.environ.get(MIRROR_ENV)
    if from_env:
        return from_env.rstrip("/")
    return mirror_from_sources(host_apt_sources(), suite) or DEFAULT_MIRROR


# --- Content-hash tags ---------------------------------------------------------------


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_LENGTH]


def rootfs_recipe(packages: tuple[str, ...] | list[str], suite: str, mirror: str,
                  import_changes: tuple[str, ...] | list[str], version: int,
                  hooks: tuple[str, ...] | list[str] = ()) -> dict[str, object]:
    """Everything an mmdebstrap-built image is made from; its tag is a hash of this."""
    recipe: dict[str, object] = {
        "packages": list(packages),
        "suite": suite,
        "variant": MMDEBSTRAP_VARIANT,
        "mirror": mirror,
        "dpkg_options": list(DPKG_OPTIONS),
        "import_changes": list(import_changes),
        "recipe_version": version,
    }
    if hooks:
        recipe["hooks"] = list(hooks)
    return recipe


def recipe_tag(repo: str, recipe: dict[str, object]) -> str:
    """``repo:<hash of the recipe>``: a change to any input is a new tag."""
    return f"{repo}:{_short_hash(json.dumps(recipe, sort_keys=True).encode())}"


def base_recipe(suite: str, mirror: str) -> dict[str, object]:
    """Everything the base image is made from; its tag is a hash of this."""
    return rootfs_recipe(BASE_PACKAGES, suite, mirror, IMPORT_CHANGES, BASE_RECIPE_VERSION)


def base_tag(suite: str, mirror: str) -> str:
    return recipe_tag(BASE_REPO, base_recipe(suite, mirror))


def _is_hashed(path: Path, services: Path) -> bool:
    relative = path.relative_to(services)
    if relative.is_relative_to(HOST_SIDE):
        return False
    return (not SKIPPED_DIR_NAMES.intersection(relative.parts)
            and not path.name.endswith(SKIPPED_SUFFIXES))


def lab_input_files(services: Path) -> list[Path]:
    """The files the lab image is made from, relative to ``services``, sorted."""
    files = [Path(name) for name in HASHED_FILES]
    for dirname in HASHED_DIRS:
        top = services / dirname
        found = (p for p in top.rglob("*") if p.is_file() and _is_hashed(p, services))
        files += sorted(p.relative_to(services) for p in found)
    return files


def _lab_digest(services: Path, base: str) -> str:
    digest = hashlib.sha256(base.encode() + b"\0")
    for relative in lab_input_files(services):
        path = services / relative
        content = path.read_bytes() if path.is_file() else b""  # absent: empty
        # COPY keeps the mode; only the executable bit is tracked by git, so only it counts.
        executable = path.is_file() and os.access(path, os.X_OK)
        # Length-prefixed path and content, so no two trees hash alike.
        header = f"{relative.as_posix()}\0{executable:d}\0{len(content)}\0"
        digest.update(header.encode() + content)
    return digest.hexdigest()[:HASH_LENGTH]


def lab_tag_for(root: Path, base: str) -> str:
    return f"{LAB_REPO}:{_lab_digest(root / SERVICES_DIR, base)}"


def lab_tag(root: Path = DEFAULT_ROOT) -> str:
    """The lab image tag for the repository at ``root`` (no Docker needed)."""
    suite = debian_suite()
    return lab_tag_for(root, base_tag(suite, debian_mirror(suite)))


# --- Running commands ----------------------------------------------------------------


def _command_failed(step: str, status: int, tail: Iterable[str] = ()) -> BuildError:
    details = "".join(f"\n    {line}" for line in tail)
    return BuildError(f"{step} failed with exit code {status}{details}")


def run_quiet(cmd: list[str], step: str) -> str:
    """Run ``cmd``, capturing its output; return stdout, raise BuildError on failure."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BuildError(f"{step}: cannot run {cmd[0]}: {error}") from error
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-ERROR_TAIL_LINES:]
        raise _command_failed(step, done.returncode, tail)
    return done.stdout


def run_streamed(
    cmd: list[str], step: str, log: Log, label: str, env: dict[str, str] | None = None
) -> None:
    """Run ``cmd``, relaying each line it prints (stdout and stderr) to ``log``."""
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
    except OSError as error:
        raise BuildError(f"{step}: cannot run {cmd[0]}: {error}") from error
    with proc:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            if line.strip():
                log(f"{label}: {line.rstrip()}")
    if proc.returncode != 0:  # its output is already shown above: no need to repeat it
        raise _command_failed(step, proc.returncode)


def _elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.1f} s"


# --- Preconditions -------------------------------------------------------------------


def check_docker() -> None:
    """Raise BuildError (exit status 2) unless the Docker engine answers."""
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    except OSError as error:
        reason = f"cannot run docker ({error.strerror})"
        raise BuildError(f"Docker engine is not running or not reachable: {reason}", 2) from error
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if "error" in line.lower()), None)
        reason = reason or (lines[-1] if lines else f"docker info exit code {done.returncode}")
        raise BuildError(f"Docker engine is not running or not reachable: {reason}", 2)


def ensure_mmdebstrap(log: Log) -> None:
    """Install mmdebstrap with apt-get when missing (as root), else explain how."""
    if shutil.which("mmdebstrap"):
        return
    if os.geteuid() != 0:
        raise BuildError(
            "mmdebstrap is missing; install it first: "
            "sudo apt-get update && sudo apt-get install -y mmdebstrap"
        )
    log("mmdebstrap is missing: installing it with apt-get (Debian package mmdebstrap)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_streamed(["apt-get", "update"], "apt-get update", log, "apt-get", env=env)
    install = ["apt-get", "install", "-y", "mmdebstrap"]
    run_streamed(install, "apt-get install mmdebstrap", log, "apt-get", env=env)


def image_exists(tag: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return done.returncode == 0


def tag_latest(tag: str) -> None:
    repo = tag.partition(":")[0]
    run_quiet(["docker", "tag", tag, f"{repo}:{LATEST}"], f"docker tag {repo}:{LATEST}")


# --- The two images ------------------------------------------------------------------


def mmdebstrap_command(suite: str, mirror: str, target: Path,
                       packages: tuple[str, ...] = BASE_PACKAGES,
                       hooks: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The mmdebstrap call that writes a root filesystem of ``packages`` (base image by default)."""
    return [
        "mmdebstrap",
        f"--variant={MMDEBSTRAP_VARIANT}",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        *(f"--customize-hook={hook}" for hook in hooks),
        suite,
        str(target),
        mirror,
    ]


def import_command(tarball: Path, tag: str,
                   import_changes: tuple[str, ...] | list[str] = IMPORT_CHANGES) -> list[str]:
    changes = [arg for change in import_changes for arg in ("--change", change)]
    return ["docker", "import", *changes, str(tarball), tag]


def build_base(tag: str, suite: str, mirror: str, log: Log) -> None:
    """Bootstrap Debian into a temporary tarball, then ``docker import`` it as ``tag``."""
    ensure_mmdebstrap(log)
    log(f"base image {tag}: building with mmdebstrap from {mirror} ({BASE_BUILD_ESTIMATE})")
    if mirror.startswith("https://"):
        log(f"note: {mirror} is https; containers may only reach plain http mirrors")
    # A file rather than a pipe: a failed mmdebstrap must not import half a rootfs.
    with tempfile.TemporaryDirectory(prefix="socklab-rootfs-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        start = time.monotonic()
        run_streamed(mmdebstrap_command(suite, mirror, tarball), "mmdebstrap", log, "mmdebstrap")
        log(f"base image {tag}: root filesystem ready in {_elapsed(start)}; importing")
        start = time.monotonic()
        run_quiet(import_command(tarball, tag), "docker import")
        log(f"base image {tag}: imported in {_elapsed(start)}")


def build_lab(tag: str, base: str, root: Path, log: Log) -> None:
    """``docker build`` services/Dockerfile on top of ``base`` as ``tag``."""
    services = root / SERVICES_DIR
    log(f"lab image {tag}: building on {base} with docker build")
    start = time.monotonic()
    cmd = ["docker", "build", "--build-arg", f"BASE={base}", "--tag", tag]
    cmd += ["--file", str(services / "Dockerfile"), str(services)]
    run_streamed(cmd, "docker build", log, "docker build")
    log(f"lab image {tag}: built in {_elapsed(start)}")


def ensure_base(suite: str, mirror: str, *, force: bool, log: Log) -> str:
    tag = base_tag(suite, mirror)
    if not force and image_exists(tag):
        log(f"base image {tag}: already built, skipping")
    else:
        build_base(tag, suite, mirror, log)
    tag_latest(tag)
    return tag


def ensure_images(root: Path = DEFAULT_ROOT, *, force: bool = False, log: Log = log_stderr) -> str:
    """Build whichever of the two images is missing (both if ``force``); return the lab tag."""
    check_docker()
    suite = debian_suite()
    mirror = debian_mirror(suite)
    tag = lab_tag_for(root, base_tag(suite, mirror))
    if not force and image_exists(tag):
        log(f"lab image {tag}: already built, skipping (base image not needed)")
    else:
        base = ensure_base(suite, mirror, force=force, log=log)
        build_lab(tag, base, root, log)
    tag_latest(tag)
    return tag


# --- The test VM image (socklab.host.vms) -------------------------------------------------
#
# A stand-in for an instructor's lab VM: plain Debian booting systemd, with sshd,
# sudo and python3 (for Ansible) and nothing of ours, no Docker: the Ansible
# playbook must install everything itself. socklab.host.vms runs containers of it.

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


def _write_hook(path: str, content: str, mode: str = "0644") -> str:
    """A customize hook writing ``content`` to ``path`` inside the new root ("$1")."""
    quoted = "'" + content.replace("'", "'\\''") + "'"
    return f"printf '%s' {quoted} > \"$1{path}\" && chmod {mode} \"$1{path}\""


# mmdebstrap --customize-hook commands, run on the host with the new root as "$1".
VM_HOOKS: tuple[str, ...] = (
    f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo {VM_USER}',
    f"chroot \"$1\" usermod --password '*' {VM_USER}",  # no password, yet not locked
    f'chroot "$1" install -d -m 0700 -o {VM_USER} -g {VM_USER} /home/{VM_USER}/.ssh',
    _write_hook(f"/etc/sudoers.d/{VM_USER}", VM_SUDOERS, "0440"),
    _write_hook("/etc/ssh/sshd_config.d/socklab-vm.conf", VM_SSHD_CONFIG),
    'rm -f "$1"/etc/ssh/ssh_host_*',
    'mkdir -p "$1/etc/systemd/system/ssh.service.d"',
    _write_hook("/etc/systemd/system/ssh.service.d/host-keys.conf", VM_SSH_KEYS_DROPIN),
    _write_hook(f"/etc/systemd/system/{VM_SYSCTL_NET_NAME}", VM_SYSCTL_NET_UNIT),
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


def vm_recipe(suite: str, mirror: str) -> dict[str, object]:
    """Everything the test VM image is made from; its tag is a hash of this."""
    return rootfs_recipe(VM_PACKAGES, suite, mirror, VM_IMPORT_CHANGES, VM_RECIPE_VERSION,
                         hooks=VM_HOOKS)


def vm_tag(suite: str, mirror: str) -> str:
    return recipe_tag(VM_REPO, vm_recipe(suite, mirror))


def build_vm_image(tag: str, suite: str, mirror: str, log: Log) -> None:
    """Bootstrap the VM root filesystem into a tarball and ``docker import`` it as ``tag``."""
    ensure_mmdebstrap(log)
    log(f"VM image {tag}: building with mmdebstrap from {mirror} ({BASE_BUILD_ESTIMATE})")
    with tempfile.TemporaryDirectory(prefix="socklab-vm-rootfs-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        start = time.monotonic()
        run_streamed(mmdebstrap_command(suite, mirror, tarball, VM_PACKAGES, VM_HOOKS),
                     "mmdebstrap", log, "mmdebstrap")
        log(f"VM image {tag}: root filesystem ready in {_elapsed(start)}; importing")
        run_quiet(import_command(tarball, tag, VM_IMPORT_CHANGES), "docker import")


def ensure_vm_image(*, force: bool = False, log: Log = log_stderr) -> str:
    """Build the test VM image unless it exists (or if ``force``); return its tag."""
    check_docker()
    suite = debian_suite()
    tag = vm_tag(suite, debian_mirror(suite))
    if not force and image_exists(tag):
        log(f"VM image {tag}: already built, skipping")
    else:
        build_vm_image(tag, suite, debian_mirror(suite), log)
    tag_latest(tag)
    return tag


# --- Command line --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m socklab.host.build", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="images",
        choices=("images", "tag"),
        help="images: build what is missing, print SOCKLAB_IMAGE=<tag> (default); "
        "tag: print the lab tag that would be built, without Docker",
    )
    parser.add_argument("--force", action="store_true", help="rebuild both images")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="repository root")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "tag":
        print(lab_tag(args.root))
        return 0
    start = time.monotonic()
    try:
        tag = ensure_images(args.root, force=args.force)
    except BuildError as error:
        log_stderr(f"error: {error}")
        return error.status
    log_stderr(f"images ready in {_elapsed(start)}")
    print(f"SOCKLAB_IMAGE={tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
