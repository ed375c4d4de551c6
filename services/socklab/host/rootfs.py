"""Images made from a Debian root filesystem: ``mmdebstrap`` a recipe, ``docker import`` it.

The one build path of the images that start from nothing (no registry is
reachable here, so no ``FROM debian``): the lab's base image
(``socklab.host.build``) and the test VM image (``socklab.host.vm_image``).
An image is a :class:`RootfsImage` recipe (packages, mmdebstrap hooks, the
configuration ``docker import`` gives it); its tag is a hash of the recipe, so
building it again with the same inputs builds nothing. The Debian mirror comes
from ``$SOCKLAB_DEBIAN_MIRROR``, else the host's apt sources.

Runs on a bare host: the standard library only, Docker's CLI and mmdebstrap.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path

Log = Callable[[str], None]

DEFAULT_SUITE = "bookworm"  # Debian 12; python3 is 3.11, like the project
DEFAULT_MIRROR = "http://deb.debian.org/debian"  # used when the host names none
# "apt" = Essential packages + apt, so apt works inside the containers.
MMDEBSTRAP_VARIANT = "apt"
# Documentation, manual pages and translations are dead weight in an image.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
LATEST = "latest"  # convenience tag also put on the newest images
HASH_LENGTH = 12  # hex digits of sha256 in a tag: ample for a handful of images
MIRROR_ENV = "SOCKLAB_DEBIAN_MIRROR"
SUITE_ENV = "SOCKLAB_DEBIAN_SUITE"
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
URI_SCHEMES = ("http://", "https://")  # what mmdebstrap and the image can both fetch
BUILD_ESTIMATE = "about 40 s"  # measured: 38 s on a fast link to deb.debian.org
ERROR_TAIL_LINES = 15  # output lines of a failed command repeated in its error
PREFIX = "[socklab]"


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

# --- Recipes and their content-hash tags ----------------------------------------------


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_LENGTH]


def recipe_tag(repo: str, recipe: dict[str, object]) -> str:
    """``repo:<hash of the recipe>``: a change to any input is a new tag."""
    return f"{repo}:{short_hash(json.dumps(recipe, sort_keys=True).encode())}"


@dataclass(frozen=True)
class RootfsImage:
    """What an image made by mmdebstrap and ``docker import`` is made from.

    ``packages`` are installed on top of the "apt" variant (Essential
    packages + apt); ``hooks`` are mmdebstrap ``--customize-hook`` commands,
    run on the host with the new root as "$1"; ``import_changes`` give the
    imported image its configuration (``docker import`` makes one with none);
    ``version`` is bumped when the recipe changes in a way the rest does not show.
    """

    repo: str
    title: str  # names it in progress lines: "base image", "VM image"
    packages: tuple[str, ...]
    import_changes: tuple[str, ...]
    version: int
    hooks: tuple[str, ...] = ()

    def recipe(self, suite: str, mirror: str) -> dict[str, object]:
        """Everything the image is made from; its tag is a hash of this."""
        recipe: dict[str, object] = {
            "packages": list(self.packages),
            "suite": suite,
            "variant": MMDEBSTRAP_VARIANT,
            "mirror": mirror,
            "dpkg_options": list(DPKG_OPTIONS),
            "import_changes": list(self.import_changes),
            "recipe_version": self.version,
        }
        if self.hooks:  # absent rather than empty: the base image's tag predates hooks
            recipe["hooks"] = list(self.hooks)
        return recipe

    def tag(self, suite: str, mirror: str) -> str:
        return recipe_tag(self.repo, self.recipe(suite, mirror))

    def mmdebstrap_command(self, suite: str, mirror: str, target: Path) -> list[str]:
        """The mmdebstrap call that writes the image's root filesystem to ``target``."""
        return [
            "mmdebstrap",
            f"--variant={MMDEBSTRAP_VARIANT}",
            f"--include={','.join(self.packages)}",
            *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
            *(f"--customize-hook={hook}" for hook in self.hooks),
            suite,
            str(target),
            mirror,
        ]

    def import_command(self, tarball: Path, tag: str) -> list[str]:
        changes = [arg for change in self.import_changes for arg in ("--change", change)]
        return ["docker", "import", *changes, str(tarball), tag]


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


def elapsed(start: float) -> str:
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

# --- The one build path -----------------------------------------------------------------


def build_rootfs_image(image: RootfsImage, tag: str, suite: str, mirror: str,
                       log: Log) -> None:
    """Bootstrap ``image``'s root filesystem into a temporary tarball, then import it as ``tag``."""
    ensure_mmdebstrap(log)
    log(f"{image.title} {tag}: building with mmdebstrap from {mirror} ({BUILD_ESTIMATE})")
    if mirror.startswith("https://"):
        log(f"note: {mirror} is https; containers may only reach plain http mirrors")
    # A file rather than a pipe: a failed mmdebstrap must not import half a rootfs.
    with tempfile.TemporaryDirectory(prefix="socklab-rootfs-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        start = time.monotonic()
        run_streamed(image.mmdebstrap_command(suite, mirror, tarball), "mmdebstrap", log,
                     "mmdebstrap")
        log(f"{image.title} {tag}: root filesystem ready in {elapsed(start)}; importing")
        start = time.monotonic()
        run_quiet(image.import_command(tarball, tag), "docker import")
        log(f"{image.title} {tag}: imported in {elapsed(start)}")


def ensure_rootfs_image(image: RootfsImage, suite: str, mirror: str, *, force: bool,
                        log: Log) -> str:
    """Build ``image`` unless it exists (or if ``force``), tag it latest; return its tag."""
    tag = image.tag(suite, mirror)
    if not force and image_exists(tag):
        log(f"{image.title} {tag}: already built, skipping")
    else:
        build_rootfs_image(image, tag, suite, mirror, log)
    tag_latest(tag)
    return tag
