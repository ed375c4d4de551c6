"""What a learner hands in, and how it starts: a Python file, a directory, an executable.

``make grade SUBMISSION=…`` accepts a Python file (run as ``python3 FILE``),
a directory with ``main.py`` (run as ``python3 main.py``), an executable (a
compiled C, Go or Rust server, or a script with a ``#!`` line; run as
``./NAME``), or ``reference`` (the lab's own server of the variant). The
submission is copied into a fresh staging directory, readable by everyone
and writable by no one but root, which the server's container mounts
read-only as its working directory ``/submission``: a learner's file modes
cannot stop it from starting, and the original is never touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

MOUNT = "/submission"
# A submission is source code or one binary, not a data set.
MAX_BYTES = 64 << 20
MAX_FILES = 1000
REFERENCE = "reference"
STAGED_PREFIX = "socklab-grade-"


class SubmissionError(ValueError):
    """The submission cannot be graded as given (the message says why and what works)."""


@dataclass(frozen=True)
class Submission:
    """A staged submission: what it is, its hash, how to start it in the container."""

    given: str  # the path as given (or "reference")
    name: str  # for OUT's default name: the file's stem or the directory's name
    kind: str  # python, directory, executable or reference
    sha256: str  # of the content (names and bytes): a class rerun finds what changed
    argv: tuple[str, ...]  # the command, run in MOUNT; empty for reference
    staged: Path | None  # the directory mounted at MOUNT (None for reference)

    def describe(self) -> dict[str, str]:
        return {"path": self.given, "name": self.name, "kind": self.kind,
                "sha256": self.sha256}

    def cleanup(self) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)


def is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def has_shebang(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(2) == b"#!"


def classify(path: Path) -> tuple[str, tuple[str, ...]]:
    """(kind, argv in MOUNT) of a submission path; SubmissionError when it is none of them."""
    if path.is_dir():
        if not (path / "main.py").is_file():
            raise SubmissionError(f"{path} is a directory without main.py: a directory "
                                  "submission starts as python3 main.py")
        return "directory", ("python3", "main.py")
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file or directory")
    if path.suffix == ".py":
        return "python", ("python3", path.name)
    if is_elf(path) or (has_shebang(path) and os.access(path, os.X_OK)):
        return "executable", (f"./{path.name}",)
    raise SubmissionError(f"{path} is neither a Python file (.py), a directory with main.py, "
                          "nor an executable (an ELF binary, or a script with #! and the "
                          "executable bit)")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
    if len(files) > MAX_FILES:
        raise SubmissionError(f"{path} holds {len(files):,} files; at most {MAX_FILES:,}")
    return files


def content_hash(path: Path) -> str:
    """sha256 over the relative names and bytes of every file (links: their target)."""
    digest = hashlib.sha256()
    base = path if path.is_dir() else path.parent
    total = 0
    for file in _files(path):
        digest.update(str(file.relative_to(base)).encode() + b"\0")
        if file.is_symlink():
            digest.update(b"-> " + os.readlink(file).encode() + b"\0")
            continue
        total += file.stat().st_size
        if total > MAX_BYTES:
            raise SubmissionError(f"{path} is larger than {MAX_BYTES >> 20} MiB")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _normalise(directory: Path) -> None:
    """Directories and files readable (and executables runnable) by every user."""
    for root, dirs, files in os.walk(directory):
        os.chmod(root, 0o755)
        for name in files:
            target = Path(root) / name
            if target.is_symlink():
                continue
            mode = target.stat().st_mode
            executable = mode & stat.S_IXUSR or is_elf(target) or has_shebang(target)
            os.chmod(target, 0o755 if executable else 0o644)
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)


def stage(given: str) -> Submission:
    """Check the submission and copy it into a staging directory; SubmissionError if unfit."""
    if given == REFERENCE:
        return Submission(REFERENCE, REFERENCE, REFERENCE, REFERENCE, (), None)
    path = Path(given).expanduser()
    kind, argv = classify(path)
    digest = content_hash(path)
    staged = Path(tempfile.mkdtemp(prefix=STAGED_PREFIX))
    try:
        if kind == "directory":
            shutil.copytree(path, staged, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(path, staged / path.name)
        _normalise(staged)
    except OSError as error:
        shutil.rmtree(staged, ignore_errors=True)
        raise SubmissionError(f"cannot read {path}: {error}") from None
    name = path.resolve().name if kind == "directory" else path.stem
    return Submission(given, name, kind, digest, argv, staged)
