"""The Ansible role's checks (socklab_checks) against the registry: every port checked once.

The role runs each check in a client container with its arguments as JSON;
the scripted client turns ``variant`` and ``framing`` into a host and port
from socklab.registry. These tests read the role's defaults as Ansible does
(YAML) and resolve each check's arguments the way the client will.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import yaml

from socklab.clients import scripted
from socklab.host.paths import REPO_ROOT
from socklab.registry import CLIENTS, VARIANTS

DEFAULTS = REPO_ROOT / "ansible" / "roles" / "socklab" / "defaults" / "main.yml"
CHECKS: list[dict[str, Any]] = yaml.safe_load(DEFAULTS.read_text())["socklab_checks"]


def checked(check: dict[str, Any]) -> tuple[str, str]:
    """(variant, framing) a check reaches: the main framing when it names none."""
    variant = VARIANTS[check["args"]["variant"]]
    return variant.name, check["args"].get("framing", variant.framing)


def test_checks_cover_every_variant_and_framing_of_the_registry_once() -> None:
    reached = [checked(check) for check in CHECKS]
    wanted = [(v.name, framing) for v in VARIANTS.values() for framing in v.ports]
    assert sorted(reached) == sorted(wanted)


@pytest.mark.parametrize("check", CHECKS, ids=[c["name"] for c in CHECKS])
def test_check_names_no_host_or_port_of_its_own(check: dict[str, Any]) -> None:
    assert not {"host", "port"} & set(check["args"]), check["args"]
    assert set(check) == {"name", "check", "args", "expect"}


@pytest.mark.parametrize("check", CHECKS, ids=[c["name"] for c in CHECKS])
def test_check_reaches_the_registrys_host_and_port(check: dict[str, Any]) -> None:
    function = scripted.CHECKS[check["check"]]
    arguments = scripted.registry_arguments(function, check["args"])
    name, framing = checked(check)
    variant = VARIANTS[name]
    assert (arguments["host"], arguments["port"]) == (variant.host, variant.port(framing))
    inspect.signature(function).bind(**arguments)  # a TypeError if the client would refuse them


ECHO_CHECKS = [check for check in CHECKS if check["check"] == "echo"]


@pytest.mark.parametrize("check", ECHO_CHECKS, ids=[c["name"] for c in ECHO_CHECKS])
def test_echo_check_gets_the_variants_greeting_and_reply_transform(check: dict[str, Any]
                                                                   ) -> None:
    variant = VARIANTS[check["args"]["variant"]]
    arguments = scripted.registry_arguments(scripted.echo, check["args"])
    assert arguments["greeting"].encode() == variant.greeting
    assert arguments["reply"] == variant.reply


def test_explicit_host_and_port_win_over_the_variants() -> None:
    arguments = scripted.registry_arguments(
        scripted.exec_framed, {"variant": "exec", "framing": "framed", "host": "spare-exec",
                               "command": "true"})
    assert arguments == {"host": "spare-exec", "port": VARIANTS["exec"].port("framed"),
                         "command": "true"}
    with pytest.raises(KeyError, match="no framing"):
        scripted.registry_arguments(scripted.echo, {"variant": "tcp", "framing": "framed"})
    with pytest.raises(ValueError, match="without a variant"):
        scripted.registry_arguments(scripted.echo, {"host": "h", "port": 1, "framing": "echo"})


def test_checks_run_on_a_client_host_of_the_registry() -> None:
    defaults = yaml.safe_load(DEFAULTS.read_text())
    assert defaults["socklab_client"] in CLIENTS
