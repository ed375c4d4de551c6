"""The two sides of the package: what is in the lab image, and what its tag hashes.

Everything under services/socklab except ``host/`` is the lab side, copied into
the image; ``socklab.host`` runs on the machine only. These tests read the
source (no Docker): the lab side never imports the host side or a library the
image lacks, and editing a host-side module leaves the lab image's tag alone.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from socklab.host import build

SERVICES = Path(__file__).resolve().parents[2] / "services"
PACKAGE = SERVICES / "socklab"
HOST_SIDE = PACKAGE / "host"
# Not in the lab image (it gets python3 and python3-twisted from Debian, no pip).
HOST_ONLY_LIBRARIES = frozenset({"docker", "yaml", "paramiko", "matplotlib", "ansible", "pytest"})


def _lab_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if not p.is_relative_to(HOST_SIDE))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", _lab_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lab_side_module_imports_nothing_of_the_host(path: Path) -> None:
    imported = _imported(path)
    host = sorted(n for n in imported if n == "socklab.host" or n.startswith("socklab.host."))
    assert not host, f"{path.relative_to(SERVICES)} is in the lab image but imports {host}"
    libraries = sorted({n.split(".")[0] for n in imported} & HOST_ONLY_LIBRARIES)
    assert not libraries, f"{path.relative_to(SERVICES)} imports {libraries}, not in the image"


def test_dockerignore_leaves_the_host_side_out_of_the_image() -> None:
    ignored = (SERVICES / ".dockerignore").read_text().split()
    assert build.HOST_SIDE.as_posix() in ignored


def test_lab_input_files_are_the_lab_side_only() -> None:
    files = [p.as_posix() for p in build.lab_input_files(SERVICES)]
    assert "socklab/registry.py" in files and "socklab/servers/readiness.py" in files
    assert not [f for f in files if f.startswith("socklab/host/")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the repository's services/ to edit, as root/services."""
    shutil.copytree(SERVICES, tmp_path / "services",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_lab_tag_ignores_an_edit_of_a_host_side_module(tree: Path) -> None:
    before = build.lab_tag_for(tree, "socklab-base:test")
    _append(tree / "services/socklab/host/hostctl.py", "\n# an edit on the host side\n")
    (tree / "services/socklab/host/new_tool.py").write_text('"""A new host tool."""\n')
    assert build.lab_tag_for(tree, "socklab-base:test") == before


def test_lab_tag_follows_an_edit_of_a_lab_side_module(tree: Path) -> None:
    before = build.lab_tag_for(tree, "socklab-base:test")
    _append(tree / "services/socklab/registry.py", "\n# an edit on the lab side\n")
    assert build.lab_tag_for(tree, "socklab-base:test") != before
