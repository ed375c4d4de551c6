"""The fuzz probe whole: loaded like every probe, aimed by the registry, no server internals."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from socklab import probes
from socklab.probes import fuzz
from socklab.probes.fuzz.cli import plan
from socklab.probes.fuzz.targets import TARGETS
from socklab.registry import VARIANTS

PACKAGE = Path(fuzz.__file__).parent


def test_fuzz_probe_is_registered() -> None:
    assert "fuzz" in probes.PROBES and probes.load("fuzz") is fuzz
    assert (fuzz.NAME, callable(fuzz.add_arguments), callable(fuzz.run)) == ("fuzz", True, True)


def test_fuzz_targets_are_every_port_of_the_registry() -> None:
    ports = {(v.host, port, v.transport) for v in VARIANTS.values() for port in v.ports.values()}
    assert {(t.host, t.port, t.transport) for t in TARGETS.values()} == ports
    assert len(TARGETS) == sum(len(v.ports) for v in VARIANTS.values())
    exec_framed = TARGETS["exec-framed"]
    assert (exec_framed.variant, exec_framed.framing) == (VARIANTS["exec"], "framed")


def test_fuzz_greetings_are_the_registrys() -> None:
    for target in TARGETS.values():
        greeting = target.variant.greeting + target.variant.banner(target.framing)
        assert target.family.greeting == greeting


def arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fuzz.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(("target", "concurrency"), [("tcp", 1), ("ftp", 8), ("exec-naive", 4)])
def test_fuzz_plan_defaults_to_the_targets_host_port_and_concurrency(
        target: str, concurrency: int) -> None:
    run = plan(arguments("--target", target, "--inputs", "250", "--batch", "100"))
    assert (run.host, run.port) == (TARGETS[target].host, TARGETS[target].port)
    assert run.concurrency == concurrency
    assert [len(b) for b in run.batches] == [100, 100, 50]


def test_fuzz_plan_only_replays_one_case() -> None:
    run = plan(arguments("--target", "udp", "--only", "42", "--host", "h", "--port", "1"))
    assert (run.indices, run.host, run.port, run.batches) == ([42], "h", 1, [[42]])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return names | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_fuzz_reads_no_server_internals(path: Path) -> None:
    """Caps, banners and greetings come from the registry or the protocol code."""
    inside = {m for m in imported_modules(path)
              if m.startswith(("socklab.servers", "socklab.sessions"))}
    assert not inside, f"{path.relative_to(PACKAGE)} imports {inside}"
