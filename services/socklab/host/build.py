"""Build the socklab container images on the host, without any container registry.

Two images are made:

* ``socklab-base:<hash12>``: a Debian root filesystem made by ``mmdebstrap`` and
  loaded with ``docker import`` (``socklab.host.rootfs``, which also makes the
  test VM image);
* ``socklab-lab:<hash12>``: ``services/Dockerfile`` built on top of the base image,
  adding the lab side of the socklab package, its users and its directories (no
  network used).

Both tags are content hashes of their inputs, so running this again with the same
inputs builds nothing. Usage (from the repository root)::

    PYTHONPATH=services python3 -m socklab.host.build [images] [--force] [--root DIR]
    PYTHONPATH=services python3 -m socklab.host.build tag

``images`` prints only ``SOCKLAB_IMAGE=socklab-lab:<hash12>`` on stdout (for ``eval``);
all progress goes to stderr. ``tag`` prints the lab tag that would be built.

This module runs on a bare host: it uses the standard library only and imports
only host-side socklab modules (the lab side may need Twisted).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

from socklab.host.paths import REPO_ROOT
from socklab.host.rootfs import (
    HASH_LENGTH,
    BuildError,
    Log,
    RootfsImage,
    check_docker,
    debian_mirror,
    debian_suite,
    elapsed,
    ensure_rootfs_image,
    image_exists,
    log_stderr,
    run_streamed,
    tag_latest,
)

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
# docker import makes an image with no configuration at all; these give it one.
IMPORT_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONUNBUFFERED=1",
    'CMD ["/bin/bash"]',
)
BASE_IMAGE = RootfsImage("socklab-base", "base image", BASE_PACKAGES, IMPORT_CHANGES,
                         version=1)

LAB_REPO = "socklab-lab"
SERVICES_DIR = "services"  # docker build context, relative to the repository root
HASHED_DIRS = ("socklab", "bin")  # copied into the lab image, relative to services/
HASHED_FILES = ("Dockerfile", ".dockerignore")  # relative to services/
SKIPPED_DIR_NAMES = frozenset({"__pycache__"})  # also in services/.dockerignore
SKIPPED_SUFFIXES = (".pyc",)  # also in services/.dockerignore
# The host side never enters the image (services/.dockerignore), so editing it
# leaves the lab tag as it is: no rebuild, nothing new shipped to the VMs.
HOST_SIDE = Path("socklab", "host")  # relative to services/
DEFAULT_ROOT = REPO_ROOT


def base_tag(suite: str, mirror: str) -> str:
    return BASE_IMAGE.tag(suite, mirror)


# --- The lab image's content-hash tag ----------------------------------------------------


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

# --- Building -------------------------------------------------------------------------


def build_lab(tag: str, base: str, root: Path, log: Log) -> None:
    """``docker build`` services/Dockerfile on top of ``base`` as ``tag``."""
    services = root / SERVICES_DIR
    log(f"lab image {tag}: building on {base} with docker build")
    start = time.monotonic()
    cmd = ["docker", "build", "--build-arg", f"BASE={base}", "--tag", tag]
    cmd += ["--file", str(services / "Dockerfile"), str(services)]
    run_streamed(cmd, "docker build", log, "docker build")
    log(f"lab image {tag}: built in {elapsed(start)}")


def ensure_images(root: Path = DEFAULT_ROOT, *, force: bool = False, log: Log = log_stderr) -> str:
    """Build whichever of the two images is missing (both if ``force``); return the lab tag."""
    check_docker()
    suite = debian_suite()
    mirror = debian_mirror(suite)
    tag = lab_tag_for(root, base_tag(suite, mirror))
    if not force and image_exists(tag):
        log(f"lab image {tag}: already built, skipping (base image not needed)")
    else:
        base = ensure_rootfs_image(BASE_IMAGE, suite, mirror, force=force, log=log)
        build_lab(tag, base, root, log)
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
    log_stderr(f"images ready in {elapsed(start)}")
    print(f"SOCKLAB_IMAGE={tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
