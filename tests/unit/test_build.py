"""Unit tests of socklab.host.build: apt sources parsing and content-hash tags (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from socklab.host import build

MIRROR = "http://mirror.example/debian"


# --- mirror_from_sources: one-line format ------------------------------------------


def test_one_line_first_bookworm_deb_line_wins() -> None:
    text = """
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://deb.example/debian bookworm main contrib
deb http://second.example/debian bookworm main
"""
    assert build.mirror_from_sources([("sources.list", text)]) == "http://deb.example/debian"


def test_one_line_options_brackets_are_skipped() -> None:
    options = "[ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ]"
    text = f"deb {options} http://opt.example/debian/ bookworm main\n"
    assert build.mirror_from_sources([("sources.list", text)]) == "http://opt.example/debian"


def test_one_line_security_and_other_suites_are_skipped() -> None:
    text = """
deb http://security.example/debian-security bookworm-security main
deb http://old.example/debian bullseye main
deb http://upd.example/debian bookworm-updates main
deb http://deb.example/debian bookworm main # trailing comment
"""
    assert build.mirror_from_sources([("sources.list", text)]) == "http://deb.example/debian"


def test_one_line_nothing_suitable_gives_none() -> None:
    text = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    assert build.mirror_from_sources([("google.list", text)]) is None
    assert build.mirror_from_sources([]) is None


def test_one_line_suite_can_be_chosen() -> None:
    text = "deb http://a.example/debian bookworm main\ndeb http://b.example/debian trixie main\n"
    found = build.mirror_from_sources([("sources.list", text)], suite="trixie")
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
    assert build.mirror_from_sources([("debian.sources", DEB822)]) == "http://deb.example/debian"


def test_deb822_disabled_stanza_is_skipped() -> None:
    text = "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n\n" + DEB822
    assert build.mirror_from_sources([("debian.sources", text)]) == "http://deb.example/debian"


def test_deb822_field_names_are_case_insensitive() -> None:
    text = "types: deb\nuris: https://tls.example/debian\nsuites: bookworm\n"
    assert build.mirror_from_sources([("x.sources", text)]) == "https://tls.example/debian"


def test_files_are_read_in_order_and_format_follows_the_name() -> None:
    one_line = "deb http://list.example/debian bookworm main\n"
    texts = [("a.sources", "Types: deb\nURIs: http://nomatch.example\nSuites: trixie\n")]
    texts += [("b.list", one_line), ("c.sources", DEB822)]
    assert build.mirror_from_sources(texts) == "http://list.example/debian"


def test_one_line_text_in_a_sources_file_is_not_misread() -> None:
    texts = [("debian.sources", "deb http://wrong.example/debian bookworm main\n")]
    assert build.mirror_from_sources(texts) is None


# --- debian_mirror: environment override --------------------------------------------


def test_environment_mirror_overrides_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(build.MIRROR_ENV, MIRROR + "/")
    assert build.debian_mirror("bookworm") == MIRROR


# --- content-hash tags ----------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal repository: services/{Dockerfile,.dockerignore,socklab/,bin/}."""
    monkeypatch.setenv(build.MIRROR_ENV, MIRROR)
    monkeypatch.setenv(build.SUITE_ENV, "bookworm")
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
    assert len(tag.partition(":")[2]) == build.HASH_LENGTH


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
    monkeypatch.setenv(build.MIRROR_ENV, "http://other.example/debian")
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
    cmd = build.mmdebstrap_command("bookworm", MIRROR, target)
    assert cmd[0] == "mmdebstrap"
    assert cmd[-3:] == ["bookworm", str(target), MIRROR]
    assert "--include=" + ",".join(build.BASE_PACKAGES) in cmd


def test_import_command_configures_the_image(tmp_path: Path) -> None:
    cmd = build.import_command(tmp_path / "rootfs.tar", "socklab-base:x")
    assert cmd[:2] == ["docker", "import"]
    assert cmd[-1] == "socklab-base:x"
    assert cmd.count("--change") == len(build.IMPORT_CHANGES)
    assert 'CMD ["/bin/bash"]' in cmd
