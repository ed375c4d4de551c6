"""Unit tests of socklab.host.rootfs: the Debian mirror from the host's apt sources, and the
recipe of an mmdebstrap-made image and its tag (no Docker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from socklab.host import build, rootfs, vm_image

MIRROR = "http://mirror.example/debian"


# --- mirror_from_sources: one-line format ------------------------------------------


def test_one_line_first_bookworm_deb_line_wins() -> None:
    text = """
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://deb.example/debian bookworm main contrib
deb http://second.example/debian bookworm main
"""
    assert rootfs.mirror_from_sources([("sources.list", text)]) == "http://deb.example/debian"


def test_one_line_options_brackets_are_skipped() -> None:
    options = "[ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ]"
    text = f"deb {options} http://opt.example/debian/ bookworm main\n"
    assert rootfs.mirror_from_sources([("sources.list", text)]) == "http://opt.example/debian"


def test_one_line_security_and_other_suites_are_skipped() -> None:
    text = """
deb http://security.example/debian-security bookworm-security main
deb http://old.example/debian bullseye main
deb http://upd.example/debian bookworm-updates main
deb http://deb.example/debian bookworm main # trailing comment
"""
    assert rootfs.mirror_from_sources([("sources.list", text)]) == "http://deb.example/debian"


def test_one_line_nothing_suitable_gives_none() -> None:
    text = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    assert rootfs.mirror_from_sources([("google.list", text)]) is None
    assert rootfs.mirror_from_sources([]) is None


def test_one_line_suite_can_be_chosen() -> None:
    text = "deb http://a.example/debian bookworm main\ndeb http://b.example/debian trixie main\n"
    found = rootfs.mirror_from_sources([("sources.list", text)], suite="trixie")
    assert found == "http://b.example/debian"


# --- mirror_from_sources: deb822 format ----------------------------------------------

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main

# a comment between stanzas
Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb deb-src
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
  http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_deb822_skips_security_and_deb_src_stanzas() -> None:
    assert rootfs.mirror_from_sources([("debian.sources", DEB822)]) == "http://deb.example/debian"


def test_deb822_disabled_stanza_is_skipped() -> None:
    text = "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n\n" + DEB822
    assert rootfs.mirror_from_sources([("debian.sources", text)]) == "http://deb.example/debian"


def test_deb822_field_names_are_case_insensitive() -> None:
    text = "types: deb\nuris: https://tls.example/debian\nsuites: bookworm\n"
    assert rootfs.mirror_from_sources([("x.sources", text)]) == "https://tls.example/debian"


def test_files_are_read_in_order_and_format_follows_the_name() -> None:
    one_line = "deb http://list.example/debian bookworm main\n"
    texts = [("a.sources", "Types: deb\nURIs: http://nomatch.example\nSuites: trixie\n")]
    texts += [("b.list", one_line), ("c.sources", DEB822)]
    assert rootfs.mirror_from_sources(texts) == "http://list.example/debian"


def test_one_line_text_in_a_sources_file_is_not_misread() -> None:
    texts = [("debian.sources", "deb http://wrong.example/debian bookworm main\n")]
    assert rootfs.mirror_from_sources(texts) is None


# --- debian_mirror: environment override --------------------------------------------


def test_environment_mirror_overrides_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rootfs.MIRROR_ENV, MIRROR + "/")
    assert rootfs.debian_mirror("bookworm") == MIRROR


# --- recipes and tags -----------------------------------------------------------------

# A changed tag is a rebuild of the image on every machine and, for the lab's base,
# a new lab image shipped to every VM: these change only with the recipe, on purpose.
PINNED_TAGS = [(build.BASE_IMAGE, "bookworm", "socklab-base:9af9f7560747"),
               (build.BASE_IMAGE, "trixie", "socklab-base:dea1585eb571"),
               (vm_image.VM_IMAGE, "bookworm", "socklab-vm:087176e679bd"),
               (vm_image.VM_IMAGE, "trixie", "socklab-vm:c1e5ec7c4c3a")]


@pytest.mark.parametrize(("image", "suite", "tag"), PINNED_TAGS,
                         ids=[f"{i.repo}-{s}" for i, s, _ in PINNED_TAGS])
def test_a_recipe_s_tag_is_pinned(image: rootfs.RootfsImage, suite: str, tag: str) -> None:
    assert image.tag(suite, MIRROR) == tag


def test_a_recipe_without_hooks_has_no_hooks_key() -> None:
    assert "hooks" not in build.BASE_IMAGE.recipe("bookworm", MIRROR)
    assert vm_image.VM_IMAGE.recipe("bookworm", MIRROR)["hooks"] == list(vm_image.VM_HOOKS)


def test_every_recipe_input_changes_the_tag() -> None:
    image = rootfs.RootfsImage("socklab-x", "x image", ("python3",), ("ENV A=1",), version=1)
    variants = [rootfs.RootfsImage("socklab-x", "x image", ("python3", "sudo"), ("ENV A=1",), 1),
                rootfs.RootfsImage("socklab-x", "x image", ("python3",), ("ENV A=2",), 1),
                rootfs.RootfsImage("socklab-x", "x image", ("python3",), ("ENV A=1",), 2),
                rootfs.RootfsImage("socklab-x", "x image", ("python3",), ("ENV A=1",), 1,
                                   hooks=("true",))]
    tags = {v.tag("bookworm", MIRROR) for v in variants}
    assert image.tag("bookworm", MIRROR) not in tags and len(tags) == len(variants)
    assert image.tag("bookworm", "http://other.example/debian") != image.tag("bookworm", MIRROR)


# --- the one build path, with stand-ins for mmdebstrap and docker on PATH ----------------

# Each writes its arguments, NUL-separated (hooks hold newlines), where $CALLS says.
FAKE_MMDEBSTRAP = """#!/bin/sh
printf '%s\\0' "$@" > "$CALLS/mmdebstrap"
n=0
for arg; do n=$((n + 1)); [ $n -eq $(($# - 1)) ] && target=$arg; done  # SUITE TARGET MIRROR
echo "I: extracting" && : > "$target"
"""
FAKE_DOCKER = """#!/bin/sh
printf '%s\\0' "$@" > "$CALLS/docker"
"""


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mmdebstrap and docker stand-ins on PATH; the directory their calls are written to."""
    for name, script in (("mmdebstrap", FAKE_MMDEBSTRAP), ("docker", FAKE_DOCKER)):
        (tmp_path / name).write_text(script)
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    (tmp_path / "calls").mkdir()
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    return tmp_path / "calls"


@pytest.mark.parametrize("image", [build.BASE_IMAGE, vm_image.VM_IMAGE], ids=["base", "vm"])
def test_build_rootfs_image_bootstraps_then_imports_the_recipe(
        fake_tools: Path, image: rootfs.RootfsImage) -> None:
    lines: list[str] = []
    rootfs.build_rootfs_image(image, "socklab-x:1", "bookworm", MIRROR, lines.append)
    mmdebstrap = (fake_tools / "mmdebstrap").read_text().split("\0")[:-1]
    expected = image.mmdebstrap_command("bookworm", MIRROR, Path("target"))[1:]
    assert mmdebstrap[:-2] == expected[:-2] and mmdebstrap[-1] == MIRROR
    docker = (fake_tools / "docker").read_text().split("\0")[:-1]
    assert docker == image.import_command(Path(mmdebstrap[-2]), "socklab-x:1")[1:]
    assert "mmdebstrap: I: extracting" in lines
    assert lines[-1].startswith(f"{image.title} socklab-x:1: imported in ")
