"""The command line: every command parses, and subcommand options never clobber the dispatch."""

from __future__ import annotations

import pytest

from socklab import cli
from socklab.probes import PROBES
from socklab.registry import VARIANTS


@pytest.mark.parametrize("argv", [
    ["serve", "tcp"], ["serve", "epoll", "--edge"], ["serve", "exec", "--run-as", "runner"],
    ["client", "exec", "-c", "ls", "--mode", "framed"], ["client", "ftp"],
    ["client", "ftp", "put", "a", "b"], ["hold", "--socketserver"], ["delay", "--ms", "100"],
    ["probe", "framing_rtt", "--command", "true"], ["probe", "concurrency", "tcp"],
])
def test_cli_dispatches_on_the_command_not_on_an_option(argv: list[str]) -> None:
    args = cli.parser().parse_args(argv)
    assert args.socklab_command == argv[0]


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["client", "--help"],
                                  ["probe", "--help"], *[["serve", v, "--help"] for v in VARIANTS],
                                  *[["probe", p, "--help"] for p in PROBES]])
def test_cli_help_works_for_every_command(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args(argv)
    assert exit_.value.code == 0 and "usage: socklab" in capsys.readouterr().out


def test_cli_serve_port_defaults_follow_the_contract() -> None:
    for variant in VARIANTS.values():
        args = cli.parser().parse_args(["serve", variant.name])
        assert args.port == variant.main_port
