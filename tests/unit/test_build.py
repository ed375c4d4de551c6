"""Unit tests of socklab.host.build: the lab image's content-hash tag, the base image's recipe
and the command line (no Docker). The Debian mirror and the recipe hashing are in
test_rootfs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from socklab.host import build, rootfs

MIRROR = "http://mirror.example/debian"


# --- content-hash tags ----------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal repository: services/{Dockerfile,.dockerignore,socklab/,bin/}."""
    monkeypatch.setenv(rootfs.MIRROR_ENV, MIRROR)
    monkeypatch.setenv(rootfs.SUITE_ENV, "bookworm")
    services = tmp_path / "services"
    (services / "socklab" / "servers").mkdir(parents=True)
    (services / "bin").mkdir()
    (services / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    (services / ".dockerignore").write_text("**/__pycache__\n")
    (services / "socklab" / "__init__.py").write_text('"""socklab."""\n')
    (services / "socklab" / "servers" / "echo.py").write_text("PORT = 9000\n")
    (services / "bin" / "socklab-listening").write_text("#!/bin/sh\n")
    return tmp_path


def test_lab_tag_is_stable(tree: Path) -> None:
    tag = build.lab_tag(tree)
    assert tag == build.lab_tag(tree)
    assert tag.startswith("socklab-lab:")
    assert len(tag.partition(":")[2]) == rootfs.HASH_LENGTH


def test_lab_tag_does_not_depend_on_the_location(tree: Path, tmp_path_factory) -> None:
    other = tmp_path_factory.mktemp("copy")
    for path in sorted(tree.rglob("*")):
        target = other / path.relative_to(tree)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    assert build.lab_tag(other) == build.lab_tag(tree)


def test_changed_package_file_changes_the_tag(tree: Path) -> None:
    before = build.lab_tag(tree)
    (tree / "services" / "socklab" / "servers" / "echo.py").write_text("PORT = 9001\n")
    assert build.lab_tag(tree) != before


def test_new_package_file_changes_the_tag(tree: Path) -> None:
    before = build.lab_tag(tree)
    (tree / "services" / "socklab" / "servers" / "__init__.py").write_text("")
    assert build.lab_tag(tree) != before


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore", "bin/socklab-listening"])
def test_changed_build_input_changes_the_tag(tree: Path, name: str) -> None:
    before = build.lab_tag(tree)
    with (tree / "services" / name).open("a") as file:
        file.write("# changed\n")
    assert build.lab_tag(tree) != before


def test_executable_bit_changes_the_tag(tree: Path) -> None:
    before = build.lab_tag(tree)
    (tree / "services" / "bin" / "socklab-listening").chmod(0o755)
    assert build.lab_tag(tree) != before


def test_bytecode_does_not_change_the_tag(tree: Path) -> None:
    before = build.lab_tag(tree)
    cache = tree / "services" / "socklab" / "servers" / "__pycache__"
    cache.mkdir()
    (cache / "echo.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (tree / "services" / "socklab" / "stray.pyc").write_bytes(b"\x00bytecode")
    assert build.lab_tag(tree) == before


def test_files_outside_the_hashed_dirs_do_not_change_the_tag(tree: Path) -> None:
    before = build.lab_tag(tree)
    (tree / "services" / "notes.txt").write_text("not in the image\n")
    (tree / "README.md").write_text("not in the image\n")
    assert build.lab_tag(tree) == before


def test_renaming_a_file_changes_the_tag(tree: Path) -> None:
    before = build.lab_tag(tree)
    servers = tree / "services" / "socklab" / "servers"
    (servers / "echo.py").rename(servers / "echo2.py")
    assert build.lab_tag(tree) != before


def test_mirror_changes_both_tags(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = build.lab_tag(tree)
    monkeypatch.setenv(rootfs.MIRROR_ENV, "http://other.example/debian")
    assert build.lab_tag(tree) != before
    assert build.base_tag("bookworm", MIRROR) != build.base_tag("bookworm", "http://x/debian")


def test_base_tag_is_stable_and_depends_on_the_suite() -> None:
    assert build.base_tag("bookworm", MIRROR) == build.base_tag("bookworm", MIRROR)
    assert build.base_tag("bookworm", MIRROR) != build.base_tag("trixie", MIRROR)
    assert build.base_tag("bookworm", MIRROR).startswith("socklab-base:")


def test_tag_command_prints_the_lab_tag(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["tag", "--root", str(tree)]) == 0
    assert capsys.readouterr().out == build.lab_tag(tree) + "\n"


# --- command lines -------------------------------------------------------------------


def test_mmdebstrap_command_writes_to_the_given_tarball(tmp_path: Path) -> None:
    target = tmp_path / "rootfs.tar"
    cmd = build.BASE_IMAGE.mmdebstrap_command("bookworm", MIRROR, target)
    assert cmd[0] == "mmdebstrap"
    assert cmd[-3:] == ["bookworm", str(target), MIRROR]
    assert "--include=" + ",".join(build.BASE_PACKAGES) in cmd


def test_import_command_configures_the_image(tmp_path: Path) -> None:
    cmd = build.BASE_IMAGE.import_command(tmp_path / "rootfs.tar", "socklab-base:x")
    assert cmd[:2] == ["docker", "import"]
    assert cmd[-1] == "socklab-base:x"
    assert cmd.count("--change") == len(build.IMPORT_CHANGES)
    assert 'CMD ["/bin/bash"]' in cmd
